// The host commands keygen, sign and manifest (build / --check). Data (paths, key ids, the manifest,
// the verified entries) goes to stdout; notes go to stderr.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { tlsFailure } from "../fetch/errors.ts";
import { authorize } from "../fetch/netrc.ts";
import { proxyOf, proxyOption, tlsPeer } from "../fetch/proxy.ts";
import { tlsOptions } from "../fetch/trust.ts";
import { writeAtomic } from "../store/atomic.ts";
import { readFailure, UserError } from "../sys/errors.ts";
import { addEntry, buildEntry, newManifest, parseExpires, type UrlStyle } from "./build.ts";
import { ManifestError } from "./errors.ts";
import { formatPrivateKey, formatPublicKey, generateKeyPair, loadTrustedKeys, publicKeyOf, readPrivateKeyFile, readPublicKeyFile, type PublicKey } from "./keys.ts";
import { formatManifest, parseManifest, type Manifest, type RootSpec } from "./schema.ts";
import { signDetached } from "./sign.ts";
import { formatSignature, parseSignatures, signaturePathFor } from "./signature.ts";
import { verifyDetached, verifyManifestDetailed } from "./verify.ts";

const out = (s: string) => process.stdout.write(s);
const note = (cmd: string, s: string) => process.stderr.write(`inetboot ${cmd}: ${s}\n`);

function readBytes(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new UserError(`cannot read ${what} ${path}: ${readFailure(e)}`);
  }
}

function intArg(v: string, flag: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(v) || Number(v) > max) throw new UserError(`bad ${flag} ${JSON.stringify(v)}: expected an integer from 0 to ${max}`);
  return Number(v);
}

// ---- keygen ----

/** Writes NAME.key (0600) and NAME.pub; never overwrites either. */
export function runKeygen(name: string): void {
  const base = name.replace(/\.(key|pub)$/, "");
  // "" or "dir/" would write the hidden files .key and .pub
  if (["", ".", ".."].includes(basename(base)) || base.endsWith("/")) throw new UserError(`bad --out ${JSON.stringify(name)}: name the key pair (e.g. --out ${join(base || ".", "release")})`);
  const keyPath = `${base}.key`;
  const pubPath = `${base}.pub`;
  for (const p of [keyPath, pubPath]) if (existsSync(p)) throw new UserError(`${p} already exists; not overwriting a key (pick another --out)`);
  if (!existsSync(dirname(resolve(keyPath)))) throw new UserError(`output directory does not exist: ${dirname(resolve(keyPath))}`);
  const k = generateKeyPair();
  // "wx": fail rather than replace a file created meanwhile.
  writeFileSync(keyPath, formatPrivateKey(k), { mode: 0o600, flag: "wx" });
  writeFileSync(pubPath, formatPublicKey(publicKeyOf(k)), { mode: 0o644, flag: "wx" });
  note("keygen", `keep ${keyPath} secret; give ${pubPath} to \`inetboot initramfs --trust\``);
  out(`key id: ${k.id}\nprivate key: ${keyPath}\npublic key: ${pubPath}\n`);
}

// ---- sign ----

export interface SignOptions {
  key: string;
  out?: string;
  /** Add this signature to an existing .sig (key rotation) instead of replacing it. */
  append?: boolean;
  /** Sign any file (a boot script): no manifest validation. */
  raw?: boolean;
  now?: Date;
}

export async function runSign(file: string, o: SignOptions): Promise<void> {
  const key = readPrivateKeyFile(o.key);
  const bytes = readBytes(file, o.raw ? "file" : "manifest");
  if (!o.raw) {
    const m = parseManifest(bytes);
    const now = o.now ?? new Date();
    if (Date.parse(m.expires) <= now.getTime()) throw new UserError(`${file}: manifest already expired at ${m.expires}; rebuild it with a later --expires`);
  }
  const sigPath = o.out ?? signaturePathFor(file);
  const line = signDetached(bytes, key);
  // Our own output must verify with our own key before anyone downloads it.
  verifyDetached(bytes, line, [publicKeyOf(key)], file);
  let text = line;
  if (o.append && existsSync(sigPath)) {
    // Other keys' signatures stay; an older one by this key is replaced.
    const kept = parseSignatures(readFileSync(sigPath, "utf8"), sigPath).filter((s) => s.keyId !== key.id);
    text = kept.map(formatSignature).join("") + line;
  }
  await writeAtomic(sigPath, new TextEncoder().encode(text), true);
  note("sign", `signed ${file} with key ${key.id}`);
  out(`${sigPath}\n`);
}

