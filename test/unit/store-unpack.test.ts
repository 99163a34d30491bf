// Chunk unpacking on worker threads (src/store/unpack-pool.ts) and the raw-block zstd frames the
// disk cache writes (src/store/zstd-raw.ts).
import { describe, expect, test } from "bun:test";
import { sha256Hex } from "../../src/store/chunk-name.ts";
import { ChunkError, unpackChunkAsync } from "../../src/store/chunk.ts";
import { UnpackPool, unpackPool } from "../../src/store/unpack-pool.ts";
import { rawFramePlainInPlace, zstdRawFrame, zstdRawFramePieces } from "../../src/store/zstd-raw.ts";
import { prng } from "./store-fixtures.ts";

// (bun:test's `expect(p).rejects` did not see rejections that come from a worker message here)
const errOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: Error) => `${e.name}: ${e.message}`);

describe("unpack on workers", () => {
  const plain = prng(256 * 1024, 5);
  const ref = { hex: sha256Hex(plain), size: plain.length };

  test("good chunk comes back verified; bad data, wrong length and wrong digest are ChunkErrors", async () => {
    const pool = unpackPool();
    expect(pool.usable).toBe(true);
    const before = pool.done;
    expect(Buffer.from(await unpackChunkAsync(ref, Bun.zstdCompressSync(plain))).equals(Buffer.from(plain))).toBe(true);
    expect(pool.done).toBe(before + 1); // it really ran on a worker
    const flipped = Bun.zstdCompressSync(plain);
    flipped[flipped.length >> 1]! ^= 0x40;
    const err = await unpackChunkAsync(ref, flipped).catch((e) => e);
    expect(err).toBeInstanceOf(ChunkError);
    expect(err.message).toMatch(/digest mismatch/);
    expect(await errOf(unpackChunkAsync({ ...ref, size: 1000 }, Bun.zstdCompressSync(plain)))).toMatch(/expected 1000/);
    expect(await errOf(unpackChunkAsync({ ...ref, hex: "0".repeat(64) }, Bun.zstdCompressSync(plain)))).toMatch(/digest mismatch/);
    expect(await errOf(unpackChunkAsync(ref, prng(20000, 1)))).toMatch(/not a zstd frame that declares its size/);
    const broken = Bun.zstdCompressSync(plain);
    broken.fill(0xff, 12, 40); // the header (and its size) intact, the blocks not
    expect(await errOf(unpackChunkAsync(ref, broken))).toMatch(/not valid zstd data|digest mismatch/);
  });

  test("warm() starts the workers before any chunk (a store's open does), and they take chunks", async () => {
    const pool = new UnpackPool(2);
    expect(pool.running).toBe(0);
    pool.warm();
    expect(pool.running).toBe(2);
    pool.warm(); // once
    expect(pool.running).toBe(2);
    expect(Buffer.from(await pool.unpack(Bun.zstdCompressSync(plain), ref.size, ref.hex)).equals(Buffer.from(plain))).toBe(true);
    pool.close();
  });

  test("a chunk behind other bytes in its buffer (an HTTP body after its head) is handed over whole", async () => {
    const pool = unpackPool();
    const before = pool.done;
    const packed = Bun.zstdCompressSync(plain);
    const buf = new Uint8Array(300 + packed.length);
    buf.fill(0x55, 0, 300); // a response head in front
    buf.set(packed, 300);
    const view = buf.subarray(300);
    expect(Buffer.from(await unpackChunkAsync(ref, view)).equals(Buffer.from(plain))).toBe(true);
    expect(pool.done).toBe(before + 1);
    expect(buf.buffer.byteLength).toBe(0); // moved to the worker, not copied
    // a small view of a large buffer is copied instead (the rest stays usable)
    const big = new Uint8Array(packed.length * 3);
    big.set(packed, 10);
    expect(Buffer.from(await unpackChunkAsync(ref, big.subarray(10, 10 + packed.length))).equals(Buffer.from(plain))).toBe(true);
    expect(big.buffer.byteLength).toBe(packed.length * 3);
    const bigBuf = Buffer.alloc(packed.length * 3); // Buffer#slice is a view: must still be copied
    bigBuf.set(packed, 10);
    expect(Buffer.from(await unpackChunkAsync(ref, bigBuf.subarray(10, 10 + packed.length))).equals(Buffer.from(plain))).toBe(true);
    expect(bigBuf.buffer.byteLength).toBeGreaterThanOrEqual(packed.length * 3);
  });

  test("many concurrent chunks on two workers, each answer matches its request", async () => {
    const pool = new UnpackPool(2);
    const chunks = Array.from({ length: 40 }, (_, i) => prng(64 * 1024, 100 + i));
    const out = await Promise.all(chunks.map((c) => pool.unpack(Bun.zstdCompressSync(c), c.length, sha256Hex(c))));
    out.forEach((o, i) => expect(Buffer.from(o).equals(Buffer.from(chunks[i]!))).toBe(true));
    pool.close();
  });
});

