// The one interface of the chunk fetcher's stackable layers (nbdkit-filter style): memory cache,
// single-flight, disk cache, mirror failover and origins all take a chunk reference and return
// the chunk's verified plain bytes, each wrapping the layer below without knowing what it is.
import type { ChunkRef } from "../chunk.ts";
export type { ChunkRef } from "../chunk.ts";

export interface ChunkLayer {
  /** Verified plain bytes of the chunk. `signal` aborts this attempt (set by the mirror layer). */
  get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** A layer that talks to one place (a base URL or a directory); the mirror layer ranks these. */
export interface Origin extends ChunkLayer {
  readonly name: string;
}
