// The boot pack layer: sits on the mirror layer and, while a boot pack streams in, answers the
// chunks it announced from the stream instead of one request each. An entry is checked against the
// index's SHA-256 like any fetched chunk; a chunk the pack does not hold, an entry that fails its
// check, or a stream that breaks off falls through to the mirrors. Idle (no pack) it is a pass-through.
import { unpackChunkAsync, type ChunkRef } from "../chunk.ts";
import type { ChunkLayer } from "./layer.ts";

interface Expected {
  promise: Promise<Uint8Array>;
  resolve: (packed: Uint8Array) => void;
  reject: (e: Error) => void;
  delivered: boolean;
  /** plain bytes of the pack's entries before this one */
  at: number;
}

/** A read waits for the stream only when its chunk is at most this many bytes beyond what has
 *  arrived (about a round trip's worth on a fast link); further ahead, fetching it alone is sooner. */
export const PACK_WAIT_BYTES = 1 << 20;

export interface PackStats {
  /** chunks announced (the profile's plan) */
  expected: number;
  /** served from the pack, checked */
  served: number;
  /** entries that failed their check (fetched from the mirrors instead) */
  bad: number;
}

export class PackLayer implements ChunkLayer {
  private expected = new Map<string, Expected>();
  readonly stats: PackStats = { expected: 0, served: 0, bad: 0 };
  private warned = false;
  /** plain bytes announced so far / of the entries delivered (the stream's position) */
  private announced = 0;
  private arrived = 0;

  constructor(
    private inner: ChunkLayer,
    private log: (line: string) => void = () => {},
  ) {}

  /** The chunks a pack stream is about to deliver, in its order. */
  expect(refs: Iterable<ChunkRef>): void {
    for (const { hex, size } of refs) {
      if (this.expected.has(hex)) continue;
      let resolve!: (p: Uint8Array) => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<Uint8Array>((a, b) => ((resolve = a), (reject = b)));
      promise.catch(() => {}); // nobody may ask for it: not an unhandled rejection
      this.expected.set(hex, { promise, resolve, reject, delivered: false, at: this.announced });
      this.announced += size;
      this.stats.expected++;
    }
  }

  /** An entry arrived (unchecked bytes as stored); it waits here until read. Entries nobody
   *  announced are dropped. */
  deliver(hex: string, packed: Uint8Array): void {
    const x = this.expected.get(hex);
    if (!x || x.delivered) return;
    x.delivered = true;
    this.arrived = Math.max(this.arrived, x.at);
    x.resolve(packed);
  }

  /** The stream ended (`why`: it broke off): whatever it did not deliver comes from the mirrors
   *  (what it did deliver stays until read). */
  end(why?: string): void {
    const missing = [...this.expected].filter(([, x]) => !x.delivered);
    if (why && missing.length > 0) this.log(`warning: boot pack: ${why}; fetching the rest chunk by chunk`);
    // A whole pack without some of the profile's chunks was made for an older profile of this index.
    else if (missing.length > 0)
      this.log(`warning: boot pack lacks ${missing.length} of the profile's ${this.stats.expected} chunks (made for an earlier profile? run 'inetboot profile pack' again); fetching those chunk by chunk`);
    this.forget(missing, why);
  }

  private forget(missing: [string, Expected][], why?: string): void {
    const e = new Error(why ?? "not in the boot pack");
    for (const [hex, x] of missing) {
      x.reject(e);
      this.expected.delete(hex);
    }
  }

  get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    const x = this.expected.get(ref.hex);
    // not in a pack (the usual case: no pack, or a chunk it lacks): straight through, no extra hop
    if (!x) return this.inner.get(ref, signal);
    if (!x.delivered && x.at - this.arrived > PACK_WAIT_BYTES) {
      this.expected.delete(ref.hex); // far ahead of the stream: fetched alone, its entry dropped
      return this.inner.get(ref, signal);
    }
    return this.fromPack(ref, x, signal);
  }

  private async fromPack(ref: ChunkRef, x: Expected, signal?: AbortSignal): Promise<Uint8Array> {
    const packed = await x.promise.catch(() => null);
    this.expected.delete(ref.hex); // read once (single-flight above): the bytes go with this read
    if (packed) {
      try {
        const plain = await unpackChunkAsync(ref, packed);
        this.stats.served++;
        return plain;
      } catch (e) {
        this.stats.bad++;
        if (!this.warned) this.log(`warning: boot pack: chunk ${ref.hex.slice(0, 16)}… ${(e as Error).message}; fetching it from the store`);
        this.warned = true;
      }
    }
    return this.inner.get(ref, signal);
  }

  /** Forgets every entry, delivered or not (the prefetch is over: what was not read by now, the
   *  caches above had). */
  drop(): void {
    this.forget([...this.expected].filter(([, x]) => !x.delivered));
    this.expected.clear();
  }

  close(): Promise<void> {
    this.drop();
    return this.inner.close?.() ?? Promise.resolve();
  }
}
