// The store reader over real HTTP against a fault-injecting server on 127.0.0.1: whatever the
// mirrors do wrong, the bytes read must be the image's bytes, or the read fails with EIO.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdirSync, readdirSync, writeFileSync, readFileSync, symlinkSync, unlinkSync } from "node:fs";
import { packImage } from "../../src/store/pack.ts";
import { openSource } from "../../src/store/open.ts";
import type { BlockSource } from "../../src/store/source.ts";
import { FaultServer, type Fault } from "./store-fault-server.ts";
import { prng, tmp } from "../unit/store-fixtures.ts";

const CS = 65536;
const N = 48;
let dir: string;
let store: string;
let img: Uint8Array;
let imgPath: string;
const servers: FaultServer[] = [];

function serve(root: string, faultFor?: (k: number, path: string) => Fault, port?: number): FaultServer {
  const s = new FaultServer({ root, faultFor, port }).start();
  servers.push(s);
  return s;
}

beforeAll(async () => {
  dir = tmp("ibstore-e2e-");
  // N chunks: mostly distinct random data, some zero chunks, a short tail
  img = new Uint8Array(N * CS - 1234);
  for (let i = 0; i < N; i++) if (i % 7 !== 3) img.set(prng(CS, i + 1).subarray(0, Math.min(CS, img.length - i * CS)), i * CS);
  imgPath = join(dir, "disk.img");
  writeFileSync(imgPath, img);
  store = join(dir, "store");
  await packImage(imgPath, store, { chunkSize: CS });
});

afterAll(() => {
  for (const s of servers) s.stop();
});

async function readAll(src: BlockSource, step = 96 * 1024, parallel = 4): Promise<Uint8Array> {
  const out = new Uint8Array(src.size);
  const offsets: number[] = [];
  for (let o = 0; o < src.size; o += step) offsets.push(o);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < offsets.length) {
        const o = offsets[next++]!;
        const l = Math.min(step, src.size - o);
        out.set(await src.read(o, l), o);
      }
    }),
  );
  return out;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const isChunk = (p: string) => p.includes("/chunks/");

