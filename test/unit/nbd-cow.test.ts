import { expect, test } from "bun:test";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createCowSource } from "../../src/nbd/cow.ts";
import type { BlockSource } from "../../src/store/source.ts";
import { scratch } from "../lib/tmp.ts";

const SIZE = 256 * 1024 + 1000; // not a multiple of the 4 KiB grain

function base(): BlockSource & { orig: Uint8Array; mem: Uint8Array } {
  const mem = crypto.getRandomValues(new Uint8Array(SIZE));
  return {
    orig: mem.slice(), mem, size: SIZE, readOnly: true, blockSize: 4096,
    async read(o, l) {
      return mem.slice(o, o + l);
    },
    async extents(o, l) {
      return [{ offset: o, length: l, zero: false }];
    },
  };
}

/** Random writes/zeroes/trims against a plain array model; base must stay untouched. */
async function exercise(file?: string) {
  const b = base();
  const cow = await createCowSource(b, { file });
  const model = b.mem.slice();
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
  const ops: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    const off = rnd(SIZE - 1);
    const len = 1 + rnd(Math.min(20_000, SIZE - off));
    const k = rnd(3);
    if (k === 0) {
      const d = crypto.getRandomValues(new Uint8Array(len));
      model.set(d, off);
      ops.push(cow.write!(off, d));
    } else if (k === 1) {
      model.fill(0, off, off + len);
      ops.push(cow.zero!(off, len));
    } else {
      model.fill(0, off, off + len);
      ops.push(cow.trim!(off, len));
    }
    if (i % 10 === 0) await Promise.all(ops); // mix concurrent and sequential mutations
  }
  await Promise.all(ops);
  await cow.flush!();
  expect(Buffer.compare(await cow.read(0, SIZE), model)).toBe(0);
  for (let i = 0; i < 50; i++) {
    const off = rnd(SIZE - 1), len = 1 + rnd(SIZE - off);
    expect(Buffer.compare(await cow.read(off, len), model.subarray(off, off + len))).toBe(0);
  }
  expect(Buffer.compare(b.mem, b.orig)).toBe(0);
  const ext = await cow.extents!(0, SIZE);
  expect(ext.reduce((a, e) => a + e.length, 0)).toBe(SIZE);
  for (const e of ext) if (e.zero) expect(model.subarray(e.offset, e.offset + e.length).every((x) => x === 0)).toBe(true);
  await cow.close!();
}

test("cow in RAM matches a model and never writes the base", () => exercise());

test("cow in a sparse file matches a model", async () => {
  const dir = scratch("nbd-cow-");
  try {
    await exercise(join(dir, "overlay"));
    expect(statSync(join(dir, "overlay")).size).toBe(SIZE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("WRITE_ZEROES with NO_HOLE keeps the range allocated; without it, whole grains become zero extents", async () => {
  const cow = await createCowSource(base());
  await cow.zero!(0, 16384, true);
  await cow.zero!(16384, 16384);
  expect((await cow.read(0, 32768)).every((x) => x === 0)).toBe(true);
  const ext = await cow.extents!(0, 32768);
  expect(ext.filter((e) => e.offset < 16384).every((e) => !e.zero)).toBe(true);
  expect(ext.find((e) => e.offset === 16384)).toEqual({ offset: 16384, length: 16384, zero: true });
  await cow.close!();
});
