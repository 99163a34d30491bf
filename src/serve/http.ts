// Pure HTTP pieces of the static server (no I/O): Range parsing, validators, conditional requests.
// Semantics follow RFC 9110 §13 (conditionals) and §14 (ranges).

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

/** Result of reading a Range header against a resource of `size` bytes:
 *  - "none": no usable Range (absent, not bytes=, malformed, or several ranges) → send 200 full;
 *  - "unsatisfiable": syntactically fine but no byte of it exists → 416;
 *  - a ByteRange → 206. */
export type RangeResult = "none" | "unsatisfiable" | ByteRange;

/** Parses a Range header. Multi-range requests are answered with the whole body ("none"): RFC 9110
 *  lets a server ignore Range, and multipart/byteranges buys nothing for block fetchers. */
export function parseRange(header: string | null, size: number): RangeResult {
  if (header === null) return "none";
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return "none";
  const specs = m[1]!.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (specs.length !== 1) return "none";
  const r = /^(\d*)\s*-\s*(\d*)$/.exec(specs[0]!);
  if (!r || (r[1] === "" && r[2] === "")) return "none";
  if (r[1] === "") {
    // Suffix range: the last N bytes.
    const n = Number(r[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  const end = r[2] === "" ? size - 1 : Number(r[2]);
  if (r[2] !== "" && end < start) return "none"; // invalid spec: ignore the header
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(end, size - 1) };
}

/** A strong ETag from size and mtime (as nginx does): changes whenever either does. */
export function makeEtag(size: number, mtimeMs: number): string {
  return `"${Math.floor(mtimeMs).toString(16)}-${size.toString(16)}"`;
}

/** HTTP-date of a file's mtime (second resolution). */
export function httpDate(mtimeMs: number): string {
  return new Date(Math.floor(mtimeMs / 1000) * 1000).toUTCString();
}

/** If-None-Match uses weak comparison: W/"x" matches "x"; "*" matches any existing resource. */
export function noneMatch(header: string, etag: string): boolean {
  const strip = (t: string) => t.trim().replace(/^W\//, "");
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => strip(t) === strip(etag));
}

/** true when the request's validators say the client's copy is current (→ 304). */
export function notModified(h: Headers, etag: string, mtimeMs: number): boolean {
  const inm = h.get("if-none-match");
  if (inm !== null) return noneMatch(inm, etag); // If-Modified-Since is ignored when INM is present
  const ims = h.get("if-modified-since");
  if (ims !== null) {
    const t = Date.parse(ims);
    if (!Number.isNaN(t)) return Math.floor(mtimeMs / 1000) * 1000 <= t;
  }
  return false;
}

/** If-Range: the Range applies only if the validator still matches (strong ETag comparison, or an
 *  exact Last-Modified date). */
export function ifRangeHolds(h: Headers, etag: string, lastModified: string): boolean {
  const v = h.get("if-range");
  if (v === null) return true;
  const t = v.trim();
  if (t.startsWith('"') || t.startsWith("W/")) return !t.startsWith("W/") && t === etag;
  return t === lastModified;
}
