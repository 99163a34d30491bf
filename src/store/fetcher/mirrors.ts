// Mirror failover. Members are ranked by measured latency (EWMA of successful requests); a failure
// (error, timeout, short body, digest mismatch) puts a member in a penalty box that grows
// exponentially, and the request moves on to the next member. When every member failed, rounds
// repeat with backoff until the deadline, then the read fails with BlockError("EIO"). Members in
// the penalty box are still tried when nothing else is left, so the set recovers by itself as
// soon as one of them answers again.
import { BlockError } from "../source.ts";
import type { ChunkRef } from "../chunk.ts";
import type { ChunkLayer, Origin } from "./layer.ts";

export interface MirrorOptions {
  /** give up (EIO) when no member delivered within this many ms; default 30 s */
  deadlineMs?: number;
  /** first backoff between rounds / penalty for a failed member; doubles up to maxBackoffMs */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** longest single attempt on one member before moving on (default 10 s, capped by the deadline) */
  attemptTimeoutMs?: number;
}

interface Member<T> {
  m: T;
  latency: number | undefined;
  fails: number;
  downUntil: number;
  lastError: string;
}

export class MirrorSet<T extends { name: string }> {
  private members: Member<T>[];
  readonly deadlineMs: number;
  private backoffMs: number;
  private maxBackoffMs: number;
  private attemptTimeoutMs: number;
  /** failed attempts that were retried elsewhere (stats, tests) */
  failovers = 0;

  constructor(members: T[], opts: MirrorOptions = {}) {
    if (members.length === 0) throw new Error("no mirrors given");
    this.members = members.map((m) => ({ m, latency: undefined, fails: 0, downUntil: 0, lastError: "" }));
    this.deadlineMs = opts.deadlineMs ?? 30_000;
    this.backoffMs = opts.backoffMs ?? 50;
    this.maxBackoffMs = opts.maxBackoffMs ?? 2_000;
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 10_000;
  }

  /** Records a latency sample (e.g. from probing the index) so ranking starts informed. */
  noteLatency(name: string, ms: number): void {
    const mem = this.members.find((x) => x.m.name === name);
    if (mem) mem.latency = mem.latency === undefined ? ms : mem.latency * 0.7 + ms * 0.3;
  }

  /** Healthy members fastest first (unmeasured ones early, to measure them), then penalized ones
   *  by when their penalty ends. */
  ranked(now = performance.now()): T[] {
    const up = this.members.filter((x) => x.downUntil <= now);
    const down = this.members.filter((x) => x.downUntil > now);
    up.sort((a, b) => (a.latency ?? 0) - (b.latency ?? 0));
    down.sort((a, b) => a.downUntil - b.downUntil);
    return [...up, ...down].map((x) => x.m);
  }

  private backoff(n: number): number {
    return Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.max(0, n - 1));
  }

  async run<R>(what: string, fn: (m: T, signal: AbortSignal) => Promise<R>): Promise<R> {
    const start = performance.now();
    const deadline = start + this.deadlineMs;
    let round = 0;
    let lastErr = "";
    for (;;) {
      for (const m of this.ranked()) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        const mem = this.members.find((x) => x.m === m)!;
        const t0 = performance.now();
        try {
          const r = await fn(m, AbortSignal.timeout(Math.min(left, this.attemptTimeoutMs)));
          const dt = performance.now() - t0;
          mem.latency = mem.latency === undefined ? dt : mem.latency * 0.7 + dt * 0.3;
          mem.fails = 0;
          mem.downUntil = 0;
          return r;
        } catch (e) {
          mem.fails++;
          mem.downUntil = performance.now() + this.backoff(mem.fails);
          mem.lastError = lastErr = (e as Error).message?.split("\n")[0] ?? String(e);
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
