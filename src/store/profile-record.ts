// Recording a boot profile (inetboot.record): a BlockSource filter above everything else in the
// NBD daemon sees exactly the reads the kernel asked for (not our read-ahead or prefetch), and
// notes each chunk the first time it is read, with the time. New entries are handed out in small
// batches soon after they happen (the console is the one channel that always gets out of the
// guest, and a test root may power off right after its last read), and the whole list after a
// quiet spell (to write it to the cache medium). No I/O here: the daemon wires the callbacks.
import type { BlockSource, Extent } from "./source.ts";
import type { ProfileEntry } from "./profile.ts";

export interface RecorderOptions {
  chunkSize: number;
  chunkCount: number;
  /** new entries, in order; `seq` counts batches from 0 so a reader can tell a batch is missing */
  onBatch(entries: ProfileEntry[], seq: number): void;
  /** all entries so far, after `idleMs` without a new chunk, and once more when the window ends */
  onQuiet(all: ProfileEntry[], final: boolean): void;
  /** a batch goes out this long after its first entry (default 100 ms) */
  batchMs?: number;
  /** ... or when it holds this many entries (default 32: console lines stay short) */
  batchMax?: number;
  /** quiet spell that triggers onQuiet (default 5 s) */
  idleMs?: number;
  /** recording stops this long after it started (default 120 s): a boot profile, not a day's */
  windowMs?: number;
  /** clock in ms (tests) */
  now?: () => number;
}

export class ProfileRecorder {
  private seen: Uint8Array;
  private all: ProfileEntry[] = [];
  private pending: ProfileEntry[] = [];
  private seq = 0;
  private t0: number;
  private now: () => number;
  private batchTimer: ReturnType<typeof setTimeout> | null = null;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private windowTimer: ReturnType<typeof setTimeout> | null = null;
  private dirty = false;
  stopped = false;

  constructor(private o: RecorderOptions) {
    this.seen = new Uint8Array(o.chunkCount);
    this.now = o.now ?? (() => performance.now());
    this.t0 = this.now();
    this.windowTimer = setTimeout(() => this.stop(), o.windowMs ?? 120_000);
    unref(this.windowTimer);
  }

  /** A read of [offset, offset+length) reached the device. */
  note(offset: number, length: number): void {
    if (this.stopped || length <= 0) return;
    const cs = this.o.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.min(this.o.chunkCount - 1, Math.floor((offset + length - 1) / cs));
    const ms = Math.round(this.now() - this.t0);
    for (let i = first; i <= last; i++) {
      if (this.seen[i]) continue;
      this.seen[i] = 1;
      const e = { chunk: i, ms };
      this.all.push(e);
      this.pending.push(e);
      this.dirty = true;
      if (this.pending.length >= (this.o.batchMax ?? 32)) this.flushBatch();
    }
    if (!this.dirty) return;
    if (this.pending.length && !this.batchTimer) {
      this.batchTimer = setTimeout(() => this.flushBatch(), this.o.batchMs ?? 100);
      unref(this.batchTimer);
    }
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.quiet(false), this.o.idleMs ?? 5000);
    unref(this.idleTimer);
  }

  private flushBatch(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    this.o.onBatch(batch, this.seq++);
  }

  private quiet(final: boolean): void {
    this.flushBatch();
    if (!this.dirty && !final) return;
    this.dirty = false;
    this.o.onQuiet(this.all.slice(), final);
  }

  /** Entries so far, in first-read order. */
  entries(): ProfileEntry[] {
    return this.all.slice();
  }

  /** Ends recording: sends what is pending and the final list. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.idleTimer, this.windowTimer]) if (t) clearTimeout(t);
    this.quiet(true);
  }
}

function unref(t: ReturnType<typeof setTimeout>): void {
  (t as { unref?: () => void }).unref?.();
}

/** BlockSource filter that tells the recorder about every read before passing it on. */
export class RecordingSource implements BlockSource {
  readonly size: number;
  readonly readOnly: boolean;
  readonly blockSize: number;

  constructor(
    private inner: BlockSource,
    private recorder: ProfileRecorder,
  ) {
    this.size = inner.size;
    this.readOnly = inner.readOnly;
    this.blockSize = inner.blockSize;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    this.recorder.note(offset, length);
    return this.inner.read(offset, length);
  }

  prefetch(offset: number, length: number): Promise<void> {
    // NBD_CMD_CACHE is the client saying it will read this: record it as a read.
    this.recorder.note(offset, length);
    return this.inner.prefetch?.(offset, length) ?? Promise.resolve();
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    return this.inner.extents ? this.inner.extents(offset, length) : Promise.resolve([{ offset, length, zero: false }]);
  }

  close(): Promise<void> {
    this.recorder.stop();
    return this.inner.close?.() ?? Promise.resolve();
  }
}
