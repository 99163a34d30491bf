// End to end on the host, through Debian's nginx: a store with a published profile and its boot
// pack (`inetboot profile pack`, the real CLI). A cold open with a cache dir gets every profiled
// chunk from the pack's one GET (no chunk GET in nginx's log) and reads the image back intact; a
// second open over the now warm cache fetches neither the pack nor any chunk.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD } from "../lib/qemu.ts";
import { run } from "../lib/sh.ts";
import { chunkGets, startNginx, type Nginx } from "../lib/servers.ts";
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
