// Host cache tools on a cache written by the agent's own DiskCache: stats, verify (+ --fix), LRU prune,
// and the CLI's exit codes.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../../src/store/chunk-name.ts";
import type { ChunkRef } from "../../src/store/chunk.ts";
import { cacheEntryPath, DiskCache } from "../../src/store/fetcher/diskcache.ts";
import { saveCachedIndex } from "../../src/store/fetcher/indexcache.ts";
import { encodeIndex } from "../../src/store/format.ts";
import { pickEvictions, pruneCache } from "../../src/cache/prune.ts";
import { resolveCacheDir, scanCache } from "../../src/cache/scan.ts";
import { cacheStats } from "../../src/cache/stats.ts";
import { verifyCache } from "../../src/cache/verify.ts";
import { cachedPayload, storePayload } from "../../src/boot/payload-cache.ts";
import { CacheRoom, type Eviction } from "../../src/store/cache-room.ts";
import { scratch } from "../lib/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function noise(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    a[i] = x >>> 24;
  }
  return a;
}

/** A cache dir filled by the real DiskCache (the agent's writer): n chunks of 4 KiB noise. */
async function makeCache(n: number): Promise<{ dir: string; refs: ChunkRef[] }> {
  const dir = scratch("inetboot-cache-test-");
  dirs.push(dir);
  const data = new Map<string, Uint8Array>();
  const refs: ChunkRef[] = [];
  for (let i = 0; i < n; i++) {
    const d = noise(4096, i + 1);
    const ref = { hex: sha256Hex(d), size: d.length };
    data.set(ref.hex, d);
    refs.push(ref);
  }
  const cache = new DiskCache({ get: async (r) => data.get(r.hex)! }, dir);
  for (const r of refs) await cache.get(r);
  await cache.flush();
  return { dir, refs };
}

function cli(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("scan and stats", () => {
  test("counts entries, bytes and last use; finds the folder inside a stick's mount point", async () => {
    const { dir, refs } = await makeCache(5);
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000);
    refs.forEach((r, i) => utimesSync(cacheEntryPath(dir, r.hex), t(100 + i), t(i)));
    const s = await cacheStats(dir);
    expect(s.chunks).toBe(5);
    const onDisk = refs.reduce((n, r) => n + readFileSync(cacheEntryPath(dir, r.hex)).length, 0);
    expect(s.chunkBytes).toBe(onDisk);
    expect(s.oldestMs).toBe(t(100).getTime());
    expect(s.newestMs).toBe(t(104).getTime());

    const stick = scratch("inetboot-stick-");
    dirs.push(stick);
    mkdirSync(join(stick, "inetboot-cache"));
    expect(resolveCacheDir(stick)).toBe(join(stick, "inetboot-cache"));
    expect(resolveCacheDir(dir)).toBe(dir);
    expect(() => resolveCacheDir(join(stick, "nope"))).toThrow(/not found/);
  });
});

describe("verify", () => {
  test("a clean cache passes; corrupt, misnamed and truncated entries are found and --fix deletes them", async () => {
    const { dir, refs } = await makeCache(6);
    await saveCachedIndex(dir, "http://h/s/index", encodeIndex({ version: 1, chunkSize: 65536, imageSize: 65536, digests: new Uint8Array(32) }));
    let r = await verifyCache(dir);
    expect(r.checked).toBe(7);
    expect(r.bad).toEqual([]);

    const p0 = cacheEntryPath(dir, refs[0]!.hex);
    const b = readFileSync(p0);
    b[b.length - 3] ^= 0xff; // corrupt the zstd frame's content
    writeFileSync(p0, b);
    const p1 = cacheEntryPath(dir, refs[1]!.hex);
    writeFileSync(p1, Bun.zstdCompressSync(noise(4096, 999))); // valid zstd, wrong digest
    const p2 = cacheEntryPath(dir, refs[2]!.hex);
    writeFileSync(p2, readFileSync(p2).subarray(0, 10)); // truncated
    const tmpLeft = `${cacheEntryPath(dir, refs[3]!.hex)}.tmp-123-4`;
    writeFileSync(tmpLeft, "partial");
    const idx = readdirSync(join(dir, "indexes"))[0]!;
    writeFileSync(join(dir, "indexes", idx), "garbage");

    r = await verifyCache(dir);
    expect(r.bad.map((x) => x.path).sort()).toEqual([p0, p1, p2, join(dir, "indexes", idx)].sort());
    expect(r.bad.find((x) => x.path === p1)!.reason).toMatch(/digest mismatch/);
    expect(r.scan.tmp.map((t) => t.path)).toEqual([tmpLeft]);

    const bad = cli("cache", "verify", dir);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`bad: ${p1}`);
    expect(bad.err).toMatch(/4 bad entries/);

    const fixed = cli("cache", "verify", "--fix", dir);
    expect(fixed.code).toBe(0);
    for (const p of [p0, p1, p2, tmpLeft]) expect(existsSync(p)).toBe(false);
    for (const ref of refs.slice(3)) expect(existsSync(cacheEntryPath(dir, ref.hex))).toBe(true);
    const again = cli("cache", "verify", dir);
    expect(again.code).toBe(0);
    expect(again.out).toContain("checked: 3 files, 0 bad");
    expect(again.err).toContain("cache verify 100% 3 / 3 chunks"); // progress, on stderr
  });
});

