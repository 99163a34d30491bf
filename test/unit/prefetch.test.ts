// Prefetcher: profile order, bounded parallelism, demand reads first, lead cap, and the whole
// path through openSource on a local store (profile next to the index → chunks fetched ahead).
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChunkRef } from "../../src/store/chunk.ts";
import type { ChunkLayer } from "../../src/store/fetcher/layer.ts";
import { decodeIndex } from "../../src/store/format.ts";
import { openSource } from "../../src/store/open.ts";
import { packImage } from "../../src/store/pack.ts";
import { Prefetcher, planFromProfile } from "../../src/store/prefetch.ts";
import { encodeProfile, indexDigest } from "../../src/store/profile.ts";
import { readFileSync } from "node:fs";
import { scratch } from "../lib/tmp.ts";

/** A layer whose gets complete only when the test says so; logs the order of calls. */
class Gate implements ChunkLayer {
  calls: string[] = [];
  private open = new Map<string, (() => void)[]>();
  get inFlight() {
    return [...this.open.values()].reduce((n, l) => n + l.length, 0);
  }
  get(ref: ChunkRef): Promise<Uint8Array> {
    this.calls.push(ref.hex);
    return new Promise((res) => {
      const l = this.open.get(ref.hex) ?? [];
      l.push(() => res(new Uint8Array(ref.size)));
      this.open.set(ref.hex, l);
    });
  }
  finish(hex: string) {
    for (const f of this.open.get(hex) ?? []) f();
    this.open.delete(hex);
  }
  async finishAll() {
    while (this.open.size) {
      for (const hex of [...this.open.keys()]) this.finish(hex);
      await Bun.sleep(0);
    }
  }
}
const ref = (i: number, size = 10): ChunkRef => ({ hex: `c${i}`, size });
const tick = () => Bun.sleep(0);

describe("Prefetcher", () => {
  test("fetches in profile order, at most `parallel` at a time", async () => {
    const g = new Gate();
    const pf = new Prefetcher(g, { parallel: 2 });
    pf.start([ref(5), ref(1), ref(9), ref(2)]);
    expect(g.calls).toEqual(["c5", "c1"]);
    g.finish("c1");
    await tick();
    expect(g.calls).toEqual(["c5", "c1", "c9"]);
    await g.finishAll();
    await pf.done;
    expect(g.calls).toEqual(["c5", "c1", "c9", "c2"]);
    expect(pf.stats).toMatchObject({ planned: 4, fetched: 4, used: 0, skipped: 0, failed: 0 });
  });

  test("demand reads go first: no new prefetch while demand keeps the pool busy; read chunks are skipped", async () => {
    const g = new Gate();
    const pf = new Prefetcher(g, { parallel: 2, demandLimit: 1 });
    const d = pf.demand.get(ref(3)); // the boot reads chunk 3 before the profile arrived
    pf.start([ref(1), ref(2), ref(3), ref(4)]);
    expect(g.calls).toEqual(["c3"]); // demand in flight = limit: prefetch waits
    g.finish("c3");
    await d;
    await tick();
    expect(g.calls).toEqual(["c3", "c1", "c2"]);
    const d2 = pf.demand.get(ref(7)); // demand arrives while prefetches are in flight: goes out at once
    expect(g.calls.at(-1)).toBe("c7");
    g.finish("c1");
    g.finish("c2");
    await tick();
    await tick();
    expect(g.calls).toEqual(["c3", "c1", "c2", "c7"]); // still blocked by the demand read
    g.finish("c7");
    await d2;
    await g.finishAll();
    await pf.done;
    expect(g.calls).toEqual(["c3", "c1", "c2", "c7", "c4"]); // c3 skipped: already read
    expect(pf.stats).toMatchObject({ fetched: 3, skipped: 1 });
  });

  test("stops `leadBytes` ahead of the boot and resumes as the boot reads what was fetched", async () => {
    const g = new Gate();
    const resident = new Set<string>();
    const pf = new Prefetcher(g, { parallel: 8, leadBytes: 30, resident: (h) => resident.has(h) });
    pf.start([1, 2, 3, 4, 5, 6].map((i) => ref(i)));
    expect(g.calls).toEqual(["c1", "c2", "c3"]);
    for (const h of ["c1", "c2", "c3"]) {
      g.finish(h);
      resident.add(h);
    }
    await tick();
    expect(g.calls.length).toBe(3);
    const d = pf.demand.get(ref(1)); // the boot reads c1 (demand goes to the gate too)
    expect(g.calls).toEqual(["c1", "c2", "c3", "c1", "c4"]);
    resident.delete("c2"); // the memory cache evicted c2 unread: it no longer holds the lead...
    g.finish("c1");
    await d;
    await tick();
    // ...and the lead is halved (30 → 15 bytes): the cache could not hold it beside the boot's reads
    expect(g.calls).toEqual(["c1", "c2", "c3", "c1", "c4"]);
    expect(pf.stats.evicted).toBe(1);
    g.finish("c4");
    resident.add("c4");
    const d3 = pf.demand.get(ref(3)); // the boot reads c3: 10 bytes ahead (c4) < 15, one more goes
    expect(g.calls).toEqual(["c1", "c2", "c3", "c1", "c4", "c3", "c5"]);
    await g.finishAll();
    await d3;
    pf.stop();
    await pf.done;
    expect(pf.stats.used).toBe(2);
  });

  test("repeated evictions halve the lead down to one chunk, never to nothing", async () => {
    const g = new Gate();
    const pf = new Prefetcher(g, { parallel: 8, leadBytes: 80, resident: () => false }); // evicts everything at once
    pf.start([...Array(40).keys()].map((i) => ref(i + 1)));
    const launched: number[] = [];
    for (let round = 0, from = 0; round < 40 && pf.stats.ms === null; round++) {
      launched.push(g.calls.length);
      const now = g.calls.slice(from); // finish what is in flight, then see what follows
      from = g.calls.length;
      for (const h of now) g.finish(h);
      await tick();
      await tick();
    }
    await pf.done; // it still gets through the plan
    expect(pf.stats.fetched).toBe(40);
    // 8 chunks (80 bytes) ahead at first; once they are found evicted, one at a time
    expect(launched.slice(0, 6)).toEqual([8, 9, 10, 11, 12, 13]);
    expect(pf.stats.evicted).toBeGreaterThanOrEqual(39);
  });

  test("with a disk cache below (shrinkOnEviction false) evictions are counted but the lead stays", async () => {
    const g = new Gate();
    const pf = new Prefetcher(g, { parallel: 8, leadBytes: 80, resident: () => false, shrinkOnEviction: false });
    pf.start([...Array(24).keys()].map((i) => ref(i + 1)));
    expect(g.calls.length).toBe(8);
    for (const h of [...g.calls]) g.finish(h);
    await tick();
    await tick();
    expect(g.calls.length).toBe(16); // 8 more at once, not 1
    await g.finishAll();
    await pf.done;
    expect(pf.stats.evicted).toBeGreaterThanOrEqual(8);
  });

  test("a failed prefetch is counted, not thrown", async () => {
    const pf = new Prefetcher({ get: () => Promise.reject(new Error("boom")) }, {});
    pf.start([ref(1), ref(2)]);
    await pf.done;
    expect(pf.stats).toMatchObject({ fetched: 0, failed: 2 });
  });
});

