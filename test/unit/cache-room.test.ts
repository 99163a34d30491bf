// The disk cache making room (cache-room.ts) on real files in a temp dir: a cap (inetboot.cachesize)
// or a filesystem running low evicts the least recently used chunks, never one this boot used, and
// the fill, which stops at its reserve, evicts nothing. End to end on a stick: usb-cache.test.ts.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CacheRoom, type Eviction, type Space } from "../../src/store/cache-room.ts";
import { DiskCache } from "../../src/store/fetcher/diskcache.ts";
import type { ChunkLayer } from "../../src/store/fetcher/layer.ts";
import type { ChunkRef } from "../../src/store/chunk.ts";
import { sha256Hex } from "../../src/store/chunk-name.ts";
import { scanCache } from "../../src/cache/scan.ts";
import { cacheEntryPath } from "../../src/store/fetcher/diskcache.ts";
import { CacheFill } from "../../src/store/fill.ts";
import { scratch } from "../lib/tmp.ts";

const KiB = 1024;
/** 64 KiB chunks of distinct bytes (incompressible enough: the cache stores raw frames anyway) */
function chunk(i: number): { ref: ChunkRef; data: Uint8Array } {
  const data = new Uint8Array(64 * KiB);
  for (let j = 0; j < data.length; j += 4) data[j] = (i * 7 + j) & 0xff, data[j + 1] = i & 0xff;
  return { ref: { hex: sha256Hex(data), size: data.length }, data };
}
const chunks = Array.from({ length: 40 }, (_, i) => chunk(i));

/** The network: serves every chunk above, counts the fetches. */
function origin() {
  const fetched: string[] = [];
  const layer: ChunkLayer = {
    async get(ref) {
      fetched.push(ref.hex);
      return chunks.find((c) => c.ref.hex === ref.hex)!.data;
    },
  };
  return { layer, fetched };
}

function boot(dir: string, opts: ConstructorParameters<typeof CacheRoom>[1] = {}) {
  const evictions: Eviction[] = [];
  const room = new CacheRoom(dir, { checkEveryBytes: 1, onEvict: (e) => evictions.push(e), ...opts });
  const o = origin();
  return { cache: new DiskCache(o.layer, dir, 0, null, room), room, evictions, fetched: o.fetched };
}

/** Entry i, last used `daysAgo` days ago. */
function age(dir: string, i: number, daysAgo: number) {
  const t = Date.now() / 1000 - daysAgo * 86400;
  utimesSync(cacheEntryPath(dir, chunks[i]!.ref.hex), t, t);
}
/** An earlier boot cached chunks 0..n-1; chunk i was last used `daysAgo(i)` days ago. Returns an
 *  entry's size on disk. */
async function earlierBoot(dir: string, n: number, daysAgo: (i: number) => number): Promise<number> {
  const b = boot(dir);
  for (let i = 0; i < n; i++) await b.cache.get(chunks[i]!.ref);
  await b.cache.flush();
  for (let i = 0; i < n; i++) age(dir, i, daysAgo(i));
  return (await scanCache(dir)).chunks[0]!.bytes;
}
const has = (dir: string, i: number) => existsSync(cacheEntryPath(dir, chunks[i]!.ref.hex));
const folderBytes = async (dir: string) => (await scanCache(dir)).chunks.reduce((n, c) => n + c.bytes, 0);

describe("a cap on the cache folder (inetboot.cachesize)", () => {
  test("past the cap the least recently used chunks go, down to the reserve; this boot's stay", async () => {
    const dir = scratch("room-cap-");
    // An earlier boot cached chunks 0..19; 0..9 were last used long ago, 10..19 recently.
    const entry = await earlierBoot(dir, 20, (i) => (i < 10 ? 30 - i : 2));
    // This boot: a cap of 24 entries' worth. It reads chunk 0 (the oldest) and 20..31 (new).
    const b = boot(dir, { capBytes: 24 * entry });
    await b.cache.get(chunks[0]!.ref);
    for (let i = 20; i < 32; i++) await b.cache.get(chunks[i]!.ref);
    await b.cache.flush();
    await b.room.check();

    expect(b.fetched.length).toBe(12); // chunk 0 came from the cache
    expect(await folderBytes(dir)).toBeLessThanOrEqual(24 * entry);
    expect(has(dir, 0)).toBe(true); // old, but used by this boot
    for (let i = 20; i < 32; i++) expect(has(dir, i)).toBe(true);
    // the oldest of the others went first: all of 1..9 before any of the recent 10..19
    for (let i = 1; i < 10; i++) expect(has(dir, i)).toBe(false);
    const recentKept = chunks.slice(10, 20).filter((_, k) => has(dir, 10 + k)).length;
    expect(recentKept).toBeGreaterThan(0);
    expect(b.evictions.reduce((n, e) => n + e.count, 0)).toBe(9 + 10 - recentKept);
  });

  test("a corrupt entry deleted and fetched again is counted once", async () => {
    const dir = scratch("room-corrupt-");
    const entry = await earlierBoot(dir, 10, () => 1);
    const b = boot(dir, { capBytes: 30 * entry });
    expect((await b.cache.space())!.free).toBe(20 * entry);
    writeFileSync(cacheEntryPath(dir, chunks[3]!.ref.hex), new Uint8Array(entry)); // same size, garbage
    expect(await b.cache.get(chunks[3]!.ref)).toEqual(chunks[3]!.data); // deleted, fetched, written again
    await b.cache.flush();
    expect(await folderBytes(dir)).toBe(10 * entry);
    expect((await b.cache.space())!.free).toBe(20 * entry);
  });

  test("space() is what the cap leaves, so the fill stops at its reserve and evicts nothing", async () => {
    const dir = scratch("room-fill-");
    const entry = await earlierBoot(dir, 10, () => 1);

    const b = boot(dir, { capBytes: 30 * entry });
    const sp = (await b.cache.space())!;
    expect(sp.total).toBe(30 * entry);
    expect(sp.free).toBe(20 * entry);
    const fill = new CacheFill({ get: (r) => b.cache.get(r) }, { get: (r) => b.cache.get(r) }, b.cache, { idleMs: 0 });
    fill.start(chunks.map((c) => c.ref));
    const st = await fill.done;
    expect(st.stopped).toMatch(/nearly full/);
    expect(b.evictions).toEqual([]);
    for (let i = 0; i < 10; i++) expect(has(dir, i)).toBe(true);
    expect(await folderBytes(dir)).toBeLessThanOrEqual(30 * entry);
  });
});

