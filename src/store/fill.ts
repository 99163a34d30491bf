// Cache fill: while the machine is idle, fetch every chunk of the image that the disk cache lacks,
// so that the next boot from the same cache medium needs no network at all — not only for the
// blocks this boot happened to read. Two boots never read exactly the same blocks: udev's hwdb.bin
// is mmap()ed and the pages the kernel reads around each fault depend on timing, so a warm boot
// can ask for a chunk the cold boot never touched.
//
// Demand reads go first: a fill request starts only when no demand read is in flight and none
// arrived for `idleMs`. Fill requests bypass the memory cache (they would flush what the running
// system uses) and go through the single-flight layer, so a demand read of a chunk being filled
// joins that fetch. Entries already on the medium are skipped without being read (every read
// verifies them anyway). The fill leaves a tenth of the medium free (at most 256 MiB) for the
// chunks boots read, stops at the first failed cache write (a full or read-only medium) and after
// a few failed fetches in a row (no mirror left): the next boot tries again.
import { distinctChunkRefs, type StoreIndex } from "./format.ts";
import type { ChunkRef } from "./chunk.ts";
import type { ChunkLayer } from "./fetcher/layer.ts";

/** Every distinct non-zero chunk of the image, in image order. */
export function planFill(index: StoreIndex): ChunkRef[] {
  return distinctChunkRefs(index, Array.from({ length: Math.ceil(index.imageSize / index.chunkSize) }, (_, i) => i));
}

/** What the fill needs of the disk cache. */
export interface FillTarget {
  /** is there an entry for this chunk (not read, not verified)? */
  has(ref: ChunkRef): Promise<boolean>;
  /** failed writes so far: a new one means the medium is full or gone */
  readonly writeErrors: number;
  /** waits for entries still being written */
  flush(): Promise<void>;
  /** free and total bytes of the medium (null: unknown) */
  space?(): Promise<{ free: number; total: number } | null>;
}

/** Room the fill leaves free on the medium: a tenth of it, at most 256 MiB. A stick shared by
 *  several stores (or holding other files) keeps space for the chunks boots actually read. */
export function fillReserve(total: number): number {
  return Math.min(Math.floor(total / 10), 256 * 1024 * 1024);
}

export interface FillOptions {
  /** quiet time before a fill request may start, ms (default 2000) */
  idleMs?: number;
  /** fill requests in flight at most (default 2) */
  parallel?: number;
  /** consecutive failed fetches that end the fill (default 3) */
  maxFailures?: number;
}

export interface FillStats {
  planned: number;
  /** already on the medium */
  present: number;
  fetched: number;
  /** plain bytes of the fetched chunks */
  bytes: number;
  failed: number;
  /** why the fill ended early, if it did */
  stopped: string | null;
  /** ms from start() to the end (null while running) */
  ms: number | null;
}

/** Did the fill leave every chunk of the image on the medium? */
export function fillComplete(st: FillStats): boolean {
  return st.ms !== null && st.stopped === null && st.failed === 0 && st.present + st.fetched >= st.planned;
}

const WRITE_FAILED = "cache write failed (medium full or read-only?)";

export class CacheFill {
  readonly stats: FillStats;
  /** The layer demand reads must go through (it tells the fill when the system is busy). */
  readonly demand: ChunkLayer;
  /** resolves when the fill ended (done, stopped or stop()) */
  readonly done: Promise<FillStats>;
  private finish!: (s: FillStats) => void;
  private demandInFlight = 0;
  private lastDemand = performance.now();
  private stopped = false;
  /** workers waiting for quiet, woken early by stop() */
  private sleepers = new Set<() => void>();
  private idleMs: number;
  private parallel: number;
  private maxFailures: number;

  constructor(
    /** top of the stack (demand reads) */
    top: ChunkLayer,
    /** below the memory cache: single-flight ← disk cache ← mirrors */
    private below: ChunkLayer,
    private target: FillTarget,
    opts: FillOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 2000;
    this.parallel = Math.max(1, opts.parallel ?? 2);
    this.maxFailures = Math.max(1, opts.maxFailures ?? 3);
    this.stats = { planned: 0, present: 0, fetched: 0, bytes: 0, failed: 0, stopped: null, ms: null };
    this.done = new Promise((r) => (this.finish = r));
    const self = this;
    this.demand = {
      async get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
        self.demandInFlight++;
        try {
          return await top.get(ref, signal);
        } finally {
          self.demandInFlight--;
          self.lastDemand = performance.now();
        }
      },
      async close() {
        self.stop();
        await top.close?.();
      },
    };
  }

  stop(reason = "stopped"): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stats.stopped ??= reason;
    for (const w of this.sleepers) w();
  }

  /** Fills in the background; `done` tells when it ended. */
  start(plan: ChunkRef[]): void {
    this.stats.planned = plan.length;
    const t0 = performance.now();
    let cursor = 0;
    let failedInARow = 0;
    const writeErrorsAtStart = this.target.writeErrors;
    const worker = async () => {
      while (!this.stopped && cursor < plan.length) {
        await this.whenIdle(); // even the look-up: a stat on a USB stick is a request too
        if (this.stopped || cursor >= plan.length) break;
        const ref = plan[cursor++]!;
        if (await this.target.has(ref)) {
          this.stats.present++;
          continue;
        }
        const room = await this.target.space?.().catch(() => null);
        if (room && room.free - ref.size < fillReserve(room.total)) {
          const mib = (n: number) => (n / 1048576).toFixed(0);
          this.stop(`the medium is nearly full (${mib(room.free)} MiB free, keeping ${mib(fillReserve(room.total))} MiB)`);
          break;
        }
        try {
          await this.below.get(ref);
          failedInARow = 0;
          if (this.target.writeErrors > writeErrorsAtStart) this.stop(WRITE_FAILED);
          else (this.stats.fetched++, (this.stats.bytes += ref.size));
        } catch {
          this.stats.failed++;
          if (++failedInARow >= this.maxFailures) this.stop(`${failedInARow} fetches failed in a row`);
        }
      }
    };
    void Promise.all(Array.from({ length: this.parallel }, worker))
      .then(() => this.target.flush()) // "filled" means on the medium, not on its way there
      .then(() => {
        if (this.target.writeErrors > writeErrorsAtStart) this.stop(WRITE_FAILED);
        this.stats.ms = Math.round(performance.now() - t0);
        this.finish(this.stats);
      });
  }

  /** Resolves once no demand read is in flight and none ended for idleMs (or on stop()). */
  private async whenIdle(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const quiet = performance.now() - this.lastDemand;
      if (this.demandInFlight === 0 && quiet >= this.idleMs) return;
      const wait = this.demandInFlight > 0 ? this.idleMs : this.idleMs - quiet;
      await new Promise<void>((r) => {
        const done = () => (clearTimeout(t), this.sleepers.delete(done), r());
        const t = setTimeout(done, Math.max(10, wait));
        this.sleepers.add(done);
      });
    }
  }
}
