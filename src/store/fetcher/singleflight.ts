// Single-flight: concurrent requests for the same chunk share one fetch below.
import type { ChunkRef } from "../chunk.ts";
import type { ChunkLayer } from "./layer.ts";

export class SingleFlight implements ChunkLayer {
  private pending = new Map<string, Promise<Uint8Array>>();
  /** requests that joined a fetch already in flight */
  joined = 0;

  constructor(private inner: ChunkLayer) {}

  get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    const p = this.pending.get(ref.hex);
    if (p) {
      this.joined++;
      return p;
    }
    const q = this.inner.get(ref, signal).finally(() => this.pending.delete(ref.hex));
    this.pending.set(ref.hex, q);
    return q;
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
