// MirrorSet ranking and penalties with fake mirrors: a failed mirror is kept away from reads while
// another is healthy, and is retried only by single probes whose penalty doubles up to a cap.
import { describe, expect, test } from "bun:test";
import { MirrorSet } from "../../src/store/fetcher/mirrors.ts";

type Mode = "ok" | "fail" | "blackhole" | "failLate";

/** Two named fake mirrors; records the calls to each, and how many were in flight at once. */
class Fakes {
  modes: Record<string, Mode> = { dead: "ok", good: "ok" };
  calls: Record<string, number[]> = { dead: [], good: [] };
  inFlight: Record<string, number> = { dead: 0, good: 0 };
  maxInFlight: Record<string, number> = { dead: 0, good: 0 };
  goodDelayMs = 2;

  fn = async (m: { name: string }, signal: AbortSignal): Promise<string> => {
    this.calls[m.name]!.push(performance.now());
    this.maxInFlight[m.name] = Math.max(this.maxInFlight[m.name]!, ++this.inFlight[m.name]!);
    try {
      return await this.answer(m.name, signal);
    } finally {
      this.inFlight[m.name]!--;
    }
  };

  private async answer(name: string, signal: AbortSignal): Promise<string> {
    const mode = this.modes[name]!;
    if (name === "good") await Bun.sleep(this.goodDelayMs);
    if (mode === "fail") throw new Error(`${name}: HTTP 500`);
    if (mode === "failLate") return Bun.sleep(20).then(() => Promise.reject(new Error(`${name}: HTTP 500`)));
    if (mode === "blackhole") return new Promise((_, rej) => signal.addEventListener("abort", () => rej(new Error(`${name}: timed out`))));
    return name;
  }
}

/** Starts a read every `everyMs` for `forMs`; resolves with each read's duration. */
async function readsFor(set: MirrorSet<{ name: string }>, fakes: Fakes, forMs: number, everyMs: number): Promise<number[]> {
  const took: Promise<number>[] = [];
  const end = performance.now() + forMs;
  while (performance.now() < end) {
    const t0 = performance.now();
    took.push(set.run("read", fakes.fn).then(() => performance.now() - t0));
    await Bun.sleep(everyMs);
  }
  return Promise.all(took);
}

/** Gaps in ms between consecutive calls. */
const gaps = (ts: number[]) => ts.slice(1).map((t, i) => t - ts[i]!);

const mirrors = () => [{ name: "dead" }, { name: "good" }];

describe("mirror ranking", () => {
  test("a faster mirror never measured is found by a background probe, then preferred", async () => {
    const fakes = new Fakes();
    fakes.goodDelayMs = 1;
    const slow = { ...fakes, fn: async (m: { name: string }, s: AbortSignal) => (m.name === "dead" ? Bun.sleep(30).then(() => "dead") : fakes.fn(m, s)) };
    const set = new MirrorSet(mirrors(), { deadlineMs: 2000 });
    for (let i = 0; i < 5; i++) await set.run("read", slow.fn);
    expect(set.ranked().map((m) => m.name)).toEqual(["good", "dead"]);
    const before = fakes.calls.good!.length;
    for (let i = 0; i < 5; i++) await set.run("read", slow.fn);
    expect(fakes.calls.good!.length).toBe(before + 5);
  });

  test("a mirror never measured does not outrank one with a measured latency", () => {
    const set = new MirrorSet(mirrors());
    expect(set.ranked().map((m) => m.name)).toEqual(["dead", "good"]); // nothing known: given order
    set.noteLatency("good", 5);
    expect(set.ranked().map((m) => m.name)).toEqual(["good", "dead"]);
    set.noteLatency("dead", 1);
    expect(set.ranked().map((m) => m.name)).toEqual(["dead", "good"]);
  });

  test("a black-holed mirror: after its first timeout no read waits for it; one probe at a time", async () => {
    const fakes = new Fakes();
    fakes.modes.dead = "blackhole";
    const set = new MirrorSet(mirrors(), { deadlineMs: 2000, attemptTimeoutMs: 100, backoffMs: 10, maxPenaltyMs: 100 });
    const t0 = performance.now();
    expect(await set.run("read", fakes.fn)).toBe("good"); // the first one has to find out
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
    fakes.maxInFlight.dead = 0;
    const before = fakes.calls.dead.length;
    const took = await readsFor(set, fakes, 1200, 5);
    expect(took.length).toBeGreaterThan(50);
    expect(Math.max(...took)).toBeLessThan(60); // old code: reads after each penalty waited 100 ms
    const probes = fakes.calls.dead.length - before;
    expect(probes).toBeGreaterThanOrEqual(2); // still probed, so it can come back
    expect(probes).toBeLessThanOrEqual(8); // each probe is a timeout (100) plus a penalty
    expect(fakes.maxInFlight.dead).toBe(1);
  });

  test("a failing mirror's penalty doubles up to maxPenaltyMs and restarts after a success", async () => {
    const fakes = new Fakes();
    fakes.modes.dead = "fail";
    const set = new MirrorSet(mirrors(), { deadlineMs: 2000, backoffMs: 10, maxPenaltyMs: 80 });
    await readsFor(set, fakes, 1000, 2);
    const g = gaps(fakes.calls.dead);
    expect(g.length).toBeGreaterThanOrEqual(6);
    expect(g[1]!).toBeGreaterThan(g[0]!); // grows (10, 20, 40, …)
    for (const late of g.slice(4)) {
      expect(late).toBeGreaterThanOrEqual(75); // at the cap …
      expect(late).toBeLessThan(140); // … and not beyond it
    }
    // back: a probe finds it (it answers faster than "good", so reads then go to it)
    fakes.modes.dead = "ok";
    const back = fakes.calls.dead.length;
    await readsFor(set, fakes, 150, 2);
    expect(fakes.calls.dead.length).toBeGreaterThan(back + 1);
    // failing again: the penalty starts from backoffMs, not from the cap
    fakes.modes.dead = "fail";
    const again = fakes.calls.dead.length;
    await readsFor(set, fakes, 100, 2);
    const g2 = gaps(fakes.calls.dead.slice(again));
    expect(g2[0]!).toBeLessThan(60);
  });

  test("concurrent reads failing in one outage raise the penalty once", async () => {
    const fakes = new Fakes();
    fakes.modes.dead = "failLate";
    const set = new MirrorSet(mirrors(), { deadlineMs: 2000, backoffMs: 10, maxPenaltyMs: 5000 });
    await Promise.all(Array.from({ length: 20 }, () => set.run("read", fakes.fn)));
    expect(fakes.calls.dead.length).toBe(20); // all were on their way to it
    const t0 = performance.now();
    fakes.modes.dead = "ok";
    await readsFor(set, fakes, 300, 2);
    // a penalty of 10 ms (one failure), not 10 · 2^19 ms capped: probed again at once
    expect(fakes.calls.dead.length).toBeGreaterThan(20);
    expect(fakes.calls.dead[20]! - t0).toBeLessThan(100);
  });
});
