// A zstd frame that stores its bytes uncompressed ("Raw" blocks, RFC 8878 §3.1.1.2): any zstd
// decoder reads it at memcpy speed. The disk cache writes chunks this way by default, trading
// space for warm reads (level-1 frames of ELF data decompress at ~600 MB/s, which limited a
// second boot from a filled cache), while staying one valid zstd frame per chunk as the store
// format requires.

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 * 1024;

/** One zstd frame holding `plain` in raw blocks, with its content size in the header. */
export function zstdRawFrame(plain: Uint8Array): Uint8Array {
  const pieces = zstdRawFramePieces(plain);
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of pieces) (out.set(p, o), (o += p.length));
  return out;
}

/** The same frame as pieces to write one after the other (e.g. with writev): small headers and
 *  views of `plain`, so storing a chunk copies nothing. */
export function zstdRawFramePieces(plain: Uint8Array): Uint8Array[] {
  if (plain.length > 0xffffffff) throw new Error("zstdRawFrame: input too large");
  const blocks = Math.max(1, Math.ceil(plain.length / MAX_BLOCK));
  const head = new Uint8Array(4 + 1 + 4);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, MAGIC, true);
  // Frame_Header_Descriptor: Frame_Content_Size_flag = 2 (4 bytes), Single_Segment_flag = 1,
  // no checksum, no dictionary. Single segment: the window is the content size.
  head[4] = (2 << 6) | (1 << 5);
  dv.setUint32(5, plain.length, true);
  const out: Uint8Array[] = [head];
  for (let b = 0; b < blocks; b++) {
    const from = b * MAX_BLOCK;
    const n = Math.min(MAX_BLOCK, plain.length - from);
    const last = b === blocks - 1 ? 1 : 0;
    const h = last | (0 << 1) | (n << 3); // Block_Type 0 = Raw
    out.push(new Uint8Array([h & 0xff, (h >>> 8) & 0xff, (h >>> 16) & 0xff]));
    if (n > 0) out.push(plain.subarray(from, from + n));
  }
  return out;
}

/**
 * The plain bytes of `frame` when it is one zstd frame made only of Raw blocks (what
 * zstdRawFrame writes), gathered in place: the blocks are moved together inside `frame`'s own
 * buffer (overwriting the block headers) and a view of them is returned, with no allocation.
 * Anything else (compressed or RLE blocks, several frames, trailing bytes) returns null and is
 * left untouched: decompress it normally. The frame checksum, if any, is not checked (callers
 * verify the plain bytes' SHA-256). Self-contained (no imports) so the unpack worker can embed
 * its source.
 */
export function rawFramePlainInPlace(frame: Uint8Array): Uint8Array | null {
  const n = frame.length;
  if (n < 8 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return null;
  const fhd = frame[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  if (fhd & 0x18) return null; // reserved / unused bits set: let the real decoder judge
  let p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]! + [single, 2, 4, 8][fcsFlag]!;
  // First pass: every block raw, and the frame ends exactly at the end of `frame`.
  let q = p;
  for (;;) {
    if (q + 3 > n) return null;
    const h = frame[q]! | (frame[q + 1]! << 8) | (frame[q + 2]! << 16);
    if (((h >> 1) & 3) !== 0) return null;
    q += 3 + (h >>> 3);
    if (q > n) return null;
    if (h & 1) break;
  }
  if (q + (checksum ? 4 : 0) !== n) return null;
  // Second pass: move each block's bytes down over the headers before it (the first stays put).
  const begin = p + 3;
  let out = begin;
  for (;;) {
    const h = frame[p]! | (frame[p + 1]! << 8) | (frame[p + 2]! << 16);
    const size = h >>> 3;
    if (out !== p + 3) frame.copyWithin(out, p + 3, p + 3 + size);
    p += 3 + size;
    out += size;
    if (h & 1) break;
  }
  return frame.subarray(begin, out);
}

/**
 * The plain size a zstd frame's header declares (Frame_Content_Size, RFC 8878 §3.1.1.1.4), or -1
 * when `frame` does not start with a zstd frame header or declares no size. Checked before
 * decompressing: a decoder allocates what the header says, so a hostile chunk of a few KB could
 * otherwise demand a GiB. Self-contained (no imports) so the unpack worker can embed its source.
 */
export function zstdDeclaredSize(frame: Uint8Array): number {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return -1;
  const fhd = frame[4]!;
  const single = (fhd >> 5) & 1;
  const fcsBytes = [single, 2, 4, 8][fhd >> 6]!;
  if (fcsBytes === 0) return -1;
  const p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]!;
  if (p + fcsBytes > frame.length) return -1;
  let v = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) v = v * 256 + frame[p + i]!;
  return fcsBytes === 2 ? v + 256 : v;
}