// ---- manifest (build) ----

export interface BuildOptions {
  name?: string;
  version?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  root?: string;
  rootfstype?: string;
  rootpath?: string;
  rootSha256?: string;
  entryName?: string;
  title?: string;
  default?: boolean;
  expires?: string;
  baseUrl?: string;
  mirrors?: string[];
  timeout?: string;
  addTo?: string;
  out?: string;
  now?: Date;
}

export async function runBuild(o: BuildOptions): Promise<void> {
  const now = o.now ?? new Date();
  if (!o.kernel) throw new UserError("--kernel FILE is required (the kernel of the entry to build)");
  const existing = o.addTo ? parseManifest(readBytes(o.addTo, "manifest")) : undefined;
  if (!existing) {
    if (!o.name) throw new UserError("--name is required (or --add-to EXISTING.json)");
    if (o.version === undefined) throw new UserError("--version is required (or --add-to EXISTING.json)");
  }
  const outPath = o.out ?? o.addTo;
  const style: UrlStyle = { baseUrl: o.baseUrl, relativeTo: outPath ? dirname(resolve(outPath)) : process.cwd() };
  let root: RootSpec | undefined;
  if (o.root) {
    root = { url: o.root };
    if (o.rootfstype) root.fstype = o.rootfstype;
    if (o.rootpath) root.rootpath = o.rootpath;
    const sha = o.rootSha256 ?? (await rootIndexSha256(o.root, style));
    if (sha !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha)) throw new UserError(`bad --root-sha256 "${sha}": expected 64 hex digits`);
    if (sha !== undefined) root.sha256 = sha.toLowerCase();
  } else if (o.rootfstype || o.rootpath || o.rootSha256) throw new UserError("--rootfstype, --rootpath and --root-sha256 need --root URL");
  if (existing && !o.entryName) throw new UserError(`--entry-name is required with --add-to (existing entries: ${existing.entries.map((e) => e.name).join(", ")})`);
  const name = o.name ?? existing!.name;
  const entry = await buildEntry(
    { name: o.entryName ?? name, title: o.title, kernel: o.kernel, initrd: o.initrd, cmdline: o.cmdline, root, default: o.default },
    style,
  );
  // A relative URL climbing out of the manifest's directory usually points outside what is served
  for (const [what, p] of [["kernel", entry.kernel], ["initrd", entry.initrd]] as const)
    if (p?.url.startsWith("../"))
      process.stderr.write(`warning: ${what} URL "${p.url}" leaves the manifest's directory: put the file beside the manifest, or use --base-url\n`);
  const version = o.version !== undefined ? intArg(o.version, "--version") : existing!.version;
  const expires = o.expires !== undefined ? parseExpires(o.expires, now) : existing ? existing.expires : parseExpires("30d", now);
  const mirrors = o.mirrors?.length ? o.mirrors : (existing?.mirrors ?? []);
  const timeout = o.timeout !== undefined ? intArg(o.timeout, "--timeout", 3600) : existing?.timeout;
  let m: Manifest;
  if (existing) m = addEntry({ ...existing, name, version, expires, mirrors, timeout: timeout ?? existing.timeout }, entry);
  else m = newManifest({ name, version, expires, entries: [entry], mirrors, timeout });
  const text = formatManifest(m);
  if (outPath) {
    await writeAtomic(outPath, new TextEncoder().encode(text), true);
    note("manifest", `${outPath}: ${m.name} version ${m.version}, ${m.entries.length} entr${m.entries.length === 1 ? "y" : "ies"}, expires ${m.expires}; sign it with \`inetboot sign ${outPath} --key KEY\``);
    out(`${outPath}\n`);
  } else out(text);
}

// ---- manifest --check ----

export interface CheckOptions {
  sig?: string;
  trust: string[];
  allowUnsigned?: boolean;
  minVersion?: string;
  now?: string;
  json?: boolean;
}

