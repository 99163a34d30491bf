// A raw image read with Range requests (raw-http.ts), against a small Range server on loopback.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { HttpPool } from "../../src/store/fetcher/pool.ts";
import { RawHttpSource } from "../../src/store/raw-http.ts";

const MiB = 1 << 20;
const img = new Uint8Array(64 * MiB).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
/** A server of `image` honouring single Range requests; `down()` makes it answer 503. */
function rangeServer(image: Uint8Array) {
  let down = false;
  const srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      if (down) return new Response("down", { status: 503 });
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
      if (!m) return new Response(image, { headers: { "accept-ranges": "bytes" } });
      const start = Number(m[1]), end = Math.min(Number(m[2]), image.length - 1);
      return new Response(image.subarray(start, end + 1), { status: 206, headers: { "content-range": `bytes ${start}-${end}/${image.length}` } });
    },
  });
  return { url: `http://127.0.0.1:${srv.port}/img`, down: () => (down = true), stop: () => srv.stop(true) };
}

let srv: ReturnType<typeof rangeServer>;
let url: string;
beforeAll(() => {
  srv = rangeServer(img);
  url = srv.url;
});
afterAll(() => srv.stop());

test("the memory cap counts the response buffers the cached blocks keep alive, not just the blocks", async () => {
  const cap = 4 * MiB;
  const src = new RawHttpSource([url], img.length, new HttpPool({ maxParallel: 4 }), { memCacheBytes: cap });
  const cache = (src as unknown as { cache: Map<number, Uint8Array> }).cache;
  for (let k = 0; k < 48; k++) {
    expect(await src.read(k * MiB, MiB)).toEqual(img.subarray(k * MiB, (k + 1) * MiB)); // one 1 MiB response
    // a hot block in each recent response: with views counted alone, these pinned every response
    for (let j = Math.max(0, k - 23); j <= k; j++) expect(await src.read(j * MiB + 4096, 4096)).toEqual(img.subarray(j * MiB + 4096, j * MiB + 8192));
  }
  const pinned = [...new Set([...cache.values()].map((v) => v.buffer))].reduce((n, b) => n + b.byteLength, 0);
  expect(src.cachedBytes).toBe(pinned);
  expect(pinned).toBeLessThanOrEqual(cap);
});

test("a mirror whose image has another size is never read as this image", async () => {
  const primary = rangeServer(new Uint8Array(16 * MiB).fill(0xaa));
  const other = rangeServer(new Uint8Array(20 * MiB).fill(0xbb)); // another build of the image
  try {
    const src = new RawHttpSource([primary.url, other.url], 16 * MiB, new HttpPool(), { deadlineMs: 1500 });
    expect((await src.read(0, 4096))[0]).toBe(0xaa);
    primary.down();
    const e = await src.read(12 * MiB, 4096).then(() => null, (x) => x);
    expect(e?.code).toBe("EIO"); // not 0xbb
    // the reason, from that server alone (with two, the last one to fail names the error)
    const alone = new RawHttpSource([other.url], 16 * MiB, new HttpPool(), { deadlineMs: 1500 });
    const why = await alone.read(12 * MiB, 4096).then(() => null, (x) => x);
    expect(why?.message).toContain(`the image here is ${20 * MiB} bytes, not ${16 * MiB}`);
  } finally {
    primary.stop();
    other.stop();
  }
});
