// Turning stored chunk bytes back into verified plain bytes. Every path that hands chunk data to a
// reader (HTTP origin, local store, disk cache) goes through unpackChunk, so unverified bytes never
// leave the fetcher.
import { sha256Hex } from "./chunk-name.ts";
import { unpackPool, UnpackError } from "./unpack-pool.ts";
import { rawFramePlainInPlace, zstdDeclaredSize } from "./zstd-raw.ts";

export interface ChunkRef {
  /** SHA-256 of the plain bytes, lowercase hex (also the chunk's file name) */
  hex: string;
  /** expected plain length */
  size: number;
}

export class ChunkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChunkError";
  }
}

/** The only way bytes leave this module: length and digest match the reference. */
function checkPlain(ref: ChunkRef, plain: Uint8Array): Uint8Array {
  if (plain.length !== ref.size)
    throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: ${plain.length} bytes, expected ${ref.size}`);
  if (sha256Hex(plain) !== ref.hex) throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: digest mismatch`);
  return plain;
}

/** Before decompressing: the frame must declare the expected size (else a small hostile frame
 *  could make the decoder allocate gigabytes). */
function checkDeclared(ref: ChunkRef, packed: Uint8Array): void {
  const d = zstdDeclaredSize(packed);
  if (d === -1) throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: not a zstd frame that declares its size`);
  if (d !== ref.size) throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: declares ${d} bytes, expected ${ref.size}`);
}

/** The most bytes a stored chunk of `size` plain bytes can take: zstd's worst case (incompressible
 *  data in raw blocks) plus room for headers. A larger body is not a chunk: it is refused before
 *  it is all in memory. */
export const maxPackedSize = (size: number): number => size + (size >> 7) + 4096;

/** Decompresses and checks length and digest; throws ChunkError on any mismatch. */
export function unpackChunk(ref: ChunkRef, packed: Uint8Array): Uint8Array {
  checkDeclared(ref, packed);
  let plain: Uint8Array;
  try {
    plain = Bun.zstdDecompressSync(packed);
  } catch {
    throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: not valid zstd data`);
  }
  return checkPlain(ref, plain);
}

/** unpackChunk on a worker thread (unpack-pool.ts), so the event loop (NBD replies, HTTP) keeps
 *  running while a chunk inflates and is hashed. Same checks, same errors. `packed` and the rest
 *  of its ArrayBuffer may be handed over to the worker (detached) or overwritten (raw-block
 *  frames are gathered in place): callers must not use it afterwards, nor pass a view of a buffer
 *  that holds other live data (an HTTP body or a file read is fine). Small chunks, or no worker,
 *  run on this thread with the decompression on Bun's thread pool. */
export async function unpackChunkAsync(ref: ChunkRef, packed: Uint8Array): Promise<Uint8Array> {
  checkDeclared(ref, packed);
  const pool = unpackPool();
  if (pool.usable && packed.length >= WORKER_MIN) {
    try {
      return await pool.unpack(packed, ref.size, ref.hex);
    } catch (e) {
      if (e instanceof UnpackError) throw new ChunkError(e.message);
      if (packed.buffer.byteLength === 0) throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: ${(e as Error).message}`);
      // the worker failed before taking the bytes: check them here
    }
  }
  let plain = rawFramePlainInPlace(packed);
  if (!plain) try {
    plain = await Bun.zstdDecompress(packed);
  } catch {
    throw new ChunkError(`chunk ${ref.hex.slice(0, 16)}…: not valid zstd data`);
  }
  return checkPlain(ref, plain);
}

/** below this many packed bytes a worker round trip costs more than it saves */
const WORKER_MIN = 8 * 1024;
