// The boot manifest (format 1): types, hand-written validation, canonical formatting and the small
// lookups the agent needs (pick an entry, candidate URLs of a payload). docs/manifest.md is the spec.
// Validation collects every problem as one line "<where>: <what>"; the error message holds the first.
import { ManifestError } from "./errors.ts";
import { JsonSyntaxError, parseJsonStrict, type JsonValue } from "./json.ts";

export const MANIFEST_FORMAT = 1;
export const DEFAULT_TIMEOUT = 5;
/** A manifest is a small text file; anything bigger is not one (and must not exhaust a 256 MiB guest). */
export const MAX_MANIFEST_BYTES = 1 << 20;
/** x86 COMMAND_LINE_SIZE is 2048 including the terminating NUL. */
export const MAX_CMDLINE = 2047;

/** A downloadable file: kernel or initrd. `url` is absolute or relative to the manifest's URL. */
export interface Payload {
  url: string;
  size: number;
  /** Lowercase hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** A block store (or raw image) to use as root after kexec, as inetboot.root= would. */
export interface RootSpec {
  url: string;
  fstype?: string;
  rootpath?: string;
  /** SHA-256 of the store's index: the signature then covers the root too (the index names every
   *  chunk by its digest). Stage 2 gets it as inetboot.rootsha256=. */
  sha256?: string;
}

export interface Entry {
  /** Id used by inetboot.entry=NAME. */
  name: string;
  /** Menu text (defaults to name). */
  title: string;
  kernel: Payload;
  initrd?: Payload;
  /** Kernel command line for the kexec'd kernel (default ""). */
  cmdline: string;
  root?: RootSpec;
  /** True for at most one entry. */
  default: boolean;
}

export interface Manifest {
  format: number;
  name: string;
  /** Monotonically increasing; the agent refuses a version lower than one it saw before. */
  version: number;
  /** ISO 8601 time, as written in the file. */
  expires: string;
  entries: Entry[];
  /** Base URLs serving the same files (relative payload URLs are resolved against each). */
  mirrors: string[];
  /** Menu timeout in seconds. */
  timeout: number;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_RULE = "expected 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit";
// A full date and time with a zone: what Date.parse reads the same everywhere.
const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:\d\d)$/;
const HEX64_RE = /^[0-9a-fA-F]{64}$/;

type Obj = { [k: string]: JsonValue };

function got(v: JsonValue | undefined): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return v.length > 40 ? `a string ${JSON.stringify(v.slice(0, 40))}…` : `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

const at = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** Collects problems while reading a JSON tree into typed values. */
class Checker {
  problems: string[] = [];

  bad(path: string, what: string): undefined {
    this.problems.push(`${path}: ${what}`);
    return undefined;
  }

  /**
   * `v` as an object, noting each missing required key and each unknown key (typos such as
   * "inird" must not be ignored in a signed file). The field checkers below stay silent on
   * `undefined`: a missing field is reported once, here.
   */
  object(v: JsonValue | undefined, path: string, required: string[], optional: string[]): Obj | undefined {
    if (v === undefined) return undefined;
    if (v === null || typeof v !== "object" || Array.isArray(v)) return this.bad(path || "manifest", `expected an object, got ${got(v)}`);
    for (const k of required) if (!(k in v)) this.problems.push(`missing field ${at(path, k)}`);
    for (const k of Object.keys(v)) if (!required.includes(k) && !optional.includes(k)) this.problems.push(`unknown field ${at(path, k)}`);
    return v;
  }

  string(v: JsonValue | undefined, path: string, opts: { nonEmpty?: boolean; max?: number } = {}): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== "string") return this.bad(path, `expected a string, got ${got(v)}`);
    if (opts.nonEmpty && v === "") return this.bad(path, "must not be empty");
    if (opts.max !== undefined && new TextEncoder().encode(v).length > opts.max) return this.bad(path, `longer than ${opts.max} bytes`);
    if (/[\u0000-\u001f\u007f]/.test(v)) return this.bad(path, "contains a control character");
    return v;
  }

  int(v: JsonValue | undefined, path: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
      return this.bad(path, `expected an integer from 0 to ${max}, got ${got(v)}`);
    }
    return v;
  }

  name(v: JsonValue | undefined, path: string): string | undefined {
    const s = this.string(v, path);
    if (s === undefined) return undefined;
    if (!NAME_RE.test(s)) return this.bad(path, `bad name ${JSON.stringify(s)}: ${NAME_RULE}`);
    return s;
  }

  /** An http(s) URL, absolute or (if allowed) relative to the manifest's URL. */
  url(v: JsonValue | undefined, path: string, relativeOk: boolean): string | undefined {
    const s = this.string(v, path, { nonEmpty: true });
    if (s === undefined) return undefined;
    // (also no quotes: a root URL becomes a word of stage 2's kernel command line)
    if (/[\s"]/.test(s)) return this.bad(path, `URL ${JSON.stringify(s)} contains white space or a quote`);
    let u: URL;
    try {
      u = relativeOk ? new URL(s, "http://manifest.invalid/dir/") : new URL(s);
    } catch {
      return this.bad(path, `not ${relativeOk ? "a" : "an absolute"} URL: ${JSON.stringify(s)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") return this.bad(path, `URL ${JSON.stringify(s)} is not http or https`);
    return s;
  }