async function fetchBytes(url: string, optional: boolean): Promise<Uint8Array | null> {
  let r: Response;
  try {
    r = await fetch(authorize(url), { redirect: "follow", tls: tlsOptions(), proxy: proxyOption(url) });
  } catch (e) {
    throw new UserError(`GET ${url}: ${tlsFailure(e, url, tlsPeer(url, proxyOf(url))) ?? (e as Error).message}`);
  }
  if (optional && r.status === 404) return null;
  if (!r.ok) throw new UserError(`GET ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

function describeEntries(m: Manifest, key: PublicKey | null): string {
  const lines = [`verified: ${m.name} version ${m.version}, ${key ? `signed by key ${key.id}` : "UNSIGNED"}, expires ${m.expires}, menu timeout ${m.timeout}s`];
  for (const mi of m.mirrors) lines.push(`mirror: ${mi}`);
  for (const e of m.entries) {
    lines.push(`entry ${e.name}${e.default ? " (default)" : ""}: ${e.title}`);
    lines.push(`  kernel: ${e.kernel.url} (${e.kernel.size} bytes, sha256 ${e.kernel.sha256})`);
    if (e.initrd) lines.push(`  initrd: ${e.initrd.url} (${e.initrd.size} bytes, sha256 ${e.initrd.sha256})`);
    if (e.cmdline) lines.push(`  cmdline: ${e.cmdline}`);
    if (e.root) lines.push(`  root: ${e.root.url}${e.root.fstype ? ` fstype=${e.root.fstype}` : ""}${e.root.rootpath ? ` rootpath=${e.root.rootpath}` : ""}`);
  }
  return lines.join("\n") + "\n";
}

/** Verify a manifest (file or http(s) URL) as the agent would and print its entries. */
export async function runCheck(target: string, o: CheckOptions): Promise<void> {
  const isUrl = /^https?:\/\//.test(target);
  const sigAt = o.sig ?? signaturePathFor(target);
  let bytes: Uint8Array;
  let sigBytes: Uint8Array | null;
  if (isUrl) {
    bytes = (await fetchBytes(target, false))!;
    sigBytes = /^https?:\/\//.test(sigAt) ? await fetchBytes(sigAt, true) : existsSync(sigAt) ? readBytes(sigAt, "signature") : null;
  } else {
    bytes = readBytes(target, "manifest");
    sigBytes = existsSync(sigAt) ? readBytes(sigAt, "signature") : null;
  }
  if (o.sig && sigBytes === null) throw new UserError(`signature not found: ${o.sig}`);
  // No --trust: the keys this system trusts (inside the initramfs: the ones it was built with).
  const trusted = o.trust.length ? o.trust.map(readPublicKeyFile) : loadTrustedKeys();
  let now = new Date();
  if (o.now !== undefined) {
    now = new Date(o.now);
    if (Number.isNaN(now.getTime())) throw new UserError(`bad --now ${JSON.stringify(o.now)}: expected an ISO time`);
  }
  const minVersion = o.minVersion !== undefined ? intArg(o.minVersion, "--min-version") : undefined;
  const sigText = sigBytes === null ? null : new TextDecoder().decode(sigBytes);
  let r;
  try {
    r = verifyManifestDetailed(bytes, sigText, trusted, { now, minVersion, allowUnsigned: o.allowUnsigned, what: target });
  } catch (e) {
    // Keep the reason code visible to scripts: "inetboot: refused (expired): …".
    if (e instanceof ManifestError) throw new UserError(`refused (${e.reason}): ${e.message}`);
    throw e;
  }
  if (o.json) out(JSON.stringify({ key: r.key?.id ?? null, manifest: r.manifest }, null, 2) + "\n");
  else out(describeEntries(r.manifest, r.key));
}

/** The SHA-256 of the root store's index, so the signature covers the root too: read beside the
 *  manifest for a relative URL, fetched for an absolute one. Undefined, with a warning, when it
 *  cannot be read (a raw image, a server out of reach): the root is then not covered. */
async function rootIndexSha256(url: string, style: UrlStyle): Promise<string | undefined> {
  const { splitStoreUrl } = await import("../store/open.ts");
  const { sha256Hex } = await import("../store/chunk-name.ts");
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(url);
  let where = url;
  try {
    if (absolute) {
      const { base, indexName } = splitStoreUrl(url);
      where = base + indexName;
      const r = await fetch(authorize(where), { redirect: "follow", tls: tlsOptions(), proxy: proxyOption(where) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return sha256Hex(new Uint8Array(await r.arrayBuffer()));
    }
    const local = resolve(style.relativeTo, decodeURIComponent(url)); // (a relative root URL is relative to the manifest)
    where = url.endsWith(".index") ? local : join(local, "index");
    return sha256Hex(readFileSync(where));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    process.stderr.write(`warning: root ${url}: no store index at ${where} (${why}): the signature does not cover the root (give --root-sha256 SHA256 of its index)\n`);
    return undefined;
  }
}