describe("prune", () => {
  test("evicts least recently used first down to the cap", async () => {
    const { dir, refs } = await makeCache(8);
    const sizes = refs.map((r) => readFileSync(cacheEntryPath(dir, r.hex)).length);
    // use order: chunk i last used at day i, but chunk 0 was read most recently of all
    const day = (d: number) => new Date(Date.UTC(2026, 0, 1 + d));
    refs.forEach((r, i) => utimesSync(cacheEntryPath(dir, r.hex), day(i === 0 ? 30 : i), day(i === 0 ? 0 : i)));
    const total = sizes.reduce((a, b) => a + b, 0);
    const cap = total - sizes[1]! - sizes[2]! - 1; // needs chunks 1, 2 and 3 gone
    const r = await pruneCache(dir, cap);
    expect(r.removed.map((c) => c.hex)).toEqual([refs[1]!.hex, refs[2]!.hex, refs[3]!.hex]);
    expect(r.after).toBeLessThanOrEqual(cap);
    const left = (await scanCache(dir)).chunks.map((c) => c.hex).sort();
    expect(left).toEqual([0, 4, 5, 6, 7].map((i) => refs[i]!.hex).sort());
    // already under the cap: nothing to do
    expect((await pruneCache(dir, cap)).removed).toEqual([]);
  });

  test("ties on access date fall back to modification time", () => {
    const e = (hex: string, usedMs: number, mtimeMs: number) => ({ hex, path: hex, bytes: 10, usedMs, mtimeMs });
    const picked = pickEvictions([e("a", 5, 3), e("b", 5, 1), e("c", 9, 0)], 30, 15);
    expect(picked.map((x) => x.hex)).toEqual(["b", "a"]);
  });

  test("the CLI needs a sane --max-size", async () => {
    const { dir } = await makeCache(1);
    expect(cli("cache", "prune", dir, "--max-size", "lots").err).toMatch(/bad --max-size/);
    const ok = cli("cache", "prune", dir, "--max-size", "0", "--dry-run");
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/would remove: /);
    expect((await scanCache(dir)).chunks.length).toBe(1);
    const st = cli("cache", "stats", dir);
    expect(st.code).toBe(0);
    expect(st.out).toMatch(/^chunks: 1$/m);
  });
});

describe("kernels and initrds the agent cached (files/<sha256>)", () => {
  test("counted by stats, checked by verify, evicted by prune like chunks: least recently used first", async () => {
    const { dir, refs } = await makeCache(4);
    const kernel = noise(20_000, 77);
    const src = join(dir, "..", `kernel-${Date.now()}`);
    writeFileSync(src, kernel);
    const payload = { url: "http://h/vmlinuz", size: kernel.length, sha256: sha256Hex(kernel) };
    await storePayload(dir, payload, src);
    rmSync(src);
    const kpath = join(dir, "files", payload.sha256);
    expect(existsSync(kpath)).toBe(true);

    const s = await cacheStats(dir);
    expect([s.chunks, s.payloads, s.payloadBytes]).toEqual([4, 1, 20_000]);
    expect(cli("cache", "stats", dir).out).toContain("kernels/initrds: 1 ");
    expect((await verifyCache(dir)).bad).toEqual([]);
    writeFileSync(kpath, noise(20_000, 78)); // damaged on the stick
    expect((await verifyCache(dir)).bad).toEqual([{ path: kpath, reason: expect.stringMatching(/digest mismatch/) }]);
    writeFileSync(kpath, kernel);

    // The kernel was last used before any chunk: it goes first.
    const day = (d: number) => new Date(Date.UTC(2026, 0, 1 + d));
    utimesSync(kpath, day(1), day(1));
    refs.forEach((r, i) => utimesSync(cacheEntryPath(dir, r.hex), day(5 + i), day(5 + i)));
    const total = (await pruneCache(dir, Number.MAX_SAFE_INTEGER, { dryRun: true })).before;
    const r = await pruneCache(dir, total - 1);
    expect(r.removed.map((c) => c.hex)).toEqual([payload.sha256]);
    expect(existsSync(kpath)).toBe(false);
    expect((await scanCache(dir)).chunks.length).toBe(4);
  });
});

