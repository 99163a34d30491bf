// Chunk naming: a chunk lives under the SHA-256 of its plain (uncompressed) bytes, fanned out by
// the first byte so no directory grows past a few thousand entries: chunks/ab/abcdef….zst

export const CHUNKS_DIR = "chunks";
export const DEFAULT_INDEX_NAME = "index";

export function sha256(data: Uint8Array): Uint8Array {
  const h = new Bun.CryptoHasher("sha256");
  h.update(data);
  return new Uint8Array(h.digest().buffer as ArrayBuffer);
}

export function sha256Hex(data: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(data);
  return h.digest("hex");
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Path of a chunk relative to the store root (also the URL path below the store base URL). */
export function chunkPath(hex: string): string {
  if (!HEX64.test(hex)) throw new Error(`bad chunk digest "${hex}"`);
  return `${CHUNKS_DIR}/${hex.slice(0, 2)}/${hex}.zst`;
}

/** Index file name for an image name ("index" when unnamed, else NAME.index). */
export function indexFileName(name?: string): string {
  if (!name) return DEFAULT_INDEX_NAME;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.includes(".."))
    throw new Error(`bad image name "${name}" (letters, digits, . _ - only)`);
  return `${name}.index`;
}

export function isAllZero(data: Uint8Array): boolean {
  // Compare 4 bytes at a time where aligned (zero detection runs over every packed byte;
  // u32 words are ~10x faster than BigUint64 here, and float views would treat -0 as zero).
  const n4 = data.byteOffset % 4 === 0 ? data.length >>> 2 : 0;
  if (n4) {
    const w = new Uint32Array(data.buffer, data.byteOffset, n4);
    for (let i = 0; i < n4; i++) if (w[i] !== 0) return false;
  }
  for (let i = n4 * 4; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}
