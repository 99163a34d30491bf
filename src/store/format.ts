// Store index codec (pure: bytes in, bytes out; no I/O). Layout documented in docs/store-format.md.
//
//   off  size  field
//     0     8  magic "IBSTORE\0"
//     8     2  format version (u16 LE) = 1
//    10     1  log2(chunk size) (16..22)
//    11     1  hash algorithm (1 = SHA-256)
//    12     4  flags (u32 LE) = 0
//    16     8  image size in bytes (u64 LE)
//    24     4  chunk count (u32 LE) = ceil(size / chunk size)
//    28     4  reserved = 0
//    32  32*N  chunk digests in image order; 32 zero bytes mark an all-zero chunk (not stored)
//  end-32  32  SHA-256 of every byte before it (index checksum)

import type { ChunkRef } from "./chunk.ts";

export const INDEX_MAGIC = new Uint8Array([0x49, 0x42, 0x53, 0x54, 0x4f, 0x52, 0x45, 0x00]); // "IBSTORE\0"
export const INDEX_VERSION = 1;
export const HASH_SHA256 = 1;
export const DIGEST_LEN = 32;
export const HEADER_LEN = 32;
export const MIN_CHUNK_SHIFT = 16; // 64 KiB
export const MAX_CHUNK_SHIFT = 22; // 4 MiB
export const DEFAULT_CHUNK_SIZE = 256 * 1024;

export interface StoreIndex {
  version: number;
  imageSize: number;
  chunkSize: number;
  /** N*32 bytes; an all-zero 32-byte entry is a zero chunk. */
  digests: Uint8Array;
}

export class IndexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IndexError";
  }
}

/** log2 of a valid chunk size, or an IndexError naming the bad value. */
export function chunkShift(chunkSize: number): number {
  const shift = Math.log2(chunkSize);
  if (!Number.isInteger(shift) || shift < MIN_CHUNK_SHIFT || shift > MAX_CHUNK_SHIFT)
    throw new IndexError(`chunk size ${chunkSize} is not a power of two between 64 KiB and 4 MiB`);
  return shift;
}

export function chunkCount(imageSize: number, chunkSize: number): number {
  return Math.ceil(imageSize / chunkSize);
}

/** Plain length of chunk i (only the last one may be short). */
export function chunkLength(idx: Pick<StoreIndex, "imageSize" | "chunkSize">, i: number): number {
  return Math.min(idx.chunkSize, idx.imageSize - i * idx.chunkSize);
}

export function digestAt(idx: StoreIndex, i: number): Uint8Array {
  return idx.digests.subarray(i * DIGEST_LEN, (i + 1) * DIGEST_LEN);
}

export function isZeroDigest(d: Uint8Array): boolean {
  for (let i = 0; i < d.length; i++) if (d[i] !== 0) return false;
  return true;
}

/** References to the given chunks, in the order given: none beyond the image, no zero chunk (never
 *  stored), no digest twice (a prefetch or fill plan fetches each stored chunk once). */
export function distinctChunkRefs(idx: StoreIndex, chunks: Iterable<number>): ChunkRef[] {
  const n = Math.ceil(idx.imageSize / idx.chunkSize);
  const seen = new Set<string>();
  const out: ChunkRef[] = [];
  for (const i of chunks) {
    if (i < 0 || i >= n) continue;
    const d = digestAt(idx, i);
    if (isZeroDigest(d)) continue;
    const hex = d.toHex();
    if (seen.has(hex)) continue;
    seen.add(hex);
    out.push({ hex, size: chunkLength(idx, i) });
  }
  return out;
}

function sha256(data: Uint8Array): Uint8Array {
  const h = new Bun.CryptoHasher("sha256");
  h.update(data);
  return new Uint8Array(h.digest().buffer as ArrayBuffer);
}

