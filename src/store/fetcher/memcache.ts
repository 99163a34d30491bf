// In-memory LRU of verified chunks, capped by bytes (a Map keeps insertion order: re-inserting on
// hit makes the first key the least recently used).
import type { ChunkRef } from "../chunk.ts";
import type { ChunkLayer } from "./layer.ts";

export class MemCache implements ChunkLayer {
  private map = new Map<string, Uint8Array>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    private inner: ChunkLayer,
    readonly capBytes: number,
  ) {}

  peek(hex: string): Uint8Array | undefined {
    return this.map.get(hex);
  }

  async get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    const hit = this.map.get(ref.hex);
    if (hit) {
      this.hits++;
      this.map.delete(ref.hex);
      this.map.set(ref.hex, hit);
      return hit;
    }
    this.misses++;
    const data = await this.inner.get(ref, signal);
    this.put(ref.hex, data);
    return data;
  }

  private put(hex: string, data: Uint8Array): void {
    if (data.length > this.capBytes || this.map.has(hex)) return;
    this.map.set(hex, data);
    this.bytes += data.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.capBytes) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }

  get size(): number {
    return this.bytes;
  }

  close(): Promise<void> {
    this.map.clear();
    this.bytes = 0;
    return this.inner.close?.() ?? Promise.resolve();
  }
}
