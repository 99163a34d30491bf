// The Internet disk end to end, with programs nobody here wrote on both sides: an ext4 image packed
// by `inetboot pack`, served by `inetboot serve` and by Debian's nginx, exported by `inetboot nbd`
// (CLI subprocesses), read by libnbd (nbdinfo, nbdcopy) and QEMU (qemu-img, qemu-io). Also raw
// image URLs, --cow, the disk cache (judged from nginx's access log) and opening the store offline
// from the cache.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, copyFileSync, cpSync, writeFileSync, readdirSync, existsSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import {
  chunkGets,
  freePort,
  hashTree,
  MiB,
  ROOT,
  run,
  sha,
  shaFile,
  startNbd,
  startNginx,
  startServe,
  makeExt4Image,
  type Nginx,
  type ServeProcess,
} from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

const CS = 65536;
let dir: string, www: string, store: string, imgPath: string, img: Uint8Array;
let serve: ServeProcess, nginx: Nginx;
const stops: (() => Promise<unknown>)[] = [];

/** Data (non-zero) chunk indexes of the image. */
let dataChunks: number[] = [];

beforeAll(async () => {
  dir = scratch("nbd-store-");
  www = join(dir, "www");
  store = join(www, "store");
  imgPath = makeExt4Image(dir, 24, ["/usr/bin/qemu-img", "/usr/bin/nbdkit", "/usr/bin/nbdinfo", "/usr/sbin/nginx"]);
  img = new Uint8Array(readFileSync(imgPath));
  const pack = Bun.spawnSync([process.execPath, "src/main.ts", "pack", imgPath, store, "--chunk-size", "64K"], { cwd: ROOT, stderr: "pipe" });
  if (pack.exitCode !== 0) throw new Error(`pack failed: ${pack.stderr.toString()}`);
  copyFileSync(imgPath, join(www, "disk.img"));
  for (let i = 0; i * CS < img.length; i++) if (img.subarray(i * CS, (i + 1) * CS).some((b) => b !== 0)) dataChunks.push(i);
  serve = await startServe(www);
  nginx = await startNginx(www, join(dir, "nginx"));
  stops.push(() => serve.stop(), () => nginx.stop());
});

afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** The expected `nbdinfo --map` rows: one per run of data / zero chunks. */
function expectedMap(): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i * CS < img.length; i++) {
    const type = dataChunks.includes(i) ? 0 : 3;
    const len = Math.min(CS, img.length - i * CS);
    const last = rows[rows.length - 1];
    if (last && last[2] === type) last[1] += len;
    else rows.push([i * CS, len, type]);
  }
  return rows;
}

/** qemu-io `read -v` dumps ("00000400:  aa bb ...  text"), one byte array per read command. */
function parseDumps(stdout: string): Uint8Array[] {
  const got: number[][] = [];
  let cur: number[] | null = null;
  for (const line of stdout.split("\n")) {
    const m = /^([0-9a-f]{8}):\s+((?:[0-9a-f]{2} ?)+)/.exec(line);
    if (m) {
      if (!cur) got.push((cur = []));
      cur.push(...m[2]!.trim().split(" ").map((h) => parseInt(h, 16)));
    } else if (line.startsWith("read ")) cur = null;
  }
  return got.map((a) => Uint8Array.from(a));
}