export function encodeIndex(idx: StoreIndex): Uint8Array {
  const shift = chunkShift(idx.chunkSize);
  const n = chunkCount(idx.imageSize, idx.chunkSize);
  if (idx.digests.length !== n * DIGEST_LEN)
    throw new IndexError(`index has ${idx.digests.length / DIGEST_LEN} digests, image needs ${n}`);
  const out = new Uint8Array(HEADER_LEN + n * DIGEST_LEN + DIGEST_LEN);
  const dv = new DataView(out.buffer);
  out.set(INDEX_MAGIC, 0);
  dv.setUint16(8, INDEX_VERSION, true);
  out[10] = shift;
  out[11] = HASH_SHA256;
  dv.setUint32(12, 0, true);
  dv.setBigUint64(16, BigInt(idx.imageSize), true);
  dv.setUint32(24, n, true);
  out.set(idx.digests, HEADER_LEN);
  out.set(sha256(out.subarray(0, out.length - DIGEST_LEN)), out.length - DIGEST_LEN);
  return out;
}

/** The first words of `bytes` when they are printable text (an index starts with binary), else null. */
function textStart(bytes: Uint8Array): string | null {
  const head = bytes.subarray(0, 48);
  if (head.length === 0 || !head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))) return null;
  const words = new TextDecoder().decode(head).replace(/\s+/g, " ").trim();
  return bytes.length > 48 ? `${words}…` : words;
}

/** Parses and checks an index; any inconsistency is an IndexError with one line saying what. */
export function decodeIndex(bytes: Uint8Array): StoreIndex {
  const text = textStart(bytes);
  // a login page of a captive portal, a CDN's error page sent with 200
  if (text !== null) throw new IndexError(`not a store index: the server sent text ("${text}"; a login or error page?)`);
  if (bytes.length < HEADER_LEN + DIGEST_LEN) throw new IndexError(`index too short (${bytes.length} bytes)`);
  for (let i = 0; i < INDEX_MAGIC.length; i++)
    if (bytes[i] !== INDEX_MAGIC[i]) throw new IndexError("not a store index (bad magic)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(8, true);
  if (version !== INDEX_VERSION) throw new IndexError(`unsupported index version ${version}`);
  const want = sha256(bytes.subarray(0, bytes.length - DIGEST_LEN));
  const have = bytes.subarray(bytes.length - DIGEST_LEN);
  for (let i = 0; i < DIGEST_LEN; i++) if (want[i] !== have[i]) throw new IndexError("index checksum mismatch (corrupt index)");
  const shift = bytes[10]!;
  if (shift < MIN_CHUNK_SHIFT || shift > MAX_CHUNK_SHIFT) throw new IndexError(`bad chunk size 2^${shift} in index`);
  if (bytes[11] !== HASH_SHA256) throw new IndexError(`unknown hash algorithm ${bytes[11]} in index`);
  if (dv.getUint32(12, true) !== 0) throw new IndexError("unknown index flags");
  const size = dv.getBigUint64(16, true);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new IndexError("image size too large");
  const imageSize = Number(size);
  const chunkSize = 2 ** shift;
  const n = dv.getUint32(24, true);
  if (n !== chunkCount(imageSize, chunkSize)) throw new IndexError(`chunk count ${n} does not match image size ${imageSize}`);
  if (bytes.length !== HEADER_LEN + n * DIGEST_LEN + DIGEST_LEN)
    throw new IndexError(`index length ${bytes.length} does not match ${n} chunks`);
  // Copy so the index does not pin a larger network buffer.
  const digests = bytes.slice(HEADER_LEN, HEADER_LEN + n * DIGEST_LEN);
  return { version, imageSize, chunkSize, digests };
}

export interface IndexSummary {
  chunks: number;
  zero: number;
  /** distinct non-zero digests (chunk files the image needs) */
  unique: number;
}

export function summarize(idx: StoreIndex): IndexSummary {
  const n = idx.digests.length / DIGEST_LEN;
  const seen = new Set<string>();
  let zero = 0;
  for (let i = 0; i < n; i++) {
    const d = digestAt(idx, i);
    if (isZeroDigest(d)) zero++;
    else seen.add(d.toHex());
  }
  return { chunks: n, zero, unique: seen.size };
}

/** Parses "256K", "1M", "65536" into bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*([kKmMgG]?)(i?[bB])?$/.exec(text.trim());
  if (!m) throw new IndexError(`bad size "${text}" (use e.g. 256K or 1M)`);
  const mul = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * mul;
}
