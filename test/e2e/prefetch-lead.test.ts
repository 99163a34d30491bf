// End to end through Debian's nginx: a profile-driven prefetch ahead of a reader slower than the
// link, reading the image in the profile's order through the whole stack (read-ahead included).
// Every chunk is fetched exactly once (nginx's log): the prefetched chunks and the read-ahead
// window fit in the memory cache beside the reader's recent chunks. With a lead of half the
// cache they did not: unread prefetched chunks were evicted, the reader fetched them again, and
// the prefetcher, counting them no more, ran on (1383 GETs for 768 chunks). And a reader that
// reads four times as much outside the profile (memory pressure): the prefetcher finds its chunks
// evicted unread and halves its lead, instead of fetching every one for the cache to drop.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD } from "../lib/qemu.ts";
import { run } from "../lib/sh.ts";
import { chunkGets, startNginx, type Nginx } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";
import { openSource } from "../../src/store/open.ts";
import { decodeIndex } from "../../src/store/format.ts";
import { encodeProfile, indexDigest } from "../../src/store/profile.ts";

const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-lead-");
const www = join(tmp, "www");
const CHUNK = 65536;
const image = new Uint8Array(96 << 20); // 1536 chunks of random bytes: each distinct, none zero
const N = 768; // the profile: the first half, in order
let profileHex: Set<string>;
let nginx: Nginx;

beforeAll(async () => {
  for (let o = 0; o < image.length; o += 65536) crypto.getRandomValues(image.subarray(o, o + 65536));
  writeFileSync(join(tmp, "disk.img"), image);
  run([BIN, "pack", "--chunk-size", "64K", join(tmp, "disk.img"), join(www, "store")]);
  const index = decodeIndex(readFileSync(join(www, "store", "index")));
  writeFileSync(join(www, "store", "index.profile"), encodeProfile({ indexDigest: indexDigest(index), entries: [...Array(N).keys()].map((chunk) => ({ chunk, ms: chunk })) }));
  profileHex = new Set([...Array(N).keys()].map((i) => index.digests.subarray(i * 32, i * 32 + 32).toHex()));
  nginx = await startNginx(www, join(tmp, "nginx"));
});
/** nginx's GET lines for chunks the profile lists */
const profileGets = (lines: string[]) => chunkGets(lines).filter((l) => profileHex.has(/\/([0-9a-f]{64})\.zst/.exec(l)![1]!));

afterAll(async () => {
  await nginx?.stop();
});

test("a reader slower than the prefetch, in the profile's order: each chunk fetched once", async () => {
  const from = nginx.lines().length;
  let started!: () => void;
  const start = new Promise<void>((r) => (started = r));
  const src = await openSource(`${nginx.url}store/`, {
    mirrors: [], prefetch: true, log: () => {},
    memCacheBytes: 16 << 20, // a quarter of the default: the same proportions, a smaller image
    onPrefetch: (what) => what === "start" && started(),
  });
  await start;
  for (let o = 0; o < N * CHUNK; o += CHUNK) {
    const got = await src.read(o, CHUNK);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(image.subarray(o, o + CHUNK)))).toBe(0);
    await Bun.sleep(1); // slower than loopback: the prefetch is always ahead
  }
  await src.close?.();
  // (read-ahead also fetches a window past the profile's end: those are not counted)
  const gets = profileGets(nginx.lines().slice(from));
  expect(gets.length).toBe(N); // no chunk twice
  expect(new Set(gets).size).toBe(gets.length);
});

test("a reader that reads four times as much outside the profile: the lead shrinks, few profile chunks are fetched twice", async () => {
  const from = nginx.lines().length;
  let started!: () => void;
  const start = new Promise<void>((r) => (started = r));
  let evicted = -1;
  const src = await openSource(`${nginx.url}store/`, {
    mirrors: [], prefetch: true, log: () => {}, readAhead: false,
    memCacheBytes: 16 << 20,
    onPrefetch: (what, st) => (what === "start" ? started() : (evicted = st.evicted)),
  });
  await start;
  for (let i = 0; i < N; i++) {
    const got = await src.read(i * CHUNK, CHUNK);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(image.subarray(i * CHUNK, (i + 1) * CHUNK)))).toBe(0);
    for (let k = 0; k < 4; k++) await src.read((N + ((i * 4 + k) % N)) * CHUNK, CHUNK); // each read 4 times, far apart: misses
    await Bun.sleep(1);
  }
  await src.close?.();
  const gets = profileGets(nginx.lines().slice(from));
  // Before: 1495 GETs (the prefetch ran 768 chunks ahead; the cache dropped 727 of them unread).
  // Now: the first lead (a quarter of the cache, 64 chunks) is lost once, then it fits.
  expect(gets.length).toBeLessThan(N + 128);
  expect(evicted).toBeGreaterThan(0);
});