describe("store over faulty HTTP mirrors", () => {
  test("500s, stalls, truncated and flipped bodies on both mirrors: identical bytes", async () => {
    const cycleA: Fault[] = ["500", "ok", "truncate", "ok", "flip", "stall", "ok", "close"];
    const cycleB: Fault[] = ["ok", "flip", "ok", "500", "ok", "truncate", "ok", "ok", "stall"];
    const a = serve(store, (k, p) => (isChunk(p) ? cycleA[k % cycleA.length]! : "ok"));
    const b = serve(store, (k, p) => (isChunk(p) ? cycleB[k % cycleB.length]! : "ok"));
    const src = await openSource(a.url, { mirrors: [b.url], deadlineMs: 10_000, requestTimeoutMs: 250 });
    const got = await readAll(src);
    expect(same(got, img)).toBe(true);
    for (const f of ["500", "stall", "truncate", "flip", "close"] as Fault[]) expect(a.served[f] + b.served[f]).toBeGreaterThan(0);
    await src.close?.();
  });

  test("a mirror dying mid-read: the other one finishes the job", async () => {
    const b = serve(store);
    let a: FaultServer;
    a = serve(store, (k) => {
      if (k === 6) setTimeout(() => a.stop(), 0); // dies with requests in flight
      return "ok";
    });
    const src = await openSource(a.url, { mirrors: [b.url], deadlineMs: 5000, requestTimeoutMs: 500 });
    const got = await readAll(src);
    expect(same(got, img)).toBe(true);
    expect(a.requests).toBeGreaterThanOrEqual(7);
    expect(a.requests).toBeLessThan(N / 2);
    expect(b.requests).toBeGreaterThan(0);
  });

  test("all mirrors down → EIO within the deadline; a mirror returns → recovery", async () => {
    const a = serve(store);
    const b = serve(store);
    const src = await openSource(a.url, { mirrors: [b.url], deadlineMs: 800, requestTimeoutMs: 200, readAhead: false });
    expect(same(await src.read(0, 1000), img.subarray(0, 1000))).toBe(true);
    a.stop();
    b.stop();
    const t0 = performance.now();
    const err = await src.read(5 * CS, 4096).catch((e) => e);
    const dt = performance.now() - t0;
    expect(err?.code).toBe("EIO");
    expect(dt).toBeLessThan(1600);
    b.start(b.port);
    expect(same(await src.read(5 * CS, 4096), img.subarray(5 * CS, 5 * CS + 4096))).toBe(true);
  });

  test("a stalling mirror: reads still complete via the other", async () => {
    const a = serve(store, (_k, p) => (isChunk(p) ? "stall" : "ok"));
    const b = serve(store);
    const src = await openSource(a.url, { mirrors: [b.url], deadlineMs: 5000, requestTimeoutMs: 200 });
    const got = await readAll(src);
    expect(same(got, img)).toBe(true);
    expect(b.served.ok).toBeGreaterThan(N / 2);
  });

  test("a black-holed mirror: after its first timeout, reads never wait for it again", async () => {
    const a = serve(store, (_k, p) => (isChunk(p) ? "stall" : "ok"));
    const b = serve(store);
    const src = await openSource(a.url, { mirrors: [b.url], deadlineMs: 5000, requestTimeoutMs: 200, readAhead: false, memCacheBytes: 1 });
    const t0 = performance.now();
    expect(same(await src.read(0, 4096), img.subarray(0, 4096))).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190); // the first read has to find out
    // 1.5 s of reads, each a fetch (no memory cache): old code sent one after each 50-800 ms
    // penalty to the black hole first, for a whole request timeout
    const slow: number[] = [];
    for (let i = 1; performance.now() - t0 < 1700; i++) {
      const o = (i % N) * CS;
      const t = performance.now();
      expect(same(await src.read(o, 4096), img.subarray(o, o + 4096))).toBe(true);
      if (performance.now() - t > 120) slow.push(i);
    }
    expect(slow).toEqual([]);
    expect(a.served.stall).toBeGreaterThanOrEqual(2); // still probed, one at a time
    expect(a.served.stall).toBeLessThanOrEqual(8);
    await src.close?.();
  });

  test("single-flight and memory cache: each chunk fetched once; zero chunks never fetched", async () => {
    const a = serve(store);
    const src = await openSource(a.url, { mirrors: [], readAhead: false });
    const before = a.requests;
    await Promise.all(Array.from({ length: 8 }, () => src.read(2 * CS, CS)));
    expect(a.requests - before).toBe(1);
    await readAll(src, 4096, 8);
    const files = readdirSync(join(store, "chunks")).flatMap((d) => readdirSync(join(store, "chunks", d)));
    expect(a.requests - before).toBe(files.length);
    expect(await src.extents!(0, 4 * CS)).toEqual([
      { offset: 0, length: 3 * CS, zero: false },
      { offset: 3 * CS, length: CS, zero: true },
    ]);
  });

  test("disk cache: a second source with the same cache dir fetches no chunks", async () => {
    const cacheDir = join(dir, "cache");
    const a = serve(store);
    const s1 = await openSource(a.url, { mirrors: [], cacheDir });
    expect(same(await readAll(s1), img)).toBe(true);
    await s1.close?.();
    const before = a.requests;
    const s2 = await openSource(a.url, { mirrors: [], cacheDir });
    expect(same(await readAll(s2), img)).toBe(true);
    expect(a.requests - before).toBe(1); // the index only
  });

  test("raw image URL: Range reads, no pack step, mirror failover", async () => {
    const cycle: Fault[] = ["ok", "500", "truncate", "ok", "close"];
    const a = serve(dir, (k) => cycle[k % cycle.length]!);
    const b = serve(dir);
    const src = await openSource(`${a.url}disk.img`, { mirrors: [`${b.url}disk.img`], deadlineMs: 5000, requestTimeoutMs: 300 });
    expect(src.size).toBe(img.length);
    expect(src.blockSize).toBe(4096);
    expect(same(await readAll(src, 50_000), img)).toBe(true);
    expect(same(await src.read(img.length - 77, 77), img.subarray(img.length - 77))).toBe(true);
  });

  test("a URL that is neither a store nor a file is refused", async () => {
    const a = serve(dir);
    await expect(openSource(`${a.url}nothing/`, { mirrors: [] })).rejects.toThrow(/no store index/);
    await expect(openSource(`${a.url}nothing.img`, { mirrors: [] })).rejects.toThrow(/not found/);
    writeFileSync(join(dir, "bad.index"), readFileSync(join(store, "index")).subarray(0, 100));
    await expect(openSource(`${a.url}bad.index`, { mirrors: [] })).rejects.toThrow(/index/);
  });
});

/** A copy of the store under root/NAME whose index file is `index` (null: none), chunks shared. */
function storeWith(root: string, name: string, index: Uint8Array | string | null): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  try {
    symlinkSync(join(store, "chunks"), join(d, "chunks"));
  } catch {} // (already there)
  try {
    unlinkSync(join(d, "index"));
  } catch {}
  if (index !== null) writeFileSync(join(d, "index"), index);
  return d;
}

const corrupt = () => {
  const b = readFileSync(join(store, "index"));
  b[40]! ^= 1; // a chunk digest: checksum mismatch
  return b;
};
const PORTAL = "<html>Please log in to the Wi-Fi</html>";