describe("openSource with a profile beside the index", () => {
  test("plans skip zero chunks and duplicate digests; the chunks are read ahead, in order", async () => {
    const dir = scratch("inetboot-pf-");
    const cs = 64 * 1024;
    const img = new Uint8Array(8 * cs);
    for (let i = 0; i < 8; i++) if (i !== 4) img.fill(i === 6 ? 2 : i + 1, i * cs, (i + 1) * cs); // chunk 4 zero, 6 = copy of 1
    writeFileSync(join(dir, "img"), img);
    await packImage(join(dir, "img"), join(dir, "store"), { chunkSize: cs, level: 1 });
    const index = decodeIndex(readFileSync(join(dir, "store/index")));
    const profile = { indexDigest: indexDigest(index), entries: [7, 4, 6, 1, 0].map((chunk, i) => ({ chunk, ms: i })) };
    const plan = planFromProfile(index, profile);
    expect(plan.length).toBe(3); // 7, 6 (1 has 6's digest), 0; 4 is a hole
    writeFileSync(join(dir, "store/index.profile"), encodeProfile(profile));
    const events: string[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const src = await openSource(join(dir, "store"), {
      mirrors: [], readAhead: false,
      prefetch: true,
      onPrefetch: (what, st) => {
        events.push(`${what} ${st.planned} ${st.fetched}`);
        if (what === "done") done();
      },
    });
    await finished;
    expect(events).toEqual(["start 3 0", "done 3 3"]);
    expect((await src.read(7 * cs, 16))[0]).toBe(8);
    await src.close?.();
  });

  test("a profile of another index is ignored with a warning", async () => {
    const dir = scratch("inetboot-pf-");
    writeFileSync(join(dir, "img"), new Uint8Array(128 * 1024).fill(3));
    await packImage(join(dir, "img"), join(dir, "store"), { chunkSize: 64 * 1024, level: 1 });
    writeFileSync(join(dir, "store/index.profile"), encodeProfile({ indexDigest: new Uint8Array(32), entries: [{ chunk: 0, ms: 0 }] }));
    const warnings: string[] = [];
    const src = await openSource(join(dir, "store"), { mirrors: [], prefetch: true, log: (l) => warnings.push(l), onPrefetch: (what) => warnings.push(what === "start" ? "started!" : what) });
    await Bun.sleep(50);
    expect(warnings.join("\n")).toMatch(/recorded on another index .*ignored/);
    expect(warnings).not.toContain("started!");
    expect(warnings).toContain("none");
    await src.close?.();
  });
});
