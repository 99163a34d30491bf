// A raw image read with Range requests (raw-http.ts), against a small Range server on loopback.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { HttpPool } from "../../src/store/fetcher/pool.ts";
import { RawHttpSource } from "../../src/store/raw-http.ts";

const MiB = 1 << 20;
const img = new Uint8Array(64 * MiB).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
let srv: ReturnType<typeof Bun.serve>;
let url: string;
beforeAll(() => {
  srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
      if (!m) return new Response(img, { headers: { "accept-ranges": "bytes" } });
      const start = Number(m[1]), end = Math.min(Number(m[2]), img.length - 1);
      return new Response(img.subarray(start, end + 1), { status: 206, headers: { "content-range": `bytes ${start}-${end}/${img.length}` } });
    },
  });
  url = `http://127.0.0.1:${srv.port}/img`;
});
afterAll(() => srv.stop(true));

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
  await src.close?.();
});
