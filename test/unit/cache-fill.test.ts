// CacheFill's scheduling (pure logic, fake layers): what it fetches, that demand reads go first,
// and when it gives up. The real thing end to end: nbd-store.test.ts (`inetboot nbd --fill`) and
// usb-cache.test.ts (a boot from a stick).
import { describe, expect, test } from "bun:test";
import type { ChunkRef } from "../../src/store/chunk.ts";
import type { ChunkLayer } from "../../src/store/fetcher/layer.ts";
import { CacheFill, fillComplete, fillReserve, planFill, type FillStats, type FillTarget } from "../../src/store/fill.ts";

const ref = (i: number): ChunkRef => ({ hex: i.toString(16).padStart(64, "0"), size: 1000 + i });

/** The disk cache as the fill sees it: entries are names in a set; `below` adds them. */
class Medium implements FillTarget {
  entries = new Set<string>();
  writeErrors = 0;
  full = false;
  /** free bytes reported by space(); total is 100 MB (so the fill keeps 10 MB) */
  free = 1e9;
  async has(r: ChunkRef) {
    return this.entries.has(r.hex);
  }
  async flush() {}
  async space() {
    return { free: this.free, total: 100e6 };
  }
}

function below(m: Medium, log: string[], fail = (_: ChunkRef) => false): ChunkLayer {
  return {
    async get(r) {
      log.push(r.hex.slice(-2));
      await Bun.sleep(1);
      if (fail(r)) throw new Error("no mirror");
      if (m.full) m.writeErrors++;
      else m.entries.add(r.hex), (m.free -= r.size);
      return new Uint8Array(r.size);
    },
  };
}

const top: ChunkLayer = { get: async (r) => (await Bun.sleep(30), new Uint8Array(r.size)) };

describe("planFill", () => {
  test("every distinct non-zero chunk, in image order", () => {
    const digests = new Uint8Array(5 * 32);
    digests.fill(1, 0, 32); // chunk 0
    digests.fill(2, 32, 64); // chunk 1; chunk 2 zero
    digests.fill(1, 96, 128); // chunk 3 = chunk 0
    digests.fill(3, 128, 160); // chunk 4, short
    const plan = planFill({ version: 1, imageSize: 4 * 4096 + 100, chunkSize: 4096, digests });
    expect(plan.map((r) => [r.hex.slice(0, 2), r.size])).toEqual([["01", 4096], ["02", 4096], ["03", 100]]);
  });
});

describe("fillComplete (the daemon then remounts the medium read-only)", () => {
  const done: FillStats = { planned: 10, present: 4, fetched: 6, bytes: 6 * 65536, failed: 0, stopped: null, ms: 1200 };
  test("every chunk present or fetched, nothing failed, not stopped: complete", () => {
    expect(fillComplete(done)).toBe(true);
    expect(fillComplete({ ...done, present: 10, fetched: 0 })).toBe(true);
  });
  test("still running, stopped early, a failed fetch or chunks missing: not complete", () => {
    expect(fillComplete({ ...done, ms: null })).toBe(false);
    expect(fillComplete({ ...done, stopped: "space reserve reached" })).toBe(false);
    expect(fillComplete({ ...done, failed: 1, fetched: 5 })).toBe(false);
    expect(fillComplete({ ...done, fetched: 5 })).toBe(false);
  });
});

describe("CacheFill", () => {
  test("fetches what the medium lacks, skips what it has, never through the memory cache", async () => {
    const m = new Medium();
    m.entries.add(ref(2).hex);
    const log: string[] = [];
    let topCalls = 0;
    const fill = new CacheFill({ get: async (r) => (topCalls++, new Uint8Array(r.size)) }, below(m, log), m, { idleMs: 0 });
    fill.start([1, 2, 3, 4].map(ref));
    const st = await fill.done;
    expect(st).toMatchObject({ planned: 4, present: 1, fetched: 3, bytes: 1001 + 1003 + 1004, failed: 0, stopped: null });
    expect(log.sort()).toEqual(["01", "03", "04"]);
    expect(m.entries.size).toBe(4);
    expect(topCalls).toBe(0);
  });

  test("waits while demand reads are in flight and until they have been quiet for idleMs", async () => {
    const m = new Medium();
    const log: string[] = [];
    const fill = new CacheFill(top, below(m, log), m, { idleMs: 60, parallel: 1 });
    const t0 = performance.now();
    const reads = [fill.demand.get(ref(9)), fill.demand.get(ref(8))]; // 30 ms each, concurrent
    fill.start([ref(1)]);
    await Bun.sleep(50);
    expect(log).toEqual([]); // the reads ended at ~30 ms: not quiet for 60 ms yet
    await Promise.all(reads);
    await fill.done;
    expect(log).toEqual(["01"]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(85); // 30 ms of reads + 60 ms of quiet
  });

  test("a failed cache write ends the fill (full or read-only medium)", async () => {
    const m = new Medium();
    m.full = true;
    const log: string[] = [];
    const fill = new CacheFill(top, below(m, log), m, { idleMs: 0, parallel: 1 });
    fill.start([1, 2, 3].map(ref));
    const st = await fill.done;
    expect(st.stopped).toContain("cache write failed");
    expect(log).toEqual(["01"]);
  });

  test("it leaves a tenth of the medium (at most 256 MiB) free", async () => {
    expect(fillReserve(100e6)).toBe(10e6);
    expect(fillReserve(64 * 2 ** 30)).toBe(256 * 2 ** 20);
    const m = new Medium();
    m.free = 10e6 + 2500; // room for ref(1) and ref(2) (1001 + 1002 bytes) above the reserve, not for ref(3)
    const log: string[] = [];
    const fill = new CacheFill(top, below(m, log), m, { idleMs: 0, parallel: 1 });
    fill.start([1, 2, 3, 4].map(ref));
    const st = await fill.done;
    expect(log).toEqual(["01", "02"]);
    expect(st.stopped).toBe("the medium is nearly full (10 MiB free, keeping 10 MiB)");
  });

  test("consecutive failed fetches end it; a success in between resets the count", async () => {
    const m = new Medium();
    const log: string[] = [];
    const fails = new Set([1, 2, 4, 5, 6].map((i) => ref(i).hex));
    const fill = new CacheFill(top, below(m, log, (r) => fails.has(r.hex)), m, { idleMs: 0, parallel: 1, maxFailures: 3 });
    fill.start([1, 2, 3, 4, 5, 6, 7].map(ref));
    const st = await fill.done;
    expect(st).toMatchObject({ fetched: 1, failed: 5 });
    expect(st.stopped).toBe("3 fetches failed in a row");
    expect(log).toEqual(["01", "02", "03", "04", "05", "06"]);
  });

  test("stop() ends a fill that is waiting for quiet", async () => {
    const m = new Medium();
    const fill = new CacheFill(top, below(m, []), m, { idleMs: 60_000 });
    fill.start([ref(1)]);
    fill.stop();
    const st = await fill.done;
    expect(st).toMatchObject({ fetched: 0, stopped: "stopped" });
  });
});
