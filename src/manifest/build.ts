// Building manifests on the host from payload files: sizes and SHA-256 computed here, URLs either
// relative to where the manifest will live or under a given base URL. Every result is formatted and
// parsed back, so what we write is exactly what the agent's parser accepts.
import { statSync } from "node:fs";
import { basename, relative, resolve, sep } from "node:path";
import { UserError } from "../sys/errors.ts";
import { ManifestError } from "./errors.ts";
import { DEFAULT_TIMEOUT, formatManifest, MANIFEST_FORMAT, parseManifest, type Entry, type Manifest, type Payload, type RootSpec } from "./schema.ts";

export interface UrlStyle {
  /** Payload URLs become BASE/<file name> (absolute manifests, e.g. files on a CDN). */
  baseUrl?: string;
  /** Otherwise URLs are relative to this directory: the one the manifest is written to. */
  relativeTo: string;
}

export interface EntryFiles {
  name: string;
  title?: string;
  /** Local paths of the payload files. */
  kernel: string;
  initrd?: string;
  cmdline?: string;
  root?: RootSpec;
  default?: boolean;
}

export interface ManifestFields {
  name: string;
  version: number;
  expires: string;
  entries: Entry[];
  mirrors?: string[];
  timeout?: number;
}

/** Size and lowercase hex SHA-256 of a file, streamed (an initrd may be large). */
export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UserError(`file not found: ${path}`);
  }
  if (!st.isFile()) throw new UserError(`not a regular file: ${path}`);
  const h = new Bun.CryptoHasher("sha256");
  let size = 0;
  for await (const chunk of Bun.file(path).stream()) {
    h.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: h.digest("hex") };
}

/** The URL a manifest uses for a local file. */
export function urlFor(path: string, style: UrlStyle): string {
  if (style.baseUrl !== undefined) {
    let base: URL;
    try {
      base = new URL(style.baseUrl.endsWith("/") ? style.baseUrl : `${style.baseUrl}/`);
    } catch {
      throw new UserError(`bad base URL ${JSON.stringify(style.baseUrl)}`);
    }
    return new URL(encodeURIComponent(basename(path)), base).href;
  }
  const rel = relative(resolve(style.relativeTo), resolve(path));
  return rel.split(sep).map(encodeURIComponent).join("/");
}

export async function payloadFor(path: string, style: UrlStyle): Promise<Payload> {
  return { url: urlFor(path, style), ...(await hashFile(path)) };
}

export async function buildEntry(f: EntryFiles, style: UrlStyle): Promise<Entry> {
  const e: Entry = {
    name: f.name,
    title: f.title ?? f.name,
    kernel: await payloadFor(f.kernel, style),
    cmdline: f.cmdline ?? "",
    default: !!f.default,
  };
  if (f.initrd) e.initrd = await payloadFor(f.initrd, style);
  if (f.root) e.root = f.root;
  return e;
}

/** Format + parse back: the manifest as the agent will read it, or the schema error it would give. */
export function normalize(m: Manifest): Manifest {
  return parseManifest(formatManifest(m));
}

export function newManifest(f: ManifestFields): Manifest {
  return normalize({
    format: MANIFEST_FORMAT,
    name: f.name,
    version: f.version,
    expires: f.expires,
    entries: f.entries,
    mirrors: f.mirrors ?? [],
    timeout: f.timeout ?? DEFAULT_TIMEOUT,
  });
}

/** `m` plus `e` (appended). A duplicate name is an error; a new default entry takes over the old one's role. */
export function addEntry(m: Manifest, e: Entry): Manifest {
  if (m.entries.some((x) => x.name === e.name)) {
    throw new ManifestError("schema", `manifest ${m.name} already has an entry named ${JSON.stringify(e.name)} (pick another --entry-name)`);
  }
  const entries = m.entries.map((x) => (e.default ? { ...x, default: false } : x));
  return normalize({ ...m, entries: [...entries, e] });
}

/** ISO time without milliseconds. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** "30d", "12h", "2w" from `now`, or an ISO 8601 time; returned as ISO (UTC, seconds). */
export function parseExpires(spec: string, now: Date): string {
  const m = /^(\d+)([hdw])$/.exec(spec.trim());
  if (m) {
    const unit = { h: 3600, d: 86400, w: 7 * 86400 }[m[2] as "h" | "d" | "w"];
    return isoSeconds(new Date(now.getTime() + Number(m[1]) * unit * 1000));
  }
  const t = Date.parse(spec);
  if (!/^\d{4}-\d\d-\d\d/.test(spec) || Number.isNaN(t)) throw new UserError(`bad --expires ${JSON.stringify(spec)}: use a duration such as 30d, 12h, 2w, or an ISO time such as 2030-01-31T00:00:00Z`);
  // (sign and every agent would refuse it: say so now, not at signing or boot time)
  if (t <= now.getTime()) throw new UserError(`bad --expires ${JSON.stringify(spec)}: that time has passed (now ${isoSeconds(now)})`);
  return isoSeconds(new Date(t));
}
