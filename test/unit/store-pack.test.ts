import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packImage } from "../../src/store/pack.ts";
import { openSource, loadStore } from "../../src/store/open.ts";
import { verifyStore } from "../../src/store/verify.ts";
import { sha256Hex, chunkPath } from "../../src/store/chunk-name.ts";
import { makeImage, prng, tmp, writeImage } from "./store-fixtures.ts";

const CS = 65536;

function chunkFiles(store: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(store, "chunks"))) for (const f of readdirSync(join(store, "chunks", d))) out.push(`${d}/${f}`);
  return out.sort();
}

describe("pack", () => {
  test("counts chunks, dedups, skips zeros; reader returns identical bytes", async () => {
    const dir = tmp();
    const img = makeImage(CS);
    const store = join(dir, "store");
    const r = await packImage(writeImage(dir, img), store, { chunkSize: CS });
    expect(r).toMatchObject({ chunks: 8, zero: 2, stored: 4, deduplicated: 2, imageSize: img.length });
    const files = chunkFiles(store);
    expect(files.length).toBe(4);
    // every stored file is named by the SHA-256 of its decompressed bytes
    for (const f of files) {
      const plain = Bun.zstdDecompressSync(readFileSync(join(store, "chunks", f)));
      expect(f).toBe(`${f.slice(0, 2)}/${sha256Hex(plain)}.zst`);
    }
    expect(files.some((f) => f.includes(sha256Hex(new Uint8Array(CS))))).toBe(false); // zero chunk not stored

    const src = await openSource(store, { mirrors: [] });
    expect(src.size).toBe(img.length);
    expect(src.blockSize).toBe(CS);
    const all = await src.read(0, img.length);
    expect(Buffer.from(all).equals(Buffer.from(img))).toBe(true);
    // unaligned reads across chunk borders and into the short tail
    for (const [o, l] of [[1, 10], [CS - 3, 9], [3 * CS + 5, 2 * CS], [img.length - 11, 11], [CS, CS]] as const) {
      const got = await src.read(o, l);
      expect(Buffer.from(got).equals(Buffer.from(img.subarray(o, o + l)))).toBe(true);
    }
    await expect(src.read(img.length - 1, 2)).rejects.toMatchObject({ code: "EINVAL" });
    expect(await src.extents!(0, img.length)).toEqual([
      { offset: 0, length: CS, zero: false },
      { offset: CS, length: CS, zero: true },
      { offset: 2 * CS, length: 3 * CS, zero: false },
      { offset: 5 * CS, length: CS, zero: true },
      { offset: 6 * CS, length: img.length - 6 * CS, zero: false },
    ]);
    await src.close?.();
  });

  test("updating an image writes only new chunks; images share chunks/", async () => {
    const dir = tmp();
    const store = join(dir, "store");
    const img = makeImage(CS);
    await packImage(writeImage(dir, img), store, { chunkSize: CS, name: "one" });
    const before = new Map(chunkFiles(store).map((f) => [f, statSync(join(store, "chunks", f)).mtimeMs]));
    await Bun.sleep(20);
    const img2 = img.slice();
    img2.set(prng(CS, 999), 2 * CS); // only the chunk at position 2 changes
    const r = await packImage(writeImage(dir, img2, "two.img"), store, { chunkSize: CS, name: "two" });
    // chunk 2 is new; A, A, text, B (position 6) and C are already stored
    expect(r.stored).toBe(1);
    expect(r.deduplicated).toBe(5);
    const after = chunkFiles(store);
    expect(after.length).toBe(5);
    for (const [f, m] of before) expect(statSync(join(store, "chunks", f)).mtimeMs).toBe(m); // untouched
    for (const [name, want] of [["one", img], ["two", img2]] as const) {
      const src = await openSource(join(store, `${name}.index`), { mirrors: [] });
      expect(Buffer.from(await src.read(0, want.length)).equals(Buffer.from(want))).toBe(true);
    }
    // re-packing the same image writes nothing
    const again = await packImage(join(dir, "two.img"), store, { chunkSize: CS, name: "two" });
    expect(again.stored).toBe(0);
    expect(readdirSync(store).sort()).toEqual(["chunks", "one.index", "two.index"]); // no tmp files left
  });

  test("large chunk size and default level", async () => {
    const dir = tmp();
    const img = makeImage(1024 * 1024, 7);
    const r = await packImage(writeImage(dir, img), join(dir, "s"), { chunkSize: 1024 * 1024 });
    expect(r).toMatchObject({ chunks: 8, zero: 2, stored: 4 });
    const { index } = await loadStore(join(dir, "s"));
    expect(index.chunkSize).toBe(1024 * 1024);
  });

  test("bad input is one clear error", async () => {
    const dir = tmp();
    await expect(packImage(join(dir, "missing.img"), join(dir, "s"))).rejects.toThrow(/image not found/);
    const img = writeImage(dir, makeImage(CS));
    await expect(packImage(img, join(dir, "s"), { chunkSize: 12345 })).rejects.toThrow(/power of two/);
    writeFileSync(join(dir, "empty.img"), "");
    await expect(packImage(join(dir, "empty.img"), join(dir, "s"))).rejects.toThrow(/empty/);
    await expect(loadStore(join(dir, "nostore"))).rejects.toThrow(/not found/);
  });

  test("verify finds missing and corrupted chunks", async () => {
    const dir = tmp();
    const img = makeImage(CS, 3);
    const store = join(dir, "store");
    await packImage(writeImage(dir, img), store, { chunkSize: CS });
    expect((await verifyStore(store)).bad.length).toBe(0);
    const [f1, f2] = chunkFiles(store);
    const { rmSync } = await import("node:fs");
    rmSync(join(store, "chunks", f1!));
    // a valid zstd frame of the wrong bytes (same length) under the right name
    const len = Bun.zstdDecompressSync(readFileSync(join(store, "chunks", f2!))).length;
    writeFileSync(join(store, "chunks", f2!), Bun.zstdCompressSync(prng(len, 42)));
    const r = await verifyStore(store);
    expect(r.checked).toBe(4);
    expect(r.missing.map((m) => m.hex)).toEqual([f1!.slice(3, 67)]);
    expect(r.bad.map((m) => m.hex)).toEqual([f2!.slice(3, 67)]);
    expect(r.bad[0]!.reason).toMatch(/digest mismatch/);
    // and the reader refuses the corrupted chunk with EIO instead of returning it
    const src = await openSource(store, { mirrors: [] });
    const at = r.bad[0]!.at;
    await expect(src.read(at * CS, 16)).rejects.toMatchObject({ code: "EIO" });
    expect(chunkPath(f2!.slice(3, 67))).toBe(`chunks/${f2}`);
  });
});