describe("raw-block zstd frames", () => {
  test("round trip through Bun's zstd and the zstd CLI, sizes around the 128 KiB block limit", async () => {
    for (const n of [1, 5000, 131072, 131073, 262144, 1 << 20]) {
      const p = prng(n, n);
      const f = zstdRawFrame(p);
      expect(f.length).toBe(9 + 3 * Math.ceil(n / 131072) + n);
      expect(Buffer.from(Bun.zstdDecompressSync(f)).equals(Buffer.from(p))).toBe(true);
    }
    const p = prng(200_000, 9);
    const r = Bun.spawnSync(["zstd", "-dc"], { stdin: zstdRawFrame(p) });
    expect(r.exitCode).toBe(0);
    expect(Buffer.from(r.stdout).equals(Buffer.from(p))).toBe(true);
  });

  test("gathered in place without decompressing; anything but one all-raw frame is left to zstd", () => {
    for (const n of [1, 131072, 131073, 262144, 300_000]) {
      const p = prng(n, n + 1);
      const f = zstdRawFrame(p);
      const plain = rawFramePlainInPlace(f);
      expect(plain).not.toBeNull();
      expect(plain!.buffer).toBe(f.buffer); // a view, no new buffer
      expect(Buffer.from(plain!).equals(Buffer.from(p))).toBe(true);
    }
    // the pieces written to the disk cache are the same frame, byte for byte
    const p = prng(262144, 3);
    expect(Buffer.from(Buffer.concat(zstdRawFramePieces(p))).equals(Buffer.from(zstdRawFrame(p)))).toBe(true);
    // a frame with compressed blocks, a cut frame, trailing bytes and a second frame: null, untouched
    const compressed = Bun.zstdCompressSync(new Uint8Array(262144));
    expect(rawFramePlainInPlace(compressed)).toBeNull();
    const f = zstdRawFrame(p);
    const cut = f.slice(0, f.length - 1);
    const before = Buffer.from(cut);
    expect(rawFramePlainInPlace(cut)).toBeNull();
    expect(Buffer.from(cut).equals(before)).toBe(true);
    expect(rawFramePlainInPlace(Buffer.concat([f, new Uint8Array(1)]))).toBeNull();
    expect(rawFramePlainInPlace(Buffer.concat([f, zstdRawFrame(prng(10, 1))]))).toBeNull();
    expect(rawFramePlainInPlace(prng(1000, 2))).toBeNull();
  });

  test("the disk cache's raw frames come back verified: a flipped byte is a digest mismatch", async () => {
    const p = prng(262144, 11);
    const ref = { hex: sha256Hex(p), size: p.length };
    const before = unpackPool().done;
    expect(Buffer.from(await unpackChunkAsync(ref, zstdRawFrame(p))).equals(Buffer.from(p))).toBe(true);
    expect(unpackPool().done).toBe(before + 1); // on the worker, which embeds rawFramePlainInPlace
    const bad = zstdRawFrame(p);
    bad[200_000]! ^= 1;
    expect(await errOf(unpackChunkAsync(ref, bad))).toMatch(/digest mismatch/);
    // a chunk under 8 KiB is unpacked on this thread: same checks there
    const small = prng(5000, 12);
    const sref = { hex: sha256Hex(small), size: small.length };
    expect(Buffer.from(await unpackChunkAsync(sref, zstdRawFrame(small))).equals(Buffer.from(small))).toBe(true);
    const sbad = zstdRawFrame(small);
    sbad[100]! ^= 1;
    expect(await errOf(unpackChunkAsync(sref, sbad))).toMatch(/digest mismatch/);
  });
});
