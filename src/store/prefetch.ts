// Profile-driven prefetch: fetch the chunks a recorded boot read, in the order it read them, before
// this boot asks for them. It sits beside the top of the chunk stack (memory cache ← single-flight
// ← disk cache ← mirrors), so a prefetched chunk lands in the memory cache (and on the cache
// medium), and a demand read of a chunk still in flight joins that fetch instead of starting one.
// Demand reads go first: prefetching only uses spare capacity (a few requests at a time, none
// while demand reads keep the connection pool busy), and it stops running ahead of the boot once
// `leadBytes` of prefetched chunks wait unread, so it cannot flush the memory cache.
import { distinctChunkRefs, type StoreIndex } from "./format.ts";
import type { ChunkRef } from "./chunk.ts";
import type { ChunkLayer } from "./fetcher/layer.ts";
import type { BootProfile } from "./profile.ts";

/** The chunk references to fetch, in profile order: no zero chunks, no digest twice, none beyond the image. */
export function planFromProfile(index: StoreIndex, profile: BootProfile): ChunkRef[] {
  return distinctChunkRefs(index, profile.entries.map((e) => e.chunk));
}

export interface PrefetchOptions {
  /** prefetch requests in flight at most (default 4) */
  parallel?: number;
  /** launch no prefetch while this many demand reads are in flight (default 8) */
  demandLimit?: number;
  /** prefetched bytes not yet read by the boot, at most (default 32 MiB) */
  leadBytes?: number;
  /** is the chunk still held in memory? (MemCache.peek) Lets the lead be recounted after evictions. */
  resident?: (hex: string) => boolean;
  /** halve the lead when the memory cache drops unread prefetched chunks (default true; false when a
   *  disk cache keeps them, so that reading one again costs no download) */
  shrinkOnEviction?: boolean;
}

export interface PrefetchStats {
  planned: number;
  /** fetched ahead (from the network, the disk cache or memory) */
  fetched: number;
  /** of those, later read by the boot */
  used: number;
  /** not fetched ahead: the boot read them first */
  skipped: number;
  failed: number;
  /** fetched ahead, then evicted from the memory cache before the boot read them (each halved the lead) */
  evicted: number;
  /** ms from start() until the plan was exhausted (null while running) */
  ms: number | null;
  /** with a boot pack: what its one GET brought (entries, bytes, ms, chunks served from it, bad ones, why it ended early) */
  pack?: { entries: number; bytes: number; ms: number; served: number; bad: number; error: string | null };
}

export class Prefetcher {
  readonly stats: PrefetchStats;
  /** The layer demand reads must go through (it tells the prefetcher what the boot read). */
  readonly demand: ChunkLayer;
  private cursor = 0;
  private inFlight = 0;
  private demandInFlight = 0;
  private lead = 0;
  /** prefetched (or in flight), not yet read by the boot: hex → size */
  private outstanding = new Map<string, number>();
  private demanded = new Set<string>();
  private started = false;
  private stopped = false;
  private t0 = 0;
  private finish!: () => void;
  /** resolves when every planned chunk was fetched, skipped or failed (or stop() was called) */
  readonly done: Promise<void>;
  private parallel: number;
  private demandLimit: number;
  private leadBytes: number;

  private plan: ChunkRef[] = [];

  /** Demand reads are tracked from here on; prefetching begins with start(plan). */
  constructor(
    private layer: ChunkLayer,
    private opts: PrefetchOptions = {},
  ) {
    this.parallel = Math.max(1, opts.parallel ?? 4);
    this.demandLimit = Math.max(1, opts.demandLimit ?? 8);
    this.leadBytes = opts.leadBytes ?? 32 << 20;
    this.stats = { planned: 0, fetched: 0, used: 0, skipped: 0, failed: 0, evicted: 0, ms: null };
    this.done = new Promise((r) => (this.finish = r));
    const self = this;
    this.demand = {
      async get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
        self.onDemand(ref);
        self.demandInFlight++;
        const data = self.layer.get(ref, signal); // out before any prefetch this read lets through
        self.pump();
        try {
          return await data;
        } finally {
          self.demandInFlight--;
          self.pump();
        }
      },
      async close() {
        self.stop();
        await self.layer.close?.();
      },
    };
  }

  start(plan: ChunkRef[]): void {
    if (this.started || this.stopped) return;
    this.plan = plan;
    this.stats.planned = plan.length;
    this.started = true;
    this.t0 = performance.now();
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.settle();
  }

  private onDemand(ref: ChunkRef): void {
    if (this.demanded.has(ref.hex)) return;
    this.demanded.add(ref.hex);
    const size = this.outstanding.get(ref.hex);
    if (size !== undefined) {
      this.outstanding.delete(ref.hex);
      this.lead -= size;
      this.stats.used++;
    }
  }

  /** Chunks the memory cache evicted before the boot read them no longer count against the lead,
   *  and the lead is halved: the memory cache cannot hold it beside what the boot reads, and
   *  running on would only fetch chunks for the cache to drop (the boot then fetches them again). */
  private recountLead(): void {
    if (!this.opts.resident) return;
    let evicted = 0;
    for (const [hex, size] of this.outstanding)
      if (!this.opts.resident(hex) && !this.pendingHex.has(hex)) {
        this.outstanding.delete(hex);
        this.lead -= size;
        this.largest = Math.max(this.largest, size);
        evicted++;
      }
    if (evicted === 0) return;
    this.stats.evicted += evicted;
    if (this.opts.shrinkOnEviction === false) return;
    this.leadBytes = Math.max(this.largest, this.leadBytes / 2); // never below one chunk: it still moves
  }


  private pendingHex = new Set<string>();
  /** the largest chunk evicted so far (the lead's floor) */
  private largest = 0;

  /** Launches prefetches while there is spare capacity. */
  private pump(): void {
    if (!this.started || this.stopped) return;
    while (this.cursor < this.plan.length && this.inFlight < this.parallel && this.demandInFlight < this.demandLimit) {
      if (this.lead >= this.leadBytes) {
        this.recountLead();
        if (this.lead >= this.leadBytes) break; // resumes when the boot catches up (onDemand → pump)
      }
      const ref = this.plan[this.cursor++]!;
      if (this.demanded.has(ref.hex)) {
        this.stats.skipped++;
        continue;
      }
      this.inFlight++;
      this.lead += ref.size;
      this.outstanding.set(ref.hex, ref.size);
      this.pendingHex.add(ref.hex);
      this.layer.get(ref).then(
        () => this.stats.fetched++,
        () => {
          // A failed prefetch is no error: the boot's own read retries (and reports) it.
          this.stats.failed++;
          if (this.outstanding.delete(ref.hex)) this.lead -= ref.size;
        },
      ).finally(() => {
        this.pendingHex.delete(ref.hex);
        this.inFlight--;
        this.pump();
      });
    }
    this.settle();
  }

  private settle(): void {
    if (this.stats.ms !== null) return;
    if ((this.stopped || this.cursor >= this.plan.length) && this.inFlight === 0) {
      this.stats.ms = this.started ? Math.round(performance.now() - this.t0) : 0;
      this.finish();
    }
  }
}