describe("a filesystem running low (no cap)", () => {
  test("below half the reserve free, old chunks go until the reserve is free again", async () => {
    const dir = scratch("room-low-");
    const entry = await earlierBoot(dir, 20, (i) => 40 - i);

    // A 100-entry "filesystem" (reserve: 10 entries) with room for 4 more than the cache holds now.
    const capacity = (await folderBytes(dir)) + 4 * entry;
    const fsSpace = async (): Promise<Space> => ({ free: capacity - (await folderBytes(dir)), total: 100 * entry });
    const b = boot(dir, { fsSpace });
    const before = (await scanCache(dir)).chunks.length;
    await b.cache.get(chunks[25]!.ref); // 4 free before its write: below half the reserve
    await b.cache.flush();
    await b.room.check(); // 9 free now: nothing more to do
    const after = (await scanCache(dir)).chunks.length;
    expect(b.evictions.length).toBe(1);
    const ev = b.evictions[0]!;
    // 10 entries' reserve - 4 free: 6 entries to evict, 7 if the new entry landed before the look
    expect([6, 7]).toContain(ev.count);
    expect(after).toBe(before + 1 - ev.count);
    for (let i = 0; i < ev.count; i++) expect(has(dir, i)).toBe(false); // the oldest
    for (let i = ev.count; i < 20; i++) expect(has(dir, i)).toBe(true);
    expect(has(dir, 25)).toBe(true);
  });

  test("with half the reserve or more free nothing is evicted", async () => {
    const dir = scratch("room-ok-");
    const entry = 64 * KiB + 20;
    const b = boot(dir, { fsSpace: async () => ({ free: 5 * entry, total: 100 * entry }) });
    for (let i = 0; i < 5; i++) await b.cache.get(chunks[i]!.ref);
    await b.cache.flush();
    await b.room.check();
    expect(b.evictions).toEqual([]);
    expect((await scanCache(dir)).chunks.length).toBe(5);
  });

  test("when every cached chunk is this boot's, nothing is evicted (its writes fail instead)", async () => {
    const dir = scratch("room-all-");
    const b = boot(dir, { fsSpace: async () => ({ free: 0, total: 100e6 }) });
    for (let i = 0; i < 5; i++) await b.cache.get(chunks[i]!.ref);
    await b.cache.flush();
    await b.room.check();
    expect(b.evictions).toEqual([]);
    for (let i = 0; i < 5; i++) expect(has(dir, i)).toBe(true);
  });
});

test("a read that touched a chunk keeps it, even when it was picked before the read", async () => {
  const dir = scratch("room-race-");
  await earlierBoot(dir, 6, (i) => 10 - i);
  let unlinks = 0;
  const b = boot(dir, {
    fsSpace: async () => ({ free: 0, total: 100 * 65556 }),
    // the boot reads chunk 1 while the eviction is under way
    change: async (fn) => {
      if (unlinks++ === 0) await b.cache.get(chunks[1]!.ref);
      return fn();
    },
  });
  await b.room.check();
  expect(has(dir, 1)).toBe(true);
  expect(has(dir, 0)).toBe(false);
});

test("a kernel/initrd the agent cached (files/) counts toward the cap, and an old one goes before newer chunks", async () => {
  const dir = scratch("room-files-");
  const entry = await earlierBoot(dir, 10, () => 2);
  const kernel = new Uint8Array(5 * entry).fill(9);
  const kpath = join(dir, "files", sha256Hex(kernel));
  mkdirSync(join(dir, "files"));
  writeFileSync(kpath, kernel);
  const monthsAgo = Date.now() / 1000 - 60 * 86400;
  utimesSync(kpath, monthsAgo, monthsAgo);

  const b = boot(dir, { capBytes: 16 * entry });
  expect((await b.cache.space())!.free).toBe(entry); // 10 chunks + the kernel's 5 of 16
  for (let i = 20; i < 22; i++) await b.cache.get(chunks[i]!.ref);
  await b.cache.flush();
  expect(existsSync(kpath)).toBe(false);
  for (let i = 0; i < 10; i++) expect(has(dir, i)).toBe(true);
  for (let i = 20; i < 22; i++) expect(has(dir, i)).toBe(true);
  expect(b.evictions.map((e) => e.count)).toEqual([1]);
});