describe("stage 1 under inetboot.cachesize (a kernel or initrd stored before kexec)", () => {
  const day = (d: number) => new Date(Date.UTC(2026, 0, 1 + d));
  /** A cache of 8 chunks last used on days 1..8, and a payload file of `bytes` beside it. */
  async function setup(bytes: number, seed: number) {
    const { dir, refs } = await makeCache(8);
    refs.forEach((r, i) => utimesSync(cacheEntryPath(dir, r.hex), day(1 + i), day(1 + i)));
    const body = noise(bytes, seed);
    const src = join(dir, "..", `payload-${seed}-${Date.now()}`);
    writeFileSync(src, body);
    const payload = { url: "http://h/p", size: body.length, sha256: sha256Hex(body) };
    const folder = async () => {
      const s = await scanCache(dir);
      return [...s.chunks, ...s.payloads].reduce((n, c) => n + c.bytes, 0);
    };
    return { dir, refs, src, payload, body, folder, before: await folder() };
  }

  test("makes room by evicting the least recently used chunks, then keeps the payload within the cap", async () => {
    const { dir, refs, src, payload, folder, before } = await setup(12_000, 91);
    const cap = before + 12_000 - 8_000; // 8 kB over: two or three chunks must go
    const evictions: Eviction[] = [];
    const kept = await storePayload(dir, payload, src, new CacheRoom(dir, { capBytes: cap, onEvict: (e) => evictions.push(e) }));
    expect(kept).toBe(true);
    expect(readFileSync(join(dir, "files", payload.sha256))).toEqual(readFileSync(src));
    expect(await folder()).toBeLessThanOrEqual(cap);
    const left = new Set((await scanCache(dir)).chunks.map((c) => c.hex));
    const gone = refs.filter((r) => !left.has(r.hex)).map((r) => refs.indexOf(r));
    expect(gone.length).toBeGreaterThanOrEqual(2);
    expect(gone).toEqual([...gone.keys()]); // the oldest ones, days 1, 2, …
    expect(evictions).toHaveLength(1);
    expect(evictions[0]!.count).toBe(gone.length);
  });

  test("a payload larger than the cap is not kept: nothing written, nothing evicted, no temp file", async () => {
    const { dir, src, payload, folder, before } = await setup(30_000, 92);
    const kept = await storePayload(dir, payload, src, new CacheRoom(dir, { capBytes: 20_000 }));
    expect(kept).toBe(false);
    expect(existsSync(join(dir, "files", payload.sha256))).toBe(false);
    expect(existsSync(join(dir, "files")) ? readdirSync(join(dir, "files")) : []).toEqual([]);
    expect(await folder()).toBe(before); // no chunk was given up for it

  });

  test("a FIFO where a payload or its tmp file should be: passed over, not a read or write that never returns", async () => {
    const { dir, src, payload } = await setup(5_000, 95);
    mkdirSync(join(dir, "files"), { recursive: true });
    expect(Bun.spawnSync(["mkfifo", join(dir, "files", payload.sha256)]).exitCode).toBe(0);
    expect(await cachedPayload(dir, payload, join(dir, "..", `fifo-out-${Date.now()}`))).toBe(false);
    expect(existsSync(join(dir, "files", payload.sha256))).toBe(false); // not ours: removed
    expect(Bun.spawnSync(["mkfifo", join(dir, "files", `${payload.sha256}.tmp-${process.pid}`)]).exitCode).toBe(0);
    expect(await storePayload(dir, payload, src)).toBe(true);
    expect(await cachedPayload(dir, payload, join(dir, "..", `fifo-out2-${Date.now()}`))).toBe(true);
  });

  test("the kernel this boot found on the medium is not evicted to make room for its initrd", async () => {
    const { dir, src: kSrc, payload: kernel, body } = await setup(6_000, 93);
    await storePayload(dir, kernel, kSrc); // a kernel cached by an earlier boot…
    utimesSync(join(dir, "files", kernel.sha256), day(0), day(0)); // …older than every chunk
    const before = (await scanCache(dir)).chunks.reduce((n, c) => n + c.bytes, 0) + body.length;
    const initrdBody = noise(9_000, 94);
    const iSrc = join(dir, "..", `initrd-${Date.now()}`);
    writeFileSync(iSrc, initrdBody);
    const initrd = { url: "http://h/initrd", size: initrdBody.length, sha256: sha256Hex(initrdBody) };
    const room = new CacheRoom(dir, { capBytes: before + 9_000 - 5_000 });
    expect(await cachedPayload(dir, kernel, join(dir, "..", `k-out-${Date.now()}`), room)).toBe(true);
    expect(await storePayload(dir, initrd, iSrc, room)).toBe(true);
    expect(existsSync(join(dir, "files", kernel.sha256))).toBe(true); // oldest, but used by this boot
    expect(existsSync(join(dir, "files", initrd.sha256))).toBe(true);
    expect((await scanCache(dir)).chunks.length).toBeLessThan(8);
  });
});
