// src/nbd/cow.ts with a file overlay: the file is created, never reused, so an existing file (a
// user's data, a mistyped name) is refused and keeps every byte.
import { expect, test } from "bun:test";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCowSource } from "../../src/nbd/cow.ts";
import type { BlockSource } from "../../src/store/source.ts";
import { scratch } from "../lib/tmp.ts";

const base = (): BlockSource => ({ size: 65536, readOnly: true, blockSize: 4096, read: async (_o, l) => new Uint8Array(l) });

test("an existing file, or a symlink, is refused with one line and left as it was", async () => {
  const dir = scratch("nbd-cow-file-");
  const f = join(dir, "precious");
  writeFileSync(f, "keep me\n");
  await expect(createCowSource(base(), { file: f })).rejects.toThrow(`--cow-file ${f}: exists; remove it or name a new file (its contents would be replaced)`);
  expect(readFileSync(f, "utf8")).toBe("keep me\n");
  const link = join(dir, "link");
  symlinkSync(join(dir, "elsewhere"), link); // dangling: creating through it would write elsewhere
  await expect(createCowSource(base(), { file: link })).rejects.toThrow("exists");
  expect(existsSync(join(dir, "elsewhere"))).toBe(false);
});

test("a new file is created at the image's size", async () => {
  const f = join(scratch("nbd-cow-file-"), "overlay");
  const cow = await createCowSource(base(), { file: f });
  await cow.write!(4096, new Uint8Array(4096).fill(9));
  expect((await cow.read(4096, 4))[0]).toBe(9);
  await cow.close!();
  expect(readFileSync(f).length).toBe(65536);
});
