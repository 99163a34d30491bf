// End to end on the host, through Debian's nginx: a store with a published profile and its boot
// pack (`inetboot profile pack`, the real CLI). A cold open with a cache dir gets every profiled
// chunk from the pack's one GET (no chunk GET in nginx's log) and reads the image back intact; a
// second open over the now warm cache fetches neither the pack nor any chunk. On the command line,
// `inetboot nbd --prefetch --cache DIR` puts the profile's chunks on the cache before any client
// reads, and nbdcopy then gets the image intact.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD } from "../lib/qemu.ts";
import { run } from "../lib/sh.ts";
import { chunkGets, startNbd, startNginx, type Nginx } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";
import { openSource } from "../../src/store/open.ts";
import { decodeIndex, distinctChunkRefs } from "../../src/store/format.ts";
import { encodeProfile, indexDigest } from "../../src/store/profile.ts";
import type { PrefetchStats } from "../../src/store/prefetch.ts";

const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-bootpack-");
const www = join(tmp, "www");
const store = join(www, "store");
const image = new Uint8Array(8 << 20);
let nginx: Nginx;
/** the profile's distinct non-zero chunks: what the pack holds */
let planned = 0;

beforeAll(async () => {
  // 128 chunks of 64 KiB: text-like (compressible) and random ones, and some zero chunks
  let x = 7;
  for (let c = 0; c < 128; c++) {
    if (c % 9 === 4) continue;
    for (let i = 0; i < 65536; i++) image[c * 65536 + i] = c % 2 ? (x = (x * 1103515245 + 12345) >>> 0) >>> 24 : 97 + ((i * c) % 26);
  }
  writeFileSync(join(tmp, "disk.img"), image);
  run([BIN, "pack", "--chunk-size", "64K", join(tmp, "disk.img"), store]);
  // A profile of 40 chunks in a boot-like order (a written one: recording is boot-prefetch's test).
  const index = decodeIndex(readFileSync(join(store, "index")));
  const chunks = [...Array(40).keys()].map((i) => (i * 37) % 128); // distinct: 37 is odd
  planned = distinctChunkRefs(index, chunks).length; // no zero chunks, each digest once
  writeFileSync(join(store, "index.profile"), encodeProfile({ indexDigest: indexDigest(index), entries: chunks.map((chunk, i) => ({ chunk, ms: i * 10 })) }));
  run([BIN, "profile", "pack", store]);
  nginx = await startNginx(www, join(tmp, "nginx"));
});
afterAll(async () => {
  await nginx?.stop();
});

async function openAndRead(cacheDir: string): Promise<{ lines: string[]; stats: PrefetchStats }> {
  const from = nginx.lines().length;
  let done!: (s: PrefetchStats) => void;
  const prefetched = new Promise<PrefetchStats>((r) => (done = r));
  const src = await openSource(`${nginx.url}store/`, {
    mirrors: [], cacheDir, prefetch: true, log: () => {},
    onPrefetch: (what, st) => what === "done" && done(st),
  });
  const stats = await prefetched;
  const lines = nginx.lines().slice(from); // before our own reads: what the prefetch fetched
  const got = await src.read(0, image.length);
  expect(Buffer.compare(Buffer.from(got), Buffer.from(image))).toBe(0);
  await src.close?.();
  return { lines, stats };
}

test("cold: the profiled chunks come in the pack's one GET, checked; warm: neither pack nor chunks are fetched", async () => {
  const cache = join(tmp, "cache");
  const cold = await openAndRead(cache);
  expect(cold.lines.filter((l) => l.includes("/store/index.bootpack")).map((l) => l.split('" ')[1]?.split(" ")[0])).toEqual(["200"]);
  expect(chunkGets(cold.lines)).toEqual([]);
  expect(planned).toBeGreaterThan(20);
  expect(cold.stats.pack).toMatchObject({ entries: planned, served: planned, bad: 0, error: null });
  expect(cold.stats.failed).toBe(0);

  const warm = await openAndRead(cache);
  expect(warm.lines.filter((l) => l.includes("bootpack"))).toEqual([]);
  expect(chunkGets(warm.lines)).toEqual([]);
  expect(warm.stats.pack).toBeUndefined();
});

/** Entry files below a cache dir's chunks/ (what is on the disk, not what anything says). */
function cachedEntries(cache: string): string[] {
  const chunks = join(cache, "chunks");
  return readdirSync(chunks).flatMap((d) => readdirSync(join(chunks, d)).filter((f) => f.endsWith(".zst")));
}

test("inetboot nbd --prefetch --cache: the profile's chunks reach the cache before any client reads; nbdcopy gets the image intact", async () => {
  const cache = join(tmp, "cli-cache");
  const from = nginx.lines().length;
  const nbd = await startNbd(`${nginx.url}store/`, ["--listen", `unix:${join(tmp, "pf.sock")}`, "--cache", cache, "--prefetch"]);
  try {
    await nbd.err.waitFor(/prefetch done: .*\n/, 30_000);
    // No client has connected yet: everything nginx served so far is the prefetch's.
    const lines = nginx.lines().slice(from);
    expect(lines.filter((l) => l.includes("/store/index.bootpack"))).toHaveLength(1);
    expect(chunkGets(lines)).toEqual([]);
    expect(cachedEntries(cache)).toHaveLength(planned); // written through to the disk cache, not a word of the log
    const out = join(tmp, "cli-copy.img");
    run(["nbdcopy", nbd.uri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(image))).toBe(0);
    expect(nbd.err.text).toMatch(new RegExp(`prefetch: ${planned} chunks listed by the boot profile\n`));
  } finally {
    expect(await nbd.stop()).toBe(0);
  }
});

test("inetboot nbd --prefetch: a store without a profile says so and serves; a raw image is refused in one line", async () => {
  run([BIN, "pack", "--chunk-size", "64K", join(tmp, "disk.img"), join(www, "plain")]);
  const nbd = await startNbd(`${nginx.url}plain/`, ["--listen", `unix:${join(tmp, "pf2.sock")}`, "--prefetch"]);
  try {
    await nbd.err.waitFor(/prefetch: no boot profile beside the index, nothing to prefetch/);
    const out = join(tmp, "plain-copy.img");
    run(["nbdcopy", nbd.uri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(image))).toBe(0);
  } finally {
    expect(await nbd.stop()).toBe(0);
  }
  const raw = Bun.spawnSync([BIN, "nbd", join(tmp, "disk.img"), "--prefetch", "--listen", `unix:${join(tmp, "pf3.sock")}`], { stderr: "pipe" });
  expect(raw.exitCode).toBe(1);
  const err = raw.stderr.toString().trim();
  expect(err.split("\n")).toHaveLength(1);
  expect(err).toMatch(/--prefetch: .*disk\.img is an image file, not a block store/);
  writeFileSync(join(www, "raw.img"), image); // a raw image URL: served, but it has no profile
  const url = Bun.spawnSync([BIN, "nbd", `${nginx.url}raw.img`, "--prefetch", "--listen", `unix:${join(tmp, "pf4.sock")}`], { stderr: "pipe" });
  expect(url.exitCode).toBe(1);
  expect(url.stderr.toString().trim()).toMatch(/^inetboot: --prefetch: http:\S+raw\.img is a raw image, not a block store[^\n]*$/);
});
