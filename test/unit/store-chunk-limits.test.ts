// Bounds checked before a chunk is in memory: the size its zstd frame declares, and the length of
// its HTTP body. A hostile or broken mirror must not be able to make a diskless client allocate
// gigabytes (a few KB of zstd can declare and inflate to 1 GiB).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ChunkError, maxPackedSize, unpackChunk, unpackChunkAsync } from "../../src/store/chunk.ts";
import { sha256Hex } from "../../src/store/chunk-name.ts";
import { HttpOrigin } from "../../src/store/fetcher/origin.ts";
import { HttpPool } from "../../src/store/fetcher/pool.ts";
import { zstdDeclaredSize, zstdRawFrame } from "../../src/store/zstd-raw.ts";

const SIZE = 64 * 1024;
const plain = new Uint8Array(SIZE).map((_, i) => (i * 31) & 0xff);
const ref = { hex: sha256Hex(plain), size: SIZE };
const bomb = Bun.zstdCompressSync(new Uint8Array(1 << 30), { level: 19 }); // ~32 KB declaring 1 GiB

describe("the size a frame declares", () => {
  test("read from one-shot frames of every content-size field width, and from the cache's raw frames", () => {
    for (const n of [0, 1, 255, 256, 65535, 65536 + 255, 65536 + 256, 1 << 22]) {
      expect(zstdDeclaredSize(Bun.zstdCompressSync(new Uint8Array(n).fill(7)))).toBe(n);
      expect(zstdDeclaredSize(zstdRawFrame(new Uint8Array(n)))).toBe(n);
    }
    expect(zstdDeclaredSize(bomb)).toBe(1 << 30);
    // no size declared (a streamed frame: window descriptor, one raw block "abc"), not zstd, too short
    const streamed = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x19, 0x00, 0x00, 0x61, 0x62, 0x63]);
    expect(new TextDecoder().decode(Bun.zstdDecompressSync(streamed))).toBe("abc");
    expect(zstdDeclaredSize(streamed)).toBe(-1);
    expect(zstdDeclaredSize(new TextEncoder().encode("<html>login</html>"))).toBe(-1);
    expect(zstdDeclaredSize(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xa0]))).toBe(-1);
  });

  test("a frame declaring another size is refused before it is inflated, on the worker path and in-thread", async () => {
    const before = process.memoryUsage().rss;
    for (const unpack of [(p: Uint8Array) => unpackChunkAsync(ref, p), async (p: Uint8Array) => unpackChunk(ref, p)]) {
      const e = await unpack(bomb.slice()).catch((x) => x);
      expect(e).toBeInstanceOf(ChunkError);
      expect(e.message).toBe(`chunk ${ref.hex.slice(0, 16)}…: declares ${1 << 30} bytes, expected ${SIZE}`);
    }
    expect(process.memoryUsage().rss - before).toBeLessThan(256 << 20); // not the 1 GiB
    const streamed = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x19, 0x00, 0x00, 0x61, 0x62, 0x63]);
    expect((await unpackChunkAsync(ref, streamed).catch((x) => x)).message).toContain("not a zstd frame that declares its size");
    // and a good chunk still passes, either way
    expect(await unpackChunkAsync(ref, Bun.zstdCompressSync(plain))).toEqual(plain);
    expect(unpackChunk(ref, zstdRawFrame(plain))).toEqual(plain);
  });
});

describe("the length of a chunk's body", () => {
  let srv: ReturnType<typeof Bun.serve>;
  const huge = new Uint8Array(maxPackedSize(SIZE) + 1);
  beforeAll(() => {
    srv = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (path.includes("/length/")) return new Response(huge); // Content-Length says it
        // chunked: the length shows only as the body streams in
        return new Response(new ReadableStream({ pull(c) { c.enqueue(new Uint8Array(64 * 1024)); } }));
      },
    });
  });
  afterAll(() => srv.stop(true));

  for (const framing of ["length", "chunked"] as const)
    for (const fetchOnly of [false, true])
      test(`a body longer than any chunk can be fails (${framing}, ${fetchOnly ? "fetch" : "our HTTP/1.1 client"})`, async () => {
        const origin = new HttpOrigin(`http://127.0.0.1:${srv.port}/${framing}/`, new HttpPool({ fetchOnly, timeoutMs: 5000 }));
        const e = await origin.get(ref).catch((x) => x);
        expect(e).toBeInstanceOf(Error);
        expect(e.message).toMatch(new RegExp(`body of \\d+ bytes or more, longer than the ${maxPackedSize(SIZE)} expected at most`));
      });
});

test("a response with both Transfer-Encoding: chunked and a Content-Length is read by its chunks (the length is not the body's)", async () => {
  const packed = Bun.zstdCompressSync(plain);
  const srv = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s) {
        s.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n${packed.length.toString(16)}\r\n`);
        s.write(packed);
        s.write("\r\n0\r\n\r\n");
        s.end();
      },
    },
  });
  try {
    const origin = new HttpOrigin(`http://127.0.0.1:${srv.port}/store/`, new HttpPool({ timeoutMs: 5000 }));
    expect(await origin.get(ref)).toEqual(plain);
  } finally {
    srv.stop(true);
  }
});
