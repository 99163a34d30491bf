import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex, chunkPath } from "../../src/store/chunk-name.ts";
import type { ChunkRef } from "../../src/store/chunk.ts";
import type { ChunkLayer, Origin } from "../../src/store/fetcher/layer.ts";
import { MirrorLayer } from "../../src/store/fetcher/mirrors.ts";
import { MemCache } from "../../src/store/fetcher/memcache.ts";
import { SingleFlight } from "../../src/store/fetcher/singleflight.ts";
import { DiskCache } from "../../src/store/fetcher/diskcache.ts";
import { ReadAhead } from "../../src/store/fetcher/readahead.ts";
import type { BlockSource } from "../../src/store/source.ts";
import { prng, tmp } from "./store-fixtures.ts";

function chunk(seed: number, n = 1000): { ref: ChunkRef; data: Uint8Array } {
  const data = prng(n, seed);
  return { ref: { hex: sha256Hex(data), size: n }, data };
}

/** An origin that serves from a map and can be told to fail, stall or lie. */
class FakeOrigin implements Origin {
  calls = 0;
  mode: "ok" | "fail" | "stall" | "wrong" = "ok";
  delayMs = 0;
  constructor(
    readonly name: string,
    private chunks: Map<string, Uint8Array>,
  ) {}
  async get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    this.calls++;
    if (this.delayMs) await Bun.sleep(this.delayMs);
    if (this.mode === "fail") throw new Error(`${this.name}: HTTP 500`);
    if (this.mode === "stall")
      return new Promise((_, rej) => signal?.addEventListener("abort", () => rej(new Error(`${this.name}: timed out`))));
    if (this.mode === "wrong") throw new Error(`${this.name}: digest mismatch`); // what HttpOrigin throws after verifying
    const d = this.chunks.get(ref.hex);
    if (!d) throw new Error("404");
    return d;
  }
}

describe("mirrors", () => {
  const c = chunk(1);
  const map = new Map([[c.ref.hex, c.data]]);

  test("fails over to another mirror on error", async () => {
    const a = new FakeOrigin("a", map);
    const b = new FakeOrigin("b", map);
    a.mode = "fail";
    const m = new MirrorLayer([a, b], { deadlineMs: 1000 });
    expect(await m.get(c.ref)).toBe(c.data);
    expect(a.calls + b.calls).toBeGreaterThanOrEqual(1);
    expect(b.calls).toBe(1);
    // a is in the penalty box: the next read goes straight to b
    await m.get(c.ref);
    expect(b.calls).toBe(2);
  });

  test("prefers the fastest mirror by measured latency", async () => {
    const slow = new FakeOrigin("slow", map);
    const fast = new FakeOrigin("fast", map);
    slow.delayMs = 40;
    const m = new MirrorLayer([slow, fast], { deadlineMs: 1000 });
    m.set.noteLatency("slow", 40);
    m.set.noteLatency("fast", 1);
    for (let i = 0; i < 5; i++) await m.get(c.ref);
    expect(fast.calls).toBe(5);
    expect(slow.calls).toBe(0);
  });

  test("all down → EIO within the deadline, then recovery", async () => {
    const a = new FakeOrigin("a", map);
    const b = new FakeOrigin("b", map);
    a.mode = "fail";
    b.mode = "stall";
    const m = new MirrorLayer([a, b], { deadlineMs: 300, backoffMs: 10, maxBackoffMs: 50, attemptTimeoutMs: 60 });
    const t0 = performance.now();
    const err = await m.get(c.ref).catch((e) => e);
    const dt = performance.now() - t0;
    expect(err.name).toBe("BlockError");
    expect(err.code).toBe("EIO");
    expect(dt).toBeGreaterThanOrEqual(290);
    expect(dt).toBeLessThan(700);
    expect(a.calls).toBeGreaterThan(1); // retried with backoff
    b.mode = "ok";
    expect(await m.get(c.ref)).toBe(c.data);
  });

  test("a lying mirror (digest mismatch) is skipped", async () => {
    const liar = new FakeOrigin("liar", map);
    const good = new FakeOrigin("good", map);
    liar.mode = "wrong";
    const m = new MirrorLayer([liar, good], { deadlineMs: 1000 });
    m.set.noteLatency("liar", 0.1);
    m.set.noteLatency("good", 50);
    expect(await m.get(c.ref)).toBe(c.data);
    expect(liar.calls).toBe(1);
  });
});

