// A zstd frame that stores its bytes uncompressed ("Raw" blocks, RFC 8878 §3.1.1.2): any zstd
// decoder reads it at memcpy speed. The disk cache writes chunks this way by default, trading
// space for warm reads (level-1 frames of ELF data decompress at ~600 MB/s, which limited a
// second boot from a filled cache), while staying one valid zstd frame per chunk as the store
// format requires.

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 * 1024;

/** One zstd frame holding `plain` in raw blocks, with its content size in the header. */
export function zstdRawFrame(plain: Uint8Array): Uint8Array {
  if (plain.length > 0xffffffff) throw new Error("zstdRawFrame: input too large");
  const blocks = Math.max(1, Math.ceil(plain.length / MAX_BLOCK));
  const out = new Uint8Array(4 + 1 + 4 + blocks * 3 + plain.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  // Frame_Header_Descriptor: Frame_Content_Size_flag = 2 (4 bytes), Single_Segment_flag = 1,
  // no checksum, no dictionary. Single segment: the window is the content size.
  out[4] = (2 << 6) | (1 << 5);
  dv.setUint32(5, plain.length, true);
  let p = 9;
  for (let b = 0; b < blocks; b++) {
    const from = b * MAX_BLOCK;
    const n = Math.min(MAX_BLOCK, plain.length - from);
    const last = b === blocks - 1 ? 1 : 0;
    const h = last | (0 << 1) | (n << 3); // Block_Type 0 = Raw
    out[p] = h & 0xff;
    out[p + 1] = (h >>> 8) & 0xff;
    out[p + 2] = (h >>> 16) & 0xff;
    out.set(plain.subarray(from, from + n), p + 3);
    p += 3 + n;
  }
  return out;
}
