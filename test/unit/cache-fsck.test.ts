// The cache stick's FAT identity (label, UUID, the dirty bit Linux leaves set when it is cut off
// while mounted read-write) read from real mkfs.fat images, and fsck.fat repairing the damage a
// cut leaves: a directory entry whose clusters are free in the FAT.
import { expect, test } from "bun:test";
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { identifyFs } from "../../src/boot/blockdev.ts";
import { fsckFat } from "../../src/boot/fsck-fat.ts";
import { run } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

const dir = scratch("cache-fsck-");

function mkfat(name: string, bits: 16 | 32): string {
  const img = join(dir, name);
  run(["mkfs.fat", "-F", String(bits), "-n", "INETBOOT", "-C", img, String(bits === 32 ? 65536 : 16384)]);
  return img;
}
function head(img: string): Uint8Array {
  const b = new Uint8Array(2048);
  const fd = openSync(img, "r");
  readSync(fd, b, 0, 2048, 0);
  closeSync(fd);
  return b;
}
function poke(img: string, off: number, bytes: Uint8Array) {
  const fd = openSync(img, "r+");
  writeSync(fd, bytes, 0, bytes.length, off);
  closeSync(fd);
}
const fsckN = (img: string) => Bun.spawnSync(["fsck.fat", "-n", img], { stdout: "pipe", stderr: "pipe" }).exitCode;

test("FAT32 and FAT16: label, UUID and the dirty bit (bit 0 of the byte after the drive number)", () => {
  for (const [bits, flags] of [[32, 0x41], [16, 0x25]] as const) {
    const img = mkfat(`id${bits}.img`, bits);
    const id = identifyFs(head(img))!;
    expect(id.type).toBe("vfat");
    expect(id.label).toBe("INETBOOT");
    expect(id.uuid).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
    expect(id.dirty).toBe(false);
    poke(img, flags, new Uint8Array([1]));
    expect(identifyFs(head(img))!.dirty).toBe(true);
  }
});

test("fsck.fat -a clears the dirty bit and repairs an entry whose clusters the FAT marks free", () => {
  const img = mkfat("cut.img", 32);
  const data = join(dir, "chunk.zst");
  Bun.write(data, new Uint8Array(40_000).fill(7));
  run(["mmd", "-i", img, "::inetboot-cache"]);
  run(["mcopy", "-i", img, data, "::inetboot-cache/chunk.zst"]);
  // What a cut can leave: the directory entries reached the stick, the FAT sectors did not.
  const b = head(img);
  const dv = new DataView(b.buffer);
  const reserved = dv.getUint16(14, true), fats = b[16]!, fatSectors = dv.getUint32(36, true);
  // clusters 3.. : the directory's own cluster and the file's (512-byte clusters on this size)
  for (let i = 0; i < fats; i++) poke(img, (reserved + i * fatSectors) * 512 + 3 * 4, new Uint8Array(4 * 90));
  poke(img, 0x41, new Uint8Array([1]));
  expect(fsckN(img)).toBe(1); // damaged, as fsck.fat sees it

  const r = fsckFat(img, ["/usr/sbin/fsck.fat", "/sbin/fsck.fat"])!;
  expect(r.ok).toBe(true);
  expect(r.changed).toBe(true);
  expect(r.summary).toMatch(/files/);
  expect(fsckN(img)).toBe(0); // nothing left to repair
  expect(identifyFs(head(img))!.dirty).toBe(false);
});

test("without fsck.fat in the initramfs there is nothing to run (the agent mounts the stick as it is)", () => {
  expect(fsckFat(join(dir, "none.img"), [join(dir, "no-fsck.fat")])).toBeNull();
});

test("a device fsck.fat cannot open is a failure with its reason, not an exception", () => {
  const r = fsckFat(join(dir, "missing.img"))!;
  expect(r.ok).toBe(false);
  expect(r.summary.length).toBeGreaterThan(0);
});