  /** A SHA-256 in hex, lowercased; undefined (reported) when it is not one. */
  hex(h: JsonValue, path: string): string | undefined {
    if (typeof h !== "string") return void this.bad(path, `expected 64 hex digits, got ${got(h)}`);
    if (!HEX64_RE.test(h)) return void this.bad(path, /^[0-9a-fA-F]*$/.test(h) ? `expected 64 hex digits, got ${h.length}` : `expected 64 hex digits, got non-hex ${got(h)}`);
    return h.toLowerCase();
  }

  payload(v: JsonValue | undefined, path: string): Payload | undefined {
    const o = this.object(v, path, ["url", "size", "sha256"], []);
    if (!o) return undefined;
    const url = this.url(o.url, at(path, "url"), true);
    const size = this.int(o.size, at(path, "size"));
    const sha256 = o.sha256 === undefined ? undefined : this.hex(o.sha256, at(path, "sha256"));
    if (url === undefined || size === undefined || sha256 === undefined) return undefined; // each already reported
    return { url, size, sha256 };
  }

  root(v: JsonValue | undefined, path: string): RootSpec | undefined {
    const o = this.object(v, path, ["url"], ["fstype", "rootpath", "sha256"]);
    if (!o) return undefined;
    const n = this.problems.length;
    const url = this.url(o.url, at(path, "url"), true);
    const fstype = this.string(o.fstype, at(path, "fstype"), { nonEmpty: true });
    if (fstype !== undefined && !/^[a-z0-9_.-]{1,32}$/.test(fstype)) this.bad(at(path, "fstype"), `bad filesystem type ${JSON.stringify(fstype)}`);
    const rootpath = this.string(o.rootpath, at(path, "rootpath"), { nonEmpty: true });
    // It becomes `inetboot.rootpath=…` on stage 2's command line: a space or quote there would add
    // parameters of the manifest author's choosing (inetboot.url=… of another server)
    if (rootpath !== undefined && !/^\/[\x21-\x7e]{0,255}$/.test(rootpath.replace(/"/g, " ")))
      this.bad(at(path, "rootpath"), `bad rootpath ${JSON.stringify(rootpath)}: an absolute path of printable ASCII, without spaces or quotes`);
    const sha256 = o.sha256 === undefined ? undefined : this.hex(o.sha256, at(path, "sha256"));
    if (this.problems.length > n) return undefined;
    const r: RootSpec = { url: url! };
    if (fstype !== undefined) r.fstype = fstype;
    if (rootpath !== undefined) r.rootpath = rootpath;
    if (sha256 !== undefined) r.sha256 = sha256;
    return r;
  }

  entry(v: JsonValue | undefined, path: string): Entry | undefined {
    const o = this.object(v, path, ["name", "kernel"], ["title", "initrd", "cmdline", "root", "default"]);
    if (!o) return undefined;
    const n = this.problems.length;
    const name = this.name(o.name, at(path, "name"));
    const title = o.title === undefined ? name : this.string(o.title, at(path, "title"), { nonEmpty: true, max: 200 });
    const kernel = this.payload(o.kernel, at(path, "kernel"));
    const initrd = o.initrd === undefined ? undefined : this.payload(o.initrd, at(path, "initrd"));
    const cmdline = o.cmdline === undefined ? "" : this.string(o.cmdline, at(path, "cmdline"), { max: MAX_CMDLINE });
    const root = o.root === undefined ? undefined : this.root(o.root, at(path, "root"));
    let def = false;
    if (o.default !== undefined) {
      if (typeof o.default !== "boolean") this.bad(at(path, "default"), `expected true or false, got ${got(o.default)}`);
      else def = o.default;
    }
    if (this.problems.length > n) return undefined;
    const e: Entry = { name: name!, title: title!, kernel: kernel!, cmdline: cmdline!, default: def };
    if (initrd) e.initrd = initrd;
    if (root) e.root = root;
    return e;
  }

  manifest(v: JsonValue): Manifest | undefined {
    const o = this.object(v, "", ["format", "name", "version", "expires", "entries"], ["mirrors", "timeout"]);
    if (!o) return undefined;
    if (o.format !== undefined && o.format !== MANIFEST_FORMAT) {
      // Stop here: a future format may mean anything.
      this.bad("format", typeof o.format === "number" ? `unsupported format ${o.format} (this build reads format ${MANIFEST_FORMAT})` : `expected ${MANIFEST_FORMAT}, got ${got(o.format)}`);
      return undefined;
    }
    const name = this.name(o.name, "name");
    const version = this.int(o.version, "version");
    let expires: string | undefined;
    const ex = this.string(o.expires, "expires");
    if (ex !== undefined) {
      if (!ISO_RE.test(ex) || Number.isNaN(Date.parse(ex))) this.bad("expires", `expected an ISO 8601 time such as 2030-01-31T00:00:00Z, got ${got(ex)}`);
      else expires = ex;
    }
    let entries: Entry[] | undefined;
    if (o.entries === undefined) entries = undefined;
    else if (!Array.isArray(o.entries)) this.bad("entries", `expected an array of entries, got ${got(o.entries)}`);
    else if (o.entries.length === 0) this.bad("entries", "no entries (a manifest needs at least one)");
    else {
      const list = o.entries.map((e, i) => this.entry(e, `entries[${i}]`));
      const seen = new Map<string, number>();
      let firstDefault = -1;
      list.forEach((e, i) => {
        if (!e) return;
        const prev = seen.get(e.name);
        if (prev !== undefined) this.bad(`entries[${i}].name`, `duplicate entry name ${JSON.stringify(e.name)} (also entries[${prev}].name)`);
        else seen.set(e.name, i);
        if (e.default) {
          if (firstDefault >= 0) this.bad(`entries[${i}].default`, `more than one default entry (also entries[${firstDefault}])`);
          else firstDefault = i;
        }
      });
      if (list.every((e) => e !== undefined)) entries = list as Entry[];
    }
    let mirrors: string[] | undefined = [];
    if (o.mirrors !== undefined) {
      if (!Array.isArray(o.mirrors)) mirrors = this.bad("mirrors", `expected an array of URLs, got ${got(o.mirrors)}`);
      else {
        const ms = o.mirrors.map((m, i) => this.url(m, `mirrors[${i}]`, false));
        mirrors = ms.every((m) => m !== undefined) ? (ms as string[]) : undefined;
      }
    }
    const timeout = o.timeout === undefined ? DEFAULT_TIMEOUT : this.int(o.timeout, "timeout", 3600);
    if (this.problems.length) return undefined;
    return { format: MANIFEST_FORMAT, name: name!, version: version!, expires: expires!, entries: entries!, mirrors: mirrors!, timeout: timeout! };
  }
}

function schemaError(problems: string[]): ManifestError {
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? "s" : ""})` : "";
  return new ManifestError("schema", `bad manifest: ${problems[0]}${more}`, problems);
}

/** Decode and validate a manifest file's bytes. Throws ManifestError("schema") listing every problem. */
export function parseManifest(input: Uint8Array | string): Manifest {
  let text: string;
  if (typeof input === "string") text = input;
  else {
    if (input.length > MAX_MANIFEST_BYTES) throw schemaError([`${input.length} bytes is too large for a manifest (limit ${MAX_MANIFEST_BYTES})`]);
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(input);
    } catch {
      throw schemaError(["not UTF-8 text"]);
    }
  }
  let tree: JsonValue;
  try {
    tree = parseJsonStrict(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw schemaError([e.message]);
    throw e;
  }
  const c = new Checker();
  const m = c.manifest(tree);
  if (!m) throw schemaError(c.problems);
  return m;
}

/** Canonical text of a manifest: fixed key order, 2-space indent, defaults left out, final newline. */
export function formatManifest(m: Manifest): string {
  const payload = (p: Payload) => ({ url: p.url, size: p.size, sha256: p.sha256 });
  const doc: Record<string, unknown> = { format: m.format, name: m.name, version: m.version, expires: m.expires };
  if (m.timeout !== DEFAULT_TIMEOUT) doc.timeout = m.timeout;
  if (m.mirrors.length) doc.mirrors = m.mirrors;
  doc.entries = m.entries.map((e) => {
    const o: Record<string, unknown> = { name: e.name };
    if (e.title !== e.name) o.title = e.title;
    if (e.default) o.default = true;
    o.kernel = payload(e.kernel);
    if (e.initrd) o.initrd = payload(e.initrd);
    if (e.cmdline !== "") o.cmdline = e.cmdline;
    if (e.root)
      o.root = {
        url: e.root.url, ...(e.root.fstype ? { fstype: e.root.fstype } : {}), ...(e.root.rootpath ? { rootpath: e.root.rootpath } : {}),
        ...(e.root.sha256 ? { sha256: e.root.sha256 } : {}),
      };
    return o;
  });
  return JSON.stringify(doc, null, 2) + "\n";
}

/** The entry to boot: the one named (inetboot.entry=), else the default one, else the first. */
export function pickEntry(m: Manifest, name?: string): Entry {
  if (name !== undefined && name !== "") {
    const e = m.entries.find((x) => x.name === name);
    if (!e) throw new ManifestError("schema", `manifest ${m.name} has no entry ${JSON.stringify(name)} (entries: ${m.entries.map((x) => x.name).join(", ")})`);
    return e;
  }
  return m.entries.find((x) => x.default) ?? m.entries[0]!;
}

/**
 * Where a payload (or root store) can be fetched, best first: `url` resolved against the manifest's
 * own URL, then, if `url` is relative, against each mirror (mirrors serve the manifest's directory).
 */
export function candidateUrls(manifestUrl: string, m: Pick<Manifest, "mirrors">, url: string): string[] {
  const out = [new URL(url, manifestUrl).href];
  if (!/^[a-z][a-z0-9+.-]*:/i.test(url) && !url.startsWith("//")) {
    for (const base of m.mirrors) out.push(new URL(url, base.endsWith("/") ? base : `${base}/`).href);
  }
  return [...new Set(out)];
}
