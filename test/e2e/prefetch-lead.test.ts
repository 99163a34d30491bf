// End to end through Debian's nginx: a profile-driven prefetch ahead of a reader slower than the
// link, reading the image in the profile's order through the whole stack (read-ahead included).
// Every chunk is fetched exactly once (nginx's log): the prefetched chunks and the read-ahead
// window fit in the memory cache beside the reader's recent chunks. With a lead of half the
// cache they did not: unread prefetched chunks were evicted, the reader fetched them again, and
// the prefetcher, counting them no more, ran on (1383 GETs for 768 chunks).
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
const image = new Uint8Array(48 << 20); // 768 chunks of random bytes: each distinct, none zero
let nginx: Nginx;

beforeAll(async () => {
  for (let o = 0; o < image.length; o += 65536) crypto.getRandomValues(image.subarray(o, o + 65536));
  writeFileSync(join(tmp, "disk.img"), image);
  run([BIN, "pack", "--chunk-size", "64K", join(tmp, "disk.img"), join(www, "store")]);
  const index = decodeIndex(readFileSync(join(www, "store", "index")));
  const n = image.length / CHUNK;
  writeFileSync(join(www, "store", "index.profile"), encodeProfile({ indexDigest: indexDigest(index), entries: [...Array(n).keys()].map((chunk) => ({ chunk, ms: chunk })) }));
  nginx = await startNginx(www, join(tmp, "nginx"));
});
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
  for (let o = 0; o < image.length; o += CHUNK) {
    const got = await src.read(o, CHUNK);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(image.subarray(o, o + CHUNK)))).toBe(0);
    await Bun.sleep(1); // slower than loopback: the prefetch is always ahead
  }
  await src.close?.();
  const gets = chunkGets(nginx.lines().slice(from));
  expect(gets.length).toBe(image.length / CHUNK); // no chunk twice
  expect(new Set(gets).size).toBe(gets.length);
});
