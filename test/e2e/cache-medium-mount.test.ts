// The cache medium's mount as the NBD daemon drives it (boot/cache-medium.ts mediumMount), on a
// real loop-mounted filesystem: at rest it takes no write, woken it does, and once the kernel has
// set it read-only by itself (vfat does on a damaged directory) it is never woken again.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mediumMount } from "../../src/boot/cache-medium.ts";
import { run } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

const dir = scratch("medium-mount-");
const img = join(dir, "stick.img");
const mp = join(dir, "mnt");
let mounted = false;

beforeAll(() => {
  run(["mkfs.ext4", "-q", "-F", img, "8M"]);
  mkdirSync(mp);
  run(["mount", "-o", "loop", img, mp]);
  mounted = true;
});
afterAll(() => {
  if (mounted) run(["umount", mp]);
});

const writes = (name: string) => {
  try {
    writeFileSync(join(mp, name), "x");
    return "ok";
  } catch (e) {
    return (e as { code?: string }).code;
  }
};

test("rest makes it read-only, wake writable again; each only once, with an event per change", () => {
  const seen: boolean[] = [];
  const m = mediumMount(mp, (ro) => seen.push(ro));
  expect(writes("a")).toBe("ok");
  m.rest();
  m.rest();
  expect(writes("b")).toBe("EROFS");
  m.wake();
  m.wake();
  expect(writes("c")).toBe("ok");
  expect(seen).toEqual([true, false]);
});

test("read-only by the kernel's hand (not ours): it is never woken, the write fails with one line", () => {
  const seen: [boolean, boolean | undefined][] = [];
  const m = mediumMount(mp, (ro, byKernel) => seen.push([ro, byKernel]));
  run(["mount", "-o", "remount,ro", mp]); // what vfat does after "corrupted directory"
  m.rest();
  expect(seen).toEqual([[true, true]]);
  expect(() => m.wake()).toThrow(`${mp}: set read-only by the kernel after a filesystem error`);
  expect(writes("d")).toBe("EROFS");
  run(["mount", "-o", "remount,rw", mp]);
});
