// newc ("070701") cpio codec, the format the Linux kernel unpacks as an initramfs.
// Pure: no I/O. Encoding is incremental (header bytes, then the caller streams file data, then
// padding) so a 110 MB executable is never held twice in memory.
//
// Layout of one entry: 110-byte ASCII header ("070701" + 13 fields of 8 hex digits), the NUL-terminated
// name, zero padding to a 4-byte boundary, the data, zero padding to a 4-byte boundary. The archive
// ends with an entry named "TRAILER!!!". Alignment is relative to the archive's first byte.
import { concatBytes } from "../sys/bytes.ts";

export type CpioKind = "file" | "dir" | "symlink" | "char" | "block";

/** Everything a header says about one entry (data itself travels separately). */
export interface CpioMeta {
  /** Archive path without a leading "/" (e.g. "lib/modules"); "." is not used. */
  path: string;
  kind: CpioKind;
  /** Permission bits (0o7777); the type bits come from `kind`. */
  perm: number;
  /** Data length: file bytes, or the symlink target's length; 0 otherwise. */
  size: number;
  mtime?: number;
  uid?: number;
  gid?: number;
  /** Device numbers of a char/block node. */
  major?: number;
  minor?: number;
}

/** A decoded entry, or one given whole to `encodeArchive`. */
export interface CpioEntry extends Omit<CpioMeta, "size"> {
  /** File contents, or the symlink target as bytes. */
  data?: Uint8Array;
  ino?: number;
  nlink?: number;
}

export const NEWC_MAGIC = "070701";
export const TRAILER = "TRAILER!!!";
const HEADER_LEN = 110;

const TYPE_BITS: Record<CpioKind, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
};

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Zero bytes needed to bring `n` up to a multiple of 4. */
export function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function hex8(v: number, field: string): string {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`cpio: ${field} out of range: ${v}`);
  return v.toString(16).padStart(8, "0");
}

/**
 * Incremental newc encoder. It tracks the stream position (for alignment) and hands out inode
 * numbers 1, 2, 3... in call order, so the same sequence of calls gives the same bytes.
 */
export class CpioEncoder {
  /** Bytes produced so far. */
  position = 0;
  private nextIno = 1;

  /** Header + name + padding for one entry. The caller then writes exactly `meta.size` data bytes and `dataPadding(meta.size)`. */
  header(meta: CpioMeta): Uint8Array {
    const name = enc.encode(meta.path);
    if (name.includes(0)) throw new Error(`cpio: NUL in path ${JSON.stringify(meta.path)}`);
    const isDev = meta.kind === "char" || meta.kind === "block";
    const isTrailer = meta.path === TRAILER;
    const fields = [
      isTrailer ? 0 : this.nextIno++, // ino
      isTrailer ? 0 : TYPE_BITS[meta.kind] | (meta.perm & 0o7777), // mode
      meta.uid ?? 0,
      meta.gid ?? 0,
      isTrailer ? 1 : meta.kind === "dir" ? 2 : 1, // nlink
      meta.mtime ?? 0,
      meta.size,
      0, // devmajor: the filesystem the file came from; meaningless here
      0, // devminor
      isDev ? (meta.major ?? 0) : 0, // rdevmajor
      isDev ? (meta.minor ?? 0) : 0, // rdevminor
      name.length + 1, // namesize includes the NUL
      0, // check: only used by the "070702" crc format
    ];
    const names = ["ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"];
    const text = NEWC_MAGIC + fields.map((v, i) => hex8(v, names[i]!)).join("");
    const nameEnd = HEADER_LEN + name.length + 1;
    const out = new Uint8Array(nameEnd + pad4(this.position + nameEnd));
    out.set(enc.encode(text), 0);
    out.set(name, HEADER_LEN);
    this.position += out.length;
    return out;
  }

  /** Account for `n` data bytes the caller wrote itself (streamed file contents). */
  data(n: number): void {
    this.position += n;
  }

  /** Zero padding after an entry's data. */
  dataPadding(): Uint8Array {
    const p = new Uint8Array(pad4(this.position));
    this.position += p.length;
    return p;
  }

  /** One whole entry as chunks: header, data, padding (data is passed through, not copied). */
  entry(meta: Omit<CpioMeta, "size">, data: Uint8Array = new Uint8Array(0)): Uint8Array[] {
    const h = this.header({ ...meta, size: data.length });
    this.data(data.length);
    return [h, data, this.dataPadding()];
  }

  /** The closing TRAILER!!! entry. */
  trailer(): Uint8Array {
    const h = this.header({ path: TRAILER, kind: "file", perm: 0, size: 0 });
    return h;
  }
}

/** Symlink target as entry data. */
export function symlinkData(target: string): Uint8Array {
  return enc.encode(target);
}

/** Encode a whole archive in memory (tests, small archives). Entries are written in the order given. */
export function encodeArchive(entries: CpioEntry[]): Uint8Array {
  const e = new CpioEncoder();
  const chunks: Uint8Array[] = [];
  for (const x of entries) chunks.push(...e.entry(x, x.data));
  chunks.push(e.trailer());
  return concat(chunks);
}

/** Joins byte arrays (kept for callers of this module). */
export const concat = (chunks: Uint8Array[]) => concatBytes(chunks);

function kindOf(mode: number): CpioKind {
  switch (mode & 0o170000) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "dir";
    case 0o120000:
      return "symlink";
    case 0o020000:
      return "char";
    case 0o060000:
      return "block";
  }
  throw new Error(`cpio: unsupported file type in mode ${mode.toString(8)}`);
}

/**
 * Decode one newc archive that starts at `offset` in `buf` (alignment counted from `offset`).
 * Returns the entries (without the trailer) and `end`, the offset just past the trailer's padding,
 * so concatenated archives can be read one after another.
 */
export function decodeArchive(buf: Uint8Array, offset = 0): { entries: CpioEntry[]; end: number } {
  const entries: CpioEntry[] = [];
  let p = offset;
  const field = (at: number, i: number) => {
    const s = dec.decode(buf.subarray(at + 6 + i * 8, at + 14 + i * 8));
    if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new Error(`cpio: bad header field at ${at + 6 + i * 8}`);
    return parseInt(s, 16);
  };
  for (;;) {
    if (p + HEADER_LEN > buf.length) throw new Error(`cpio: truncated header at ${p}`);
    const magic = dec.decode(buf.subarray(p, p + 6));
    if (magic !== NEWC_MAGIC) throw new Error(`cpio: bad magic ${JSON.stringify(magic)} at ${p}`);
    const [ino, mode, uid, gid, nlink, mtime, size, , , rmaj, rmin, namesize] = Array.from({ length: 13 }, (_, i) => field(p, i)) as number[];
    const nameStart = p + HEADER_LEN;
    if (nameStart + namesize! > buf.length) throw new Error(`cpio: truncated name at ${nameStart}`);
    const path = dec.decode(buf.subarray(nameStart, nameStart + namesize! - 1));
    let q = nameStart + namesize!;
    q += pad4(q - offset);
    if (path === TRAILER) return { entries, end: q };
    if (q + size! > buf.length) throw new Error(`cpio: truncated data of ${path}`);
    const data = buf.slice(q, q + size!);
    q += size!;
    q += pad4(q - offset);
    const kind = kindOf(mode!);
    const e: CpioEntry = { path, kind, perm: mode! & 0o7777, mtime, uid, gid, ino, nlink };
    if (kind === "file" || kind === "symlink") e.data = data;
    if (kind === "char" || kind === "block") {
      e.major = rmaj;
      e.minor = rmin;
    }
    entries.push(e);
    p = q;
  }
}
