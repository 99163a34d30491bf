// Key files. One key per file, one line of text (lines starting with '#' and blank lines ignored):
//   inetboot-ed25519-public  <base64 of the 32-byte public key>  <key id>
//   inetboot-ed25519-private <base64 of the 32-byte private seed> <key id>
// The key id is the first 8 bytes of SHA-256(public key), in hex: short enough for error lines
// and signature files, and the file's stated id is checked against the key (catches mix-ups).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { KeyError } from "./errors.ts";
import { readFailure } from "../sys/errors.ts";
import { generate, publicFromSeed } from "./ed25519.ts";

export const PUBLIC_TAG = "inetboot-ed25519-public";
export const PRIVATE_TAG = "inetboot-ed25519-private";
/** Where the initramfs carries the keys the agent trusts (`inetboot initramfs --trust KEY.pub`). */
export const TRUSTED_DIR = "/etc/inetboot/trusted";
/** Present in the initramfs when it was built with `--allow-unsigned`. */
export const ALLOW_UNSIGNED_PATH = "/etc/inetboot/allow-unsigned";

export interface PublicKey {
  /** 16 lowercase hex digits: first 8 bytes of SHA-256(raw). */
  id: string;
  /** The 32-byte Ed25519 public key. */
  raw: Uint8Array;
}

export interface PrivateKey {
  id: string;
  /** The 32-byte Ed25519 private seed. */
  seed: Uint8Array;
  /** Its public key. */
  pub: Uint8Array;
}

export function keyIdOf(raw: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(raw).digest("hex").slice(0, 16);
}

export function generateKeyPair(): PrivateKey {
  const { seed, pub } = generate();
  return { id: keyIdOf(pub), seed, pub };
}

export function publicKeyOf(k: PrivateKey): PublicKey {
  return { id: k.id, raw: k.pub };
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

export function formatPublicKey(k: PublicKey): string {
  return `${PUBLIC_TAG} ${b64(k.raw)} ${k.id}\n`;
}

export function formatPrivateKey(k: PrivateKey): string {
  return `# inetboot Ed25519 signing key ${k.id}: keep it secret, never put it in an initramfs\n${PRIVATE_TAG} ${b64(k.seed)} ${k.id}\n`;
}

/** Strict base64 of exactly `n` bytes (Buffer.from would skip junk silently). */
export function decodeBase64(s: string, n: number): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const b = new Uint8Array(Buffer.from(s, "base64"));
  return b.length === n && b64(b) === s ? b : undefined;
}

/** The one key line of a key file: [tag, base64, id]. */
function keyLine(text: string, source: string, tag: string): [Uint8Array, string] {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  if (lines.length !== 1) throw new KeyError(`${source}: expected one "${tag} …" line, found ${lines.length} key lines`);
  const f = lines[0]!.split(/\s+/);
  if (f[0] !== tag) {
    const other = f[0] === PUBLIC_TAG || f[0] === PRIVATE_TAG ? ` (this is a ${f[0] === PUBLIC_TAG ? "public" : "private"} key)` : "";
    throw new KeyError(`${source}: not an ${tag} key file${other}`);
  }
  if (f.length !== 3) throw new KeyError(`${source}: expected "${tag} <base64 key> <key id>"`);
  const raw = decodeBase64(f[1]!, 32);
  if (!raw) throw new KeyError(`${source}: key is not base64 of 32 bytes`);
  if (!/^[0-9a-f]{16}$/.test(f[2]!)) throw new KeyError(`${source}: key id ${JSON.stringify(f[2])} is not 16 hex digits`);
  return [raw, f[2]!];
}

/** Parse a public key file's text. `source` names it in errors. */
export function readPublicKey(text: string, source = "public key"): PublicKey {
  const [raw, id] = keyLine(text, source, PUBLIC_TAG);
  const real = keyIdOf(raw);
  if (real !== id) throw new KeyError(`${source}: key id ${id} does not match the key (${real}); the file is damaged`);
  return { id, raw };
}

export function readPrivateKey(text: string, source = "private key"): PrivateKey {
  const [seed, id] = keyLine(text, source, PRIVATE_TAG);
  const pub = publicFromSeed(seed);
  const real = keyIdOf(pub);
  if (real !== id) throw new KeyError(`${source}: key id ${id} does not match the key (${real}); the file is damaged`);
  return { id, seed, pub };
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new KeyError(`cannot read ${what} ${path}: ${readFailure(e)}`);
  }
}

export function readPublicKeyFile(path: string): PublicKey {
  return readPublicKey(readText(path, "public key"), path);
}

export function readPrivateKeyFile(path: string): PrivateKey {
  return readPrivateKey(readText(path, "private key"), path);
}

/** Every *.pub in `dir` (sorted by file name); none when the directory does not exist. */
export function loadTrustedKeys(dir = TRUSTED_DIR): PublicKey[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new KeyError(`cannot read trusted keys in ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const keys: PublicKey[] = [];
  for (const n of names.filter((x) => x.endsWith(".pub")).sort()) {
    const p = join(dir, n);
    if (statSync(p).isFile()) keys.push(readPublicKeyFile(p));
  }
  return keys;
}

/** True when the initramfs was built with --allow-unsigned (`path` lets tests point elsewhere). */
export function unsignedAllowed(path = ALLOW_UNSIGNED_PATH): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