describe("caches", () => {
  test("single-flight: concurrent reads of one chunk make one request", async () => {
    const c = chunk(2);
    const o = new FakeOrigin("o", new Map([[c.ref.hex, c.data]]));
    o.delayMs = 20;
    const sf = new SingleFlight(o);
    const got = await Promise.all(Array.from({ length: 10 }, () => sf.get(c.ref)));
    expect(got.every((g) => g === c.data)).toBe(true);
    expect(o.calls).toBe(1);
    expect(sf.joined).toBe(9);
    await sf.get(c.ref); // finished fetches are not remembered here
    expect(o.calls).toBe(2);
  });

  test("single-flight: the first caller giving up ends only its own wait, not the shared fetch", async () => {
    const c = chunk(3);
    // a fetch that honours its signal, as the HTTP one does
    const o = {
      calls: 0,
      async get(_ref: ChunkRef, signal?: AbortSignal) {
        this.calls++;
        await new Promise<void>((res, rej) => {
          const t = setTimeout(res, 50);
          signal?.addEventListener("abort", () => (clearTimeout(t), rej(new Error("fetch aborted"))));
        });
        return c.data;
      },
    };
    const sf = new SingleFlight(o);
    const ac = new AbortController();
    const first = sf.get(c.ref, ac.signal);
    const second = sf.get(c.ref);
    ac.abort(new Error("client went away"));
    expect(await first.then(() => "resolved", (e) => e.message)).toBe("client went away");
    expect(await second).toBe(c.data);
    expect(o.calls).toBe(1);
  });

  test("memory LRU respects its byte cap and evicts least recently used", async () => {
    const cs = [chunk(10), chunk(11), chunk(12), chunk(13)];
    const o = new FakeOrigin("o", new Map(cs.map((c) => [c.ref.hex, c.data])));
    const mc = new MemCache(o, 3000);
    await mc.get(cs[0]!.ref);
    await mc.get(cs[1]!.ref);
    await mc.get(cs[2]!.ref);
    await mc.get(cs[0]!.ref); // hit, 0 becomes most recent
    expect(o.calls).toBe(3);
    await mc.get(cs[3]!.ref); // evicts 1
    expect(mc.size).toBeLessThanOrEqual(3000);
    await mc.get(cs[0]!.ref);
    expect(o.calls).toBe(4);
    await mc.get(cs[1]!.ref);
    expect(o.calls).toBe(5);
  });

  test("disk cache level 0: raw-block frames written as pieces, read back verified", async () => {
    const dir = tmp();
    const c = chunk(21, 300_000);
    const c2 = chunk(22, 5000);
    const o = new FakeOrigin("o", new Map([[c.ref.hex, c.data], [c2.ref.hex, c2.data]]));
    const dc = new DiskCache(o, dir, 0);
    expect(await dc.get(c.ref)).toEqual(c.data);
    expect(await dc.get(c2.ref)).toEqual(c2.data);
    await dc.flush();
    const file = readFileSync(join(dir, chunkPath(c.ref.hex)));
    expect(file.length).toBe(9 + 3 * 3 + 300_000); // stored, not compressed
    expect(Buffer.from(Bun.zstdDecompressSync(file)).equals(Buffer.from(c.data))).toBe(true);
    const offline = new FakeOrigin("down", new Map());
    offline.mode = "fail";
    const warm = new DiskCache(offline, dir, 0);
    expect(await warm.get(c.ref)).toEqual(c.data);
    expect(await warm.get(c2.ref)).toEqual(c2.data);
    expect(warm.hits).toBe(2);
  });

  test("disk cache: stores compressed chunks, verifies on read, replaces corrupt entries", async () => {
    const dir = tmp();
    const c = chunk(20, 5000);
    const o = new FakeOrigin("o", new Map([[c.ref.hex, c.data]]));
    const dc = new DiskCache(o, dir);
    expect(await dc.get(c.ref)).toEqual(c.data);
    await dc.flush();
    const path = join(dir, chunkPath(c.ref.hex));
    expect(existsSync(path)).toBe(true);
    expect(Buffer.from(Bun.zstdDecompressSync(readFileSync(path))).equals(Buffer.from(c.data))).toBe(true);
    // a second cache over the same dir needs no origin at all
    const offline = new FakeOrigin("down", new Map());
    offline.mode = "fail";
    expect(await new DiskCache(offline, dir).get(c.ref)).toEqual(c.data);
    expect(offline.calls).toBe(0);
    // corrupt entry: never returned; refetched and rewritten
    writeFileSync(path, Bun.zstdCompressSync(prng(5000, 99)));
    const dc2 = new DiskCache(o, dir);
    expect(await dc2.get(c.ref)).toEqual(c.data);
    expect(dc2.corrupt).toBe(1);
    await dc2.flush();
    expect(Buffer.from(Bun.zstdDecompressSync(readFileSync(path))).equals(Buffer.from(c.data))).toBe(true);
    // corrupt entry with the origin down: EIO-ish error, not wrong bytes
    writeFileSync(path, "junk");
    await expect(new DiskCache(offline, dir).get(c.ref)).rejects.toThrow();
  });
});

describe("read-ahead", () => {
  class Recorder implements BlockSource {
    size = 1 << 24;
    readOnly = true;
    blockSize = 65536;
    prefetched: [number, number][] = [];
    async read(_o: number, l: number) {
      return new Uint8Array(l);
    }
    async prefetch(o: number, l: number) {
      this.prefetched.push([o, l]);
    }
  }
  test("sequential reads prefetch a growing window; random reads do not", async () => {
    const r = new Recorder();
    const ra = new ReadAhead(r, { minWindow: 65536, maxWindow: 262144 });
    await ra.read(0, 4096);
    expect(r.prefetched.length).toBe(0);
    await ra.read(4096, 4096); // sequential
    expect(r.prefetched).toEqual([[8192, 65536]]);
    await ra.read(8192, 4096);
    expect(r.prefetched[1]).toEqual([73728, 8192 + 4096 + 131072 - 73728]);
    const before = r.prefetched.length;
    await ra.read(5_000_000, 4096); // seek
    expect(r.prefetched.length).toBe(before);
  });
  test("interleaved sequential streams each keep their read-ahead (nbdcopy's connections)", async () => {
    const r = new Recorder();
    const ra = new ReadAhead(r, { minWindow: 65536, maxWindow: 262144, streams: 4 });
    const bases = [0, 4 << 20, 8 << 20, 12 << 20];
    for (let k = 0; k < 3; k++) for (const b of bases) await ra.read(b + k * 4096, 4096);
    // every stream was detected as sequential on its 2nd and 3rd read despite the interleaving
    for (const b of bases) expect(r.prefetched.filter(([o]) => o >= b && o < b + (4 << 20)).length).toBe(2);
    // a fifth stream evicts the least recently used one, whose next read then starts afresh
    await ra.read(14 << 20, 4096);
    const before = r.prefetched.length;
    await ra.read(3 * 4096, 4096);
    expect(r.prefetched.length).toBe(before);
  });
});
