// Mirror failover. Members are ranked by measured latency (EWMA of successful requests); one never
// measured ranks after the measured ones. A failure (error, timeout, short body, digest mismatch)
// puts a member on probation: the request moves on to the next member, and reads keep away from
// the failed one while any member is healthy; it is retried only by single background probes, one
// at a time, each after a penalty that doubles on every failure (up to maxPenaltyMs) and is reset
// by a success. A black-holed mirror then costs one request timeout per probe, not per read. When
// no member is healthy, reads try them all in rounds with backoff until the deadline, then fail
// with BlockError("EIO"), so the set recovers by itself as soon as one of them answers again.
import { BlockError } from "../source.ts";
import type { ChunkRef } from "../chunk.ts";
import type { ChunkLayer, Origin } from "./layer.ts";

export interface MirrorOptions {
  /** give up (EIO) when no member delivered within this many ms; default 30 s */
  deadlineMs?: number;
  /** first backoff between rounds, and first penalty of a failed member; both double from it */
  backoffMs?: number;
  /** longest backoff between rounds (default 2 s) */
  maxBackoffMs?: number;
  /** longest penalty of a member that keeps failing (default 30 s) */
  maxPenaltyMs?: number;
  /** longest single attempt on one member before moving on (default 10 s, capped by the deadline) */
  attemptTimeoutMs?: number;
}

interface Member<T> {
  m: T;
  latency: number | undefined;
  /** failures since the last success; > 0: on probation */
  fails: number;
  /** no probe before this */
  downUntil: number;
  /** when the last failure was counted: an attempt begun before it tells nothing new */
  failedAt: number;
  /** a background probe is in flight */
  probing: boolean;
  lastError: string;
}

/** Measured members fastest first; unmeasured ones after them, in the given order. */
function byLatency<T>(a: Member<T>, b: Member<T>): number {
  if (a.latency === undefined || b.latency === undefined) return (a.latency === undefined ? 1 : 0) - (b.latency === undefined ? 1 : 0);
  return a.latency - b.latency;
}

const firstLine = (e: unknown) => (e as Error)?.message?.split("\n")[0] ?? String(e);

export class MirrorSet<T extends { name: string }> {
  private members: Member<T>[];
  readonly deadlineMs: number;
  private backoffMs: number;
  private maxBackoffMs: number;
  private maxPenaltyMs: number;
  private attemptTimeoutMs: number;
  /** failed attempts that were retried elsewhere (stats, tests) */
  failovers = 0;

  constructor(members: T[], opts: MirrorOptions = {}) {
    if (members.length === 0) throw new Error("no mirrors given");
    this.members = members.map((m) => ({ m, latency: undefined, fails: 0, downUntil: 0, failedAt: -Infinity, probing: false, lastError: "" }));
    this.deadlineMs = opts.deadlineMs ?? 30_000;
    this.backoffMs = opts.backoffMs ?? 50;
    this.maxBackoffMs = opts.maxBackoffMs ?? 2_000;
    this.maxPenaltyMs = opts.maxPenaltyMs ?? 30_000;
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 10_000;
  }

  /** Records a latency sample (e.g. from probing the index) so ranking starts informed. */
  noteLatency(name: string, ms: number): void {
    const mem = this.members.find((x) => x.m.name === name);
    if (mem) mem.latency = mem.latency === undefined ? ms : mem.latency * 0.7 + ms * 0.3;
  }

  /** Healthy members fastest first, then the ones on probation by when their penalty ends. */
  ranked(): T[] {
    return this.order().map((x) => x.m);
  }

  private order(): Member<T>[] {
    const up = this.members.filter((x) => x.fails === 0).sort(byLatency);
    const down = this.members.filter((x) => x.fails > 0).sort((a, b) => a.downUntil - b.downUntil);
    return [...up, ...down];
  }

  private backoff(n: number): number {
    return Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.max(0, n - 1));
  }

  private penalty(fails: number): number {
    return Math.min(this.maxPenaltyMs, this.backoffMs * 2 ** Math.max(0, fails - 1));
  }

  private succeeded(mem: Member<T>, t0: number): void {
    const dt = performance.now() - t0;
    mem.latency = mem.latency === undefined ? dt : mem.latency * 0.7 + dt * 0.3;
    mem.fails = 0;
    mem.downUntil = 0;
  }

  /** Counts a failure, unless the attempt began before the last one (concurrent requests caught
   *  by one outage would otherwise push the penalty to its cap at once). Returns the error line. */
  private failed(mem: Member<T>, t0: number, e: unknown): string {
    mem.lastError = firstLine(e);
    if (t0 >= mem.failedAt || mem.fails === 0) {
      mem.fails++;
      mem.failedAt = performance.now();
      mem.downUntil = mem.failedAt + this.penalty(mem.fails);
    }
    return mem.lastError;
  }

  /** Starts one background probe, if another member is healthy (with none healthy, the reads
   *  themselves try every member): of a member whose penalty is over, or of one never measured once
   *  another is (that is how a faster mirror is found: the seed's GSLB). Reads do not wait for it. */
  private probe<R>(fn: (m: T, signal: AbortSignal) => Promise<R>): void {
    const now = performance.now();
    if (!this.members.some((x) => x.fails === 0)) return;
    const measured = this.members.some((x) => x.latency !== undefined);
    const mem = this.members.find((x) => !x.probing && (x.fails > 0 ? x.downUntil <= now : measured && x.latency === undefined));
    if (!mem) return;
    mem.probing = true;
    const t0 = performance.now();
    Promise.resolve()
      .then(() => fn(mem.m, AbortSignal.timeout(this.attemptTimeoutMs)))
      .then(
        () => this.succeeded(mem, t0),
        (e) => void this.failed(mem, t0, e),
      )
      .finally(() => (mem.probing = false));
  }

  async run<R>(what: string, fn: (m: T, signal: AbortSignal) => Promise<R>): Promise<R> {
    const deadline = performance.now() + this.deadlineMs;
    this.probe(fn);
    let round = 0;
    let lastErr = "";
    for (;;) {
      for (const mem of this.order()) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        const t0 = performance.now();
        const cap = Math.min(left, this.attemptTimeoutMs);
        try {
          const r = await fn(mem.m, AbortSignal.timeout(cap));
          this.succeeded(mem, t0);
          return r;
        } catch (e) {
          // Cut short by the read's own deadline: the mirror is not to blame, and the reason the
          // read failed is the error before ("last error: aborted" would hide it)
          if (cap === left && lastErr && performance.now() - t0 >= cap - 1) break;
          lastErr = this.failed(mem, t0, e);
          this.failovers++;
        }
      }
      round++;
      const left = deadline - performance.now();
      if (left <= 0) break;
      await Bun.sleep(Math.min(left, this.backoff(round)));
    }
    throw new BlockError("EIO", `${what}: no mirror delivered within ${this.deadlineMs} ms (last error: ${lastErr})`);
  }

  names(): string[] {
    return this.members.map((x) => x.m.name);
  }
}

/** ChunkLayer over several origins of the same store. */
export class MirrorLayer implements ChunkLayer {
  readonly set: MirrorSet<Origin>;
  constructor(origins: Origin[], opts: MirrorOptions = {}) {
    this.set = new MirrorSet(origins, opts);
  }
  get(ref: ChunkRef): Promise<Uint8Array> {
    return this.set.run(`chunk ${ref.hex.slice(0, 16)}…`, (o, signal) => o.get(ref, signal));
  }
}
