// Single-flight: concurrent requests for the same chunk share one fetch below.
import type { ChunkRef } from "../chunk.ts";
import type { ChunkLayer } from "./layer.ts";

export class SingleFlight implements ChunkLayer {
  private pending = new Map<string, Promise<Uint8Array>>();
  /** requests that joined a fetch already in flight */
  joined = 0;

  constructor(private inner: ChunkLayer) {}

  /** The shared fetch gets no caller's signal (one caller giving up must not fail the others);
   *  a caller's signal only ends its own wait. */
  get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    let p = this.pending.get(ref.hex);
    if (p) this.joined++;
    else {
      p = this.inner.get(ref).finally(() => this.pending.delete(ref.hex));
      this.pending.set(ref.hex, p);
    }
    return signal ? untilAborted(p, signal) : p;
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
