// Chunk unpacking on worker threads (src/store/unpack-pool.ts) and the raw-block zstd frames the
// disk cache writes (src/store/zstd-raw.ts).
import { describe, expect, test } from "bun:test";
import { sha256Hex } from "../../src/store/chunk-name.ts";
import { ChunkError, unpackChunkAsync } from "../../src/store/chunk.ts";
import { UnpackPool, unpackPool } from "../../src/store/unpack-pool.ts";
import { zstdRawFrame } from "../../src/store/zstd-raw.ts";
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
    expect(await errOf(unpackChunkAsync(ref, prng(20000, 1)))).toMatch(/not valid zstd/);
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
});