async function nbdcopySha(uri: string, name: string): Promise<string> {
  const out = join(dir, name);
  const r = await run(["nbdcopy", uri, out]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const h = shaFile(out);
  rmSync(out);
  return h;
}

describe("inetboot nbd over a store served by `inetboot serve` (unix socket)", () => {
  test("nbdinfo, nbdinfo --map, nbdcopy, qemu-img compare and qemu-io random reads", async () => {
    const nbd = await startNbd(serve.url + "store/", ["--listen", `unix:${join(dir, "a.sock")}`]);
    stops.push(() => nbd.stop());
    const info = await run(["nbdinfo", "--json", nbd.uri]);
    expect(info.code).toBe(0);
    const e = JSON.parse(info.stdout).exports[0];
    expect(e["export-size"]).toBe(img.length);
    expect(e.is_read_only).toBe(true);
    expect(e.can_trim).toBe(false);
    expect(e.can_zero).toBe(false);
    expect(e.block_size_preferred).toBe(CS);
    expect(e.contexts).toContain("base:allocation");

    const map = await run(["nbdinfo", "--map", nbd.uri]);
    expect(map.code).toBe(0);
    const rows = map.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).slice(0, 3).map(Number));
    expect(rows).toEqual(expectedMap());
    expect(rows.some((r) => r[2] === 3)).toBe(true); // the image does have zero chunks

    expect(await nbdcopySha(nbd.uri, "copy-a.img")).toBe(sha(img));
    expect((await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", imgPath, nbd.uri])).code).toBe(0);
    const other = img.slice();
    other[dataChunks[3]! * CS + 777]! ^= 0x01;
    writeFileSync(join(dir, "other.img"), other);
    expect((await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", join(dir, "other.img"), nbd.uri])).code).toBe(1);

    // Random reads, including ones straddling chunk boundaries, inside data and zero chunks.
    const reads: [number, number][] = [];
    for (let i = 0; i < 30; i++) {
      const len = 1 + Math.floor(Math.random() * 5000);
      const base = i % 3 === 0 ? (dataChunks[Math.floor(Math.random() * dataChunks.length)]! + 1) * CS - 100 : Math.random() * (img.length - len);
      reads.push([Math.min(img.length - len, Math.floor(base)), len]);
    }
    // Inside zero chunks: the server answers these with a hole chunk (OFFSET_HOLE), not zeros.
    const zeroChunk = [...Array(img.length / CS).keys()].find((i) => !dataChunks.includes(i))!;
    reads.push([zeroChunk * CS, CS], [zeroChunk * CS + 4096, 300]);
    const q = await run(["qemu-io", "-f", "raw", "-r", ...reads.flatMap(([o, l]) => ["-c", `read -v ${o} ${l}`]), nbd.uri]);
    expect(q.code).toBe(0);
    const got = parseDumps(q.stdout);
    expect(got.length).toBe(reads.length);
    reads.forEach(([o, l], i) => expect(sha(got[i]!)).toBe(sha(img.subarray(o, o + l))));
    expect(await nbd.stop()).toBe(0);
  }, 30_000);
});

describe("inetboot nbd over nginx", () => {
  test("store on TCP (port 0): nbdcopy identical, chunks came from nginx", async () => {
    const before = chunkGets(nginx.lines()).length;
    const nbd = await startNbd(nginx.url + "store/", ["--listen", "tcp:127.0.0.1:0"]);
    stops.push(() => nbd.stop());
    expect(nbd.uri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+$/);
    expect(await nbdcopySha(nbd.uri, "copy-b.img")).toBe(sha(img));
    expect((await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", imgPath, nbd.uri])).code).toBe(0);
    const stored = readdirSync(join(store, "chunks")).flatMap((d) => readdirSync(join(store, "chunks", d))).length;
    const gets = chunkGets(nginx.lines()).slice(before);
    expect(gets.length).toBeGreaterThanOrEqual(stored);
    expect(gets.every((l) => / 200 /.test(l))).toBe(true);
    expect(await nbd.stop()).toBe(0);
  }, 30_000);

  test("raw image URL: nbdinfo size and read-only, nbdcopy identical", async () => {
    const nbd = await startNbd(nginx.url + "disk.img", ["--listen", `unix:${join(dir, "raw.sock")}`]);
    stops.push(() => nbd.stop());
    const info = await run(["nbdinfo", "--json", nbd.uri]);
    const e = JSON.parse(info.stdout).exports[0];
    expect(e["export-size"]).toBe(img.length);
    expect(e.is_read_only).toBe(true);
    expect(await nbdcopySha(nbd.uri, "copy-raw.img")).toBe(sha(img));
    // nginx answered Range requests for the image (206), not whole-file GETs
    const ranged = nginx.lines().filter((l) => l.includes(`"GET /disk.img HTTP`));
    expect(ranged.length).toBeGreaterThan(0);
    expect(ranged.every((l) => / 206 /.test(l))).toBe(true);
    expect(await nbd.stop()).toBe(0);
  }, 30_000);

  test("--cow: qemu-io writes read back, the store's files are unchanged", async () => {
    const before = hashTree(store);
    const nbd = await startNbd(nginx.url + "store/", ["--listen", `unix:${join(dir, "cow.sock")}`, "--cow"]);
    stops.push(() => nbd.stop());
    const d0 = dataChunks[2]! * CS + 1000; // inside data
    const zeroChunk = [...Array(img.length / CS).keys()].find((i) => !dataChunks.includes(i))!;
    const z0 = zeroChunk * CS + 5; // inside a zero chunk (not stored at all)
    const w = await run(["qemu-io", "-f", "raw", "-c", `write -P 0xab ${d0} 70000`, "-c", `write -P 0x5c ${z0} 4096`, "-c", "flush", nbd.uri]);
    expect(w.code).toBe(0);
    expect(w.stdout).not.toContain("failed");
    const r = await run(["qemu-io", "-f", "raw", "-r", "-c", `read -P 0xab ${d0} 70000`, "-c", `read -P 0x5c ${z0} 4096`, "-c", `read -v ${d0 - 64} 64`, nbd.uri]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("Pattern verification failed");
    // the bytes just before the write are still the image's
    expect(sha(parseDumps(r.stdout)[0]!)).toBe(sha(img.subarray(d0 - 64, d0)));
    const bad = await run(["qemu-io", "-f", "raw", "-r", "-c", `read -P 0xac ${d0} 100`, nbd.uri]);
    expect(bad.stdout).toContain("Pattern verification failed");
    expect(await nbd.stop()).toBe(0);
    expect(hashTree(store)).toBe(before);
  }, 30_000);

  test("--cache DIR: a second run fetches no chunk from nginx", async () => {
    const cache = join(dir, "cache-nginx");
    const a = await startNbd(nginx.url + "store/", ["--listen", `unix:${join(dir, "c1.sock")}`, "--cache", cache]);
    stops.push(() => a.stop());
    expect(await nbdcopySha(a.uri, "copy-c1.img")).toBe(sha(img));
    expect(await a.stop()).toBe(0); // SIGINT: pending cache writes are flushed
    const n0 = nginx.lines().length;
    const b = await startNbd(nginx.url + "store/", ["--listen", `unix:${join(dir, "c2.sock")}`, "--cache", cache]);
    stops.push(() => b.stop());
    expect(await nbdcopySha(b.uri, "copy-c2.img")).toBe(sha(img));
    expect((await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", imgPath, b.uri])).code).toBe(0);
    expect(await b.stop()).toBe(0);
    const second = nginx.lines().slice(n0);
    expect(second.some((l) => l.includes("GET /store/index "))).toBe(true); // it did talk to nginx…
    expect(chunkGets(second)).toEqual([]); // …but fetched no chunk
  }, 30_000);
});

describe("--fill: the whole image into the cache while no client reads", () => {
  test("every chunk lands in the cache; with the chunks gone from the server, nbdcopy is identical", async () => {
    // A copy of the store whose chunks can be taken away.
    const www2 = join(dir, "www-fill");
    cpSync(store, join(www2, "store"), { recursive: true });
    const own = await startServe(www2);
    stops.push(() => own.stop());
    const cache = join(dir, "cache-fill");
    const a = await startNbd(own.url + "store/", ["--listen", `unix:${join(dir, "f1.sock")}`, "--cache", cache, "--fill"]);
    stops.push(() => a.stop());
    const stored = chunkFiles(join(www2, "store"));
    await a.err.waitFor(/cache filled: \d+ chunks fetched/, 20_000);
    expect(chunkFiles(cache)).toEqual(stored); // nobody read a byte, yet every chunk is there
    expect(await a.stop()).toBe(0);
    expect((await run([process.execPath, join(ROOT, "src/main.ts"), "cache", "verify", cache])).code).toBe(0);

    rmSync(join(www2, "store", "chunks"), { recursive: true });
    const b = await startNbd(own.url + "store/", ["--listen", `unix:${join(dir, "f2.sock")}`, "--cache", cache, "--timeout", "3"]);
    stops.push(() => b.stop());
    expect(await nbdcopySha(b.uri, "copy-f2.img")).toBe(sha(img));
    expect(await b.stop()).toBe(0);
  }, 40_000);

  test("--fill without a cache, on a raw image or on a local store: one line, exit 1", async () => {
    const cases: [string[], string][] = [
      [[serve.url + "store/"], "--fill needs --cache"],
      [[serve.url + "disk.img", "--cache", join(dir, "cache-raw")], "is a raw image, not a block store"],
      [[store, "--cache", join(dir, "cache-local")], "--fill only applies to http(s) stores"],
    ];
    for (const [args, message] of cases) {
      const c = await run([process.execPath, join(ROOT, "src/main.ts"), "nbd", ...args, "--fill", "--listen", `unix:${join(dir, "f3.sock")}`]);
      expect(c.code).toBe(1);
      expect(c.stderr.trim().split("\n")).toEqual([expect.stringContaining(message)]);
    }
  });
});

/** Names of the chunk files below a store or cache dir, sorted. */
function chunkFiles(d: string): string[] {
  const root = join(d, "chunks");
  return readdirSync(root).flatMap((sub) => readdirSync(join(root, sub)).filter((f) => f.endsWith(".zst"))).sort();
}

describe("offline: the disk cache also holds the index", () => {
  test("server gone: a second run opens the store from the cache, nbdcopy identical", async () => {
    const own = await startServe(www);
    stops.push(() => own.stop());
    const cache = join(dir, "cache-offline");
    const a = await startNbd(own.url + "store/", ["--listen", `unix:${join(dir, "o1.sock")}`, "--cache", cache]);
    stops.push(() => a.stop());
    expect(await nbdcopySha(a.uri, "copy-o1.img")).toBe(sha(img));
    expect(await a.stop()).toBe(0);
    expect(await own.stop()).toBe(0);
    expect(await fetch(own.url + "store/index").then(() => "up", () => "down")).toBe("down");
    const idx = readdirSync(join(cache, "indexes"));
    expect(idx.length).toBe(1);
    expect(readFileSync(join(cache, "indexes", idx[0]!))).toEqual(readFileSync(join(store, "index")));

    const b = await startNbd(own.url + "store/", ["--listen", `unix:${join(dir, "o2.sock")}`, "--cache", cache, "--timeout", "3"]);
    stops.push(() => b.stop());
    expect(b.err.text).toContain("using the cached copy");
    expect(await nbdcopySha(b.uri, "copy-o2.img")).toBe(sha(img));
    expect(await b.stop()).toBe(0);

    // A damaged cached index is not trusted: with the server gone, the store cannot be opened.
    const p = join(cache, "indexes", idx[0]!);
    const bytes = readFileSync(p);
    bytes[40]! ^= 0xff;
    writeFileSync(p, bytes);
    const c = await run([process.execPath, join(ROOT, "src/main.ts"), "nbd", own.url + "store/", "--listen", `unix:${join(dir, "o3.sock")}`, "--cache", cache, "--timeout", "1"]);
    expect(c.code).toBe(1);
    expect(c.stderr.trim().split("\n").length).toBe(1);
    expect(c.stderr).toContain("cannot fetch store index");
    expect(existsSync(p)).toBe(false); // the corrupt copy was dropped
  }, 40_000);
});

describe("--cache-size: a capped cache makes room by evicting the least recently used chunks", () => {
  test("another store's old chunks go, this run's all stay; the folder ends under the cap", async () => {
    // Someone else's store on the same cache: 8 MiB of random data, cached a month ago.
    const www3 = join(dir, "www-cap");
    const other = join(dir, "other.img");
    writeFileSync(other, crypto.getRandomValues(new Uint8Array(8 * MiB)).map((b, i) => (i % 4096 < 2048 ? b : 0) | 1));
    const pack = await run([process.execPath, join(ROOT, "src/main.ts"), "pack", other, join(www3, "other"), "--chunk-size", "64K"]);
    expect(pack.code).toBe(0);
    cpSync(store, join(www3, "store"), { recursive: true });
    const own = await startServe(www3);
    stops.push(() => own.stop());
    const cache = join(dir, "cache-cap");
    const o = await startNbd(own.url + "other/", ["--listen", `unix:${join(dir, "k1.sock")}`, "--cache", cache]);
    stops.push(() => o.stop());
    await nbdcopySha(o.uri, "copy-k1.img");
    expect(await o.stop()).toBe(0);
    const old = chunkFiles(cache);
    expect(old.length).toBe(128);
    const monthAgo = Date.now() / 1000 - 30 * 86400;
    for (const f of old) utimesSync(join(cache, "chunks", f.slice(0, 2), f), monthAgo, monthAgo);
    const entry = statSync(join(cache, "chunks", old[0]!.slice(0, 2), old[0]!)).size;

    // Room for this store's chunks and half the other's.
    const ours = chunkFiles(join(www3, "store"));
    const cap = (ours.length + 64) * entry;
    const a = await startNbd(own.url + "store/", ["--listen", `unix:${join(dir, "k2.sock")}`, "--cache", cache, "--cache-size", String(cap)]);
    stops.push(() => a.stop());
    expect(await nbdcopySha(a.uri, "copy-k2.img")).toBe(sha(img));
    expect(await a.stop()).toBe(0);

    const after = chunkFiles(cache);
    for (const f of ours) expect(after).toContain(f); // every chunk this run read stayed
    const oldLeft = after.filter((f) => old.includes(f)).length;
    expect(oldLeft).toBeLessThan(64);
    expect(oldLeft).toBeGreaterThan(0); // evicted down to the reserve, not wiped
    const bytes = after.reduce((n, f) => n + statSync(join(cache, "chunks", f.slice(0, 2), f)).size, 0);
    expect(bytes).toBeLessThanOrEqual(cap);
    expect(a.err.text).toMatch(/cache: made room, evicted \d+ least recently used chunks/);
    expect((await run([process.execPath, join(ROOT, "src/main.ts"), "cache", "verify", cache])).code).toBe(0);
  }, 60_000);

  test("a bad --cache-size, or one without --cache: one line, exit 1", async () => {
    const cases: [string[], string][] = [
      [["--cache", join(dir, "cache-bad"), "--cache-size", "lots"], 'bad --cache-size "lots"'],
      [["--cache-size", "1G"], "--cache-size needs --cache DIR"],
    ];
    for (const [args, message] of cases) {
      const c = await run([process.execPath, join(ROOT, "src/main.ts"), "nbd", serve.url + "store/", ...args, "--listen", `unix:${join(dir, "k3.sock")}`]);
      expect(c.code).toBe(1);
      expect(c.stderr.trim().split("\n")).toEqual([expect.stringContaining(message)]);
    }
  });
});

describe("opening a store", () => {
  test("a store no server answers for: it says once that it keeps trying, then one error at the deadline", async () => {
    const dead = `http://127.0.0.1:${freePort()}/store/`;
    const t0 = performance.now();
    const c = await run([process.execPath, join(ROOT, "src/main.ts"), "nbd", dead, "--timeout", "6", "--listen", `unix:${join(dir, "k4.sock")}`]);
    expect(c.code).toBe(1);
    expect(c.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^store index: ${dead}index: connection refused by 127\\.0\\.0\\.1; trying again for up to [56] s$`)),
      `inetboot: cannot fetch store index: ${dead}index: connection refused by 127.0.0.1`,
    ]);
    expect(performance.now() - t0).toBeGreaterThan(4000);
  }, 30_000);
});