describe("the index: a missing or bad one at one base fails over like chunk reads", () => {
  test("a 404 for the index at the primary: the mirror's index opens the store", async () => {
    const a = serve(tmp("ibstore-empty-"));
    const b = serve(dir);
    for (const spec of [`${a.url}store/`, `${a.url}store`]) {
      const src = await openSource(spec, { mirrors: [`${b.url}store/`], deadlineMs: 3000, requestTimeoutMs: 500 });
      expect(same(await readAll(src), img)).toBe(true);
      await src.close?.();
    }
  });

  test("a corrupt index or a login page at the primary: the mirror's index is used", async () => {
    const root = tmp("ibstore-badidx-");
    storeWith(root, "corrupt", corrupt());
    storeWith(root, "portal", PORTAL);
    const a = serve(root);
    const b = serve(dir);
    for (const name of ["corrupt", "portal"]) {
      const src = await openSource(`${a.url}${name}/`, { mirrors: [`${b.url}store/`], deadlineMs: 3000, requestTimeoutMs: 500 });
      expect(same(await readAll(src), img)).toBe(true);
      await src.close?.();
    }
  });

  test("no mirror: the disk cache's copy of the index, with a one-line warning", async () => {
    const root = tmp("ibstore-flaky-");
    storeWith(root, "store", readFileSync(join(store, "index")));
    const a = serve(root);
    const cacheDir = join(root, "cache");
    const spec = `${a.url}store/`;
    await (await openSource(spec, { mirrors: [], cacheDir })).close?.(); // keeps the index
    for (const [what, index] of [["corrupt index", corrupt()], ["log in", PORTAL], ["404", null]] as const) {
      storeWith(root, "store", index);
      const lines: string[] = [];
      const src = await openSource(spec, { mirrors: [], cacheDir, deadlineMs: 3000, log: (l) => lines.push(l) });
      expect(same(await readAll(src), img)).toBe(true);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(what);
      expect(lines[0]).toContain("using the cached copy");
      await src.close?.();
    }
  });

  test("a pinned index (a signed manifest's root.sha256): any other valid index is refused, on a base or in the cache", async () => {
    const root = tmp("ibstore-pin-");
    const good = readFileSync(join(store, "index"));
    const pin = new Bun.CryptoHasher("sha256").update(good).digest("hex");
    // another store's index: valid, just not the one signed (an older or a foreign version)
    const otherImg = join(root, "other.img");
    writeFileSync(otherImg, prng(3 * CS, 99));
    const other = readFileSync((await packImage(otherImg, join(root, "otherstore"), { chunkSize: CS })).indexPath);
    const a = serve(root);
    storeWith(root, "right", good);
    storeWith(root, "wrong", other);
    const src = await openSource(`${a.url}right/`, { mirrors: [], indexSha256: pin });
    expect(same(await readAll(src), img)).toBe(true);
    await src.close?.();
    // the first base has another index: the mirror's, which matches, is used
    const viaMirror = await openSource(`${a.url}wrong/`, { mirrors: [`${a.url}right/`], indexSha256: pin });
    expect(viaMirror.size).toBe(img.length);
    await viaMirror.close?.();
    // none matches: one line, and no raw image is guessed either
    const err = await openSource(`${a.url}wrong/`, { mirrors: [], indexSha256: pin, deadlineMs: 3000 }).catch((e) => e);
    expect(err.message).toMatch(new RegExp(`^${a.url}wrong/index: not the index the boot manifest signed \\(sha256 [0-9a-f]{16}…, expected ${pin.slice(0, 16)}…\\)$`));
    // a cached copy of another index is no way around it
    const cacheDir = join(root, "cache");
    await (await openSource(`${a.url}wrong/`, { mirrors: [], cacheDir })).close?.(); // caches "wrong"
    const cachedErr = await openSource(`${a.url}wrong/`, { mirrors: [], cacheDir, indexSha256: pin, deadlineMs: 3000 }).catch((e) => e);
    expect(cachedErr.message).toContain("not the index the boot manifest signed");
  });

  test("no base has a valid index: one line naming each failure; one URL keeps its own words", async () => {
    const root = tmp("ibstore-noidx-");
    storeWith(root, "corrupt", corrupt());
    storeWith(root, "none", null);
    const a = serve(root);
    const err = await openSource(`${a.url}corrupt/`, { mirrors: [`${a.url}none/`], deadlineMs: 3000 }).catch((e) => e);
    expect(err.message).toBe(`cannot fetch store index: ${a.url}corrupt/index: index checksum mismatch (corrupt index); ${a.url}none/index: 404 not found`);
    await expect(openSource(`${a.url}corrupt/`, { mirrors: [] })).rejects.toThrow(`${a.url}corrupt/index: index checksum mismatch (corrupt index)`);
    // 404 everywhere: no store there (a raw image URL then reads the image: the raw test above)
    await expect(openSource(`${a.url}none/`, { mirrors: [`${a.url}none/`, `${a.url}nowhere/`] })).rejects.toThrow(/no store index there/);
  });
});
