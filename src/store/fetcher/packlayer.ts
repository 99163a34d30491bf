// The boot pack layer: sits on the mirror layer and, while a boot pack streams in, answers the
// chunks it announced from the stream instead of one request each. An entry is checked against the
// index's SHA-256 like any fetched chunk; a chunk the pack does not hold, an entry that fails its
// check, or a stream that breaks off falls through to the mirrors. Idle (no pack) it is a pass-through.
//
// Entries that arrived but were not read yet are held in memory, up to `holdBytes`: beyond that
// the stream waits (room()), and TCP slows the server down, so a pack larger than the machine's
// RAM cannot fill it. Entries the readers have gone past (the caches above had them) are dropped
// rather than waited on.
import { unpackChunkAsync, type ChunkRef } from "../chunk.ts";
import type { ChunkLayer } from "./layer.ts";

interface Expected {
  /** the stored bytes, or null: not kept (fetch the chunk from below) */
  promise: Promise<Uint8Array | null>;
  resolve: (packed: Uint8Array | null) => void;
  reject: (e: Error) => void;
  delivered: boolean;
  /** plain bytes of the pack's entries before this one */
  at: number;
  /** stored bytes this entry holds in memory (0 once read or dropped) */
  held: number;
  /** a reader asked for it */
  reading: boolean;
}

/** A read waits for the stream only when its chunk is at most this many bytes beyond what has
 *  arrived (about a round trip's worth on a fast link); further ahead, fetching it alone is sooner. */
export const PACK_WAIT_BYTES = 1 << 20;

/** Stored bytes of arrived, unread entries held at most (default): a few seconds of a fast link. */
export const PACK_HOLD_BYTES = 32 << 20;

export interface PackStats {
  /** chunks announced (the profile's plan) */
  expected: number;
  /** served from the pack, checked */
  served: number;
  /** entries that failed their check (fetched from the mirrors instead) */
  bad: number;
  /** entries dropped unread (readers had gone past them, or the prefetch was over) */
  dropped: number;
}

export class PackLayer implements ChunkLayer {
  private expected = new Map<string, Expected>();
  readonly stats: PackStats = { expected: 0, served: 0, bad: 0, dropped: 0 };
  private warned = false;
  /** plain bytes announced so far / of the entries delivered (the stream's position) */
  private announced = 0;
  private arrived = 0;
  /** stored bytes of arrived, unread entries */
  private held = 0;
  /** the furthest entry (by `at`) a reader asked the pack for: readers go through the pack
   *  roughly in its order, so an unread entry behind this one is one they skipped */
  private readAt = 0;
  /** false once release() was called: arriving entries are no longer kept */
  private holding = true;
  private roomWaiters: (() => void)[] = [];

  constructor(
    private inner: ChunkLayer,
    private log: (line: string) => void = () => {},
    readonly holdBytes = PACK_HOLD_BYTES,
  ) {}

  /** The chunks a pack stream is about to deliver, in its order. */
  expect(refs: Iterable<ChunkRef>): void {
    for (const { hex, size } of refs) {
      if (this.expected.has(hex)) continue;
      let resolve!: (p: Uint8Array | null) => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<Uint8Array | null>((a, b) => ((resolve = a), (reject = b)));
      promise.catch(() => {}); // nobody may ask for it: not an unhandled rejection
      this.expected.set(hex, { promise, resolve, reject, delivered: false, at: this.announced, held: 0, reading: false });
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
    if (!this.holding) {
      this.expected.delete(hex); // counted as delivered (not "missing" at end()), not kept
      x.resolve(null);
      return;
    }
    x.held = packed.length;
    this.held += x.held;
    x.resolve(packed);
    if (this.held > this.holdBytes) this.dropPassed();
  }

  /** Resolves once the held entries fit in holdBytes again (null: they do, go on). The stream's
   *  reader waits on it, so the server is slowed down instead of the entries piling up. */
  room(): Promise<void> | null {
    if (this.held <= this.holdBytes) return null;
    // Readers waiting for entries still to come would wait for ever: they fetch theirs alone.
    for (const [hex, x] of this.expected)
      if (x.reading && !x.delivered) {
        this.expected.delete(hex);
        x.resolve(null);
      }
    return new Promise((r) => this.roomWaiters.push(r));
  }

  /** The arrived entries are no longer wanted (the prefetch is over): drop those held, and keep
   *  none that arrive from now on. The stream may still run to its end (stats, end()'s warning). */
  release(): void {
    this.holding = false;
    for (const [hex, x] of this.expected) if (x.delivered && !x.reading) this.remove(hex, x, true);
    this.wake();
  }

  /** Forgets an entry; `dropped`: unread, its bytes go (a later read fetches the chunk from below). */
  private remove(hex: string, x: Expected, dropped = false): void {
    if (this.expected.get(hex) === x) this.expected.delete(hex);
    if (x.held === 0) return;
    this.held -= x.held;
    x.held = 0;
    if (dropped) this.stats.dropped++;
    this.wake();
  }

  private wake(): void {
    if (this.roomWaiters.length === 0 || (this.held > this.holdBytes && this.holding)) return;
    const w = this.roomWaiters;
    this.roomWaiters = [];
    for (const f of w) f();
  }

  /** Over the limit: drops the held entries behind the furthest one read (skipped: the caches
   *  above had them; the readers, a prefetcher among them, go in the pack's order). What is left
   *  is ahead of the readers: the stream waits for them (room()). */
  private dropPassed(): void {
    for (const [hex, x] of this.expected) if (x.held > 0 && !x.reading && x.at < this.readAt) this.remove(hex, x, true);
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
    // Far ahead of the stream, or the stream waits for room: fetched alone, its entry dropped.
    if (!x.delivered && (x.at - this.arrived > PACK_WAIT_BYTES || this.roomWaiters.length > 0)) {
      this.expected.delete(ref.hex);
      return this.inner.get(ref, signal);
    }
    return this.fromPack(ref, x, signal);
  }

  private async fromPack(ref: ChunkRef, x: Expected, signal?: AbortSignal): Promise<Uint8Array> {
    x.reading = true;
    if (x.at > this.readAt) {
      this.readAt = x.at;
      if (this.held > this.holdBytes) this.dropPassed();
    }
    const packed = await x.promise.catch(() => null);
    this.remove(ref.hex, x); // read once (single-flight above): the bytes go with this read
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
    for (const [hex, x] of this.expected) this.remove(hex, x);
    this.holding = false;
    this.wake();
  }

  close(): Promise<void> {
    this.drop();
    return this.inner.close?.() ?? Promise.resolve();
  }
}
