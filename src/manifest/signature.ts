// Detached signature files (MANIFEST.sig beside MANIFEST.json, boot.sh.sig beside boot.sh): one
// line per signature, so a manifest can carry signatures by an old and a new key during rotation:
//   inetboot-ed25519-signature <key id> <base64 of the 64-byte Ed25519 signature>
// The signature covers the exact bytes of the signed file, nothing else (`openssl pkeyutl -verify
// -rawin` checks it too). Lines starting with '#' and blank lines are ignored.
import { ManifestError } from "./errors.ts";
import { decodeBase64 } from "./keys.ts";

export const SIGNATURE_TAG = "inetboot-ed25519-signature";

export interface SignatureLine {
  keyId: string;
  sig: Uint8Array;
}

export function formatSignature(s: SignatureLine): string {
  return `${SIGNATURE_TAG} ${s.keyId} ${Buffer.from(s.sig).toString("base64")}\n`;
}

/** Every signature in a .sig file's text; [] when it holds none. Malformed → "bad-signature". */
export function parseSignatures(text: string, what = "signature file"): SignatureLine[] {
  const out: SignatureLine[] = [];
  text.split("\n").forEach((line, i) => {
    const l = line.trim();
    if (l === "" || l.startsWith("#")) return;
    const bad = (why: string) => new ManifestError("bad-signature", `${what} line ${i + 1}: ${why}`);
    const f = l.split(/\s+/);
    if (f[0] !== SIGNATURE_TAG) throw bad(`expected "${SIGNATURE_TAG} <key id> <base64 signature>"`);
    if (f.length !== 3) throw bad(`expected 3 fields, got ${f.length}`);
    if (!/^[0-9a-f]{16}$/.test(f[1]!)) throw bad(`key id ${JSON.stringify(f[1]!.slice(0, 40))} is not 16 hex digits`);
    const sig = decodeBase64(f[2]!, 64);
    if (!sig) throw bad("signature is not base64 of 64 bytes");
    out.push({ keyId: f[1]!, sig });
  });
  return out;
}

/** The .sig beside a signed file: MANIFEST.json → MANIFEST.sig, anything else → NAME.sig appended. Works on URLs too. */
export function signaturePathFor(path: string): string {
  const q = path.search(/[?#]/);
  const [base, rest] = q < 0 ? [path, ""] : [path.slice(0, q), path.slice(q)];
  return (base.endsWith(".json") ? base.slice(0, -5) + ".sig" : base + ".sig") + rest;
}
