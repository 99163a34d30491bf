// Boot pack codec (pure: bytes in, bytes out). A boot pack holds the chunks a published boot
// profile lists, in profile order, as they are stored in chunks/ (zstd frames), so a boot can
// prefetch them with one streamed GET instead of one request per chunk. It is only a transport:
// every chunk is still checked against the index's SHA-256 before anyone reads it.
// Published next to the index as `<index name>.bootpack` (docs/prefetch.md).
// Layout (integers little-endian):
//
//   off  size  field
//     0     8  magic "IBPACK\0\0"
//     8     2  version = 1
//    10     2  flags = 0 (readers reject unknown flags)
//    12     4  entry count N
//    16    32  index checksum (as in the profile: names the index the pack was built from)
//    48        N entries: 32-byte SHA-256 of the chunk's plain bytes, u32 stored length L, L bytes
import { DIGEST_LEN } from "./format.ts";

export const BOOTPACK_MAGIC = new Uint8Array([0x49, 0x42, 0x50, 0x41, 0x43, 0x4b, 0x00, 0x00]); // "IBPACK\0\0"
export const BOOTPACK_VERSION = 1;
export const BOOTPACK_HEADER = 48;
const ENTRY_HEAD = DIGEST_LEN + 4;
/** A stored chunk is at most a 4 MiB chunk plus zstd's framing: anything longer is garbage. */
export const MAX_PACKED_CHUNK = 4 * 1024 * 1024 + 64 * 1024;
const MAX_ENTRIES = 1 << 24;

/** The file name a boot pack gets next to its index (`index` → `index.bootpack`). */
export function bootPackNameFor(indexName: string): string {
  return `${indexName}.bootpack`;
}

export class BootPackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BootPackError";
  }
}

export interface BootPackHeader {
  count: number;
  /** checksum of the index the pack belongs to (32 bytes) */
  indexDigest: Uint8Array;
}

export interface BootPackEntry {
  /** SHA-256 of the chunk's plain bytes */
  digest: Uint8Array;
  /** the chunk as stored (a zstd frame), a copy the consumer may keep */
  packed: Uint8Array;
}

export function encodeBootPackHeader(h: BootPackHeader, buf = new Uint8Array(BOOTPACK_HEADER), off = 0): Uint8Array {
  if (h.indexDigest.length !== DIGEST_LEN) throw new BootPackError(`index checksum of ${h.indexDigest.length} bytes`);
  const v = new DataView(buf.buffer, buf.byteOffset + off, BOOTPACK_HEADER);
  buf.set(BOOTPACK_MAGIC, off);
  v.setUint16(8, BOOTPACK_VERSION, true);
  v.setUint16(10, 0, true);
  v.setUint32(12, h.count, true);
  buf.set(h.indexDigest, off + 16);
  return buf;
}

export function decodeBootPackHeader(buf: Uint8Array, off = 0): BootPackHeader {
  if (buf.length - off < BOOTPACK_HEADER) throw new BootPackError(`boot pack header: ${buf.length - off} of ${BOOTPACK_HEADER} bytes`);
  for (let i = 0; i < BOOTPACK_MAGIC.length; i++)
    if (buf[off + i] !== BOOTPACK_MAGIC[i]) throw new BootPackError("not a boot pack (bad magic)");
  const v = new DataView(buf.buffer, buf.byteOffset + off, BOOTPACK_HEADER);
  const version = v.getUint16(8, true);
  if (version !== BOOTPACK_VERSION) throw new BootPackError(`boot pack version ${version} (this inetboot reads ${BOOTPACK_VERSION})`);
  const flags = v.getUint16(10, true);
  if (flags !== 0) throw new BootPackError(`boot pack flags 0x${flags.toString(16)} unknown`);
  const count = v.getUint32(12, true);
  if (count > MAX_ENTRIES) throw new BootPackError(`boot pack of ${count} entries`);
  return { count, indexDigest: buf.slice(off + 16, off + 16 + DIGEST_LEN) };
}

export function bootPackEntryLength(packed: Uint8Array): number {
  return ENTRY_HEAD + packed.length;
}

export function encodeBootPackEntry(digest: Uint8Array, packed: Uint8Array, buf = new Uint8Array(bootPackEntryLength(packed)), off = 0): Uint8Array {
  if (digest.length !== DIGEST_LEN) throw new BootPackError(`chunk digest of ${digest.length} bytes`);
  if (packed.length > MAX_PACKED_CHUNK) throw new BootPackError(`stored chunk of ${packed.length} bytes`);
  buf.set(digest, off);
  new DataView(buf.buffer, buf.byteOffset + off + DIGEST_LEN, 4).setUint32(0, packed.length, true);
  buf.set(packed, off + ENTRY_HEAD);
  return buf;
}

/**
 * Reads a boot pack as it streams in, in pieces of any size: the header once, then each entry as
 * soon as its last byte arrived. Throws BootPackError on a malformed stream (the caller stops
 * using it); `done` once all entries were seen (bytes after them are an error).
 */
export class BootPackParser {
  header: BootPackHeader | null = null;
  seen = 0;
  private buf = new Uint8Array(0);
  private have = 0;

  /** `onHeader` may throw (a pack for another index): feed() passes it on before any entry. */
  constructor(
    private onEntry: (e: BootPackEntry) => void,
    private onHeader: (h: BootPackHeader) => void = () => {},
  ) {}

  get done(): boolean {
    return this.header !== null && this.seen === this.header.count;
  }

  feed(piece: Uint8Array): void {
    if (this.done && piece.length > 0) throw new BootPackError("bytes after the last entry");
    this.append(piece);
    let pos = 0;
    for (;;) {
      const left = this.have - pos;
      if (!this.header) {
        if (left < BOOTPACK_HEADER) break;
        const h = decodeBootPackHeader(this.buf, pos);
        this.onHeader(h);
        this.header = h;
        pos += BOOTPACK_HEADER;
        continue;
      }
      if (this.done || left < ENTRY_HEAD) break;
      const len = new DataView(this.buf.buffer, this.buf.byteOffset + pos + DIGEST_LEN, 4).getUint32(0, true);
      if (len > MAX_PACKED_CHUNK) throw new BootPackError(`entry ${this.seen}: stored chunk of ${len} bytes`);
      if (left < ENTRY_HEAD + len) break;
      const digest = this.buf.slice(pos, pos + DIGEST_LEN);
      this.seen++;
      this.onEntry({ digest, packed: this.buf.slice(pos + ENTRY_HEAD, pos + ENTRY_HEAD + len) });
      pos += ENTRY_HEAD + len;
    }
    // the unparsed tail moves to the front (entries were handed out as copies)
    this.buf.copyWithin(0, pos, this.have);
    this.have -= pos;
  }

  private append(piece: Uint8Array): void {
    if (this.have + piece.length > this.buf.length) {
      const nb = new Uint8Array(Math.max(this.have + piece.length, this.buf.length * 2, 256 * 1024));
      nb.set(this.buf.subarray(0, this.have));
      this.buf = nb;
    }
    this.buf.set(piece, this.have);
    this.have += piece.length;
  }
}
