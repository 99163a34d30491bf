// The cache stick's FAT identity (label, UUID, the dirty bit Linux leaves set when it is cut off
// while mounted read-write) read from real mkfs.fat images, and fsck.fat repairing the damage a
// cut leaves: a directory entry whose clusters are free in the FAT.
import { expect, test } from "bun:test";
import { chmodSync, closeSync, openSync, readSync, writeFileSync, writeSync } from "node:fs";
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

test("fsck.fat -a clears the dirty bit and repairs an entry whose clusters the FAT marks free", async () => {
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

  const r = (await fsckFat(img, { paths: ["/usr/sbin/fsck.fat", "/sbin/fsck.fat"] }))!;
  expect(r.ok).toBe(true);
  expect(r.changed).toBe(true);
  expect(r.summary).toMatch(/files/);
  expect(fsckN(img)).toBe(0); // nothing left to repair
  expect(identifyFs(head(img))!.dirty).toBe(false);
});

test("without fsck.fat in the initramfs there is nothing to run (the agent mounts the stick as it is)", async () => {
  expect(await fsckFat(join(dir, "none.img"), { paths: [join(dir, "no-fsck.fat")] })).toBeNull();
});

test("a device fsck.fat cannot open is a failure with its reason, not an exception", async () => {
  const r = (await fsckFat(join(dir, "missing.img")))!;
  expect(r.ok).toBe(false);
  expect(r.summary.length).toBeGreaterThan(0);
});

/** A stand-in for fsck.fat (the logic under test is the waiting, not the repair): sleeps, then
 *  prints a tally and exits with `status`. */
function slowFsck(name: string, seconds: number, status: number): string {
  const bin = join(dir, name);
  writeFileSync(bin, `#!/bin/sh\nsleep ${seconds}\necho "$3: 7 files, 9/99 clusters"\nexit ${status}\n`);
  chmodSync(bin, 0o755);
  return bin;
}

test("a long check says it is still running, and the event loop is free meanwhile", async () => {
  const ticks: number[] = [];
  let loopTurns = 0;
  const spin = setInterval(() => loopTurns++, 50);
  const r = (await fsckFat("/dev/fake", { paths: [slowFsck("slow.sh", 1.3, 0)], tickMs: 400, onTick: (s) => ticks.push(s) }))!;
  clearInterval(spin);
  expect(r).toMatchObject({ status: 0, ok: true, changed: false, summary: "/dev/fake: 7 files, 9/99 clusters" });
  expect(r.seconds).toBeGreaterThanOrEqual(1.2);
  expect(ticks.length).toBeGreaterThanOrEqual(2);
  expect(loopTurns).toBeGreaterThanOrEqual(15);
});

test("a check past its deadline is killed: a failure that says so, in about the deadline", async () => {
  const t0 = performance.now();
  const r = (await fsckFat("/dev/fake", { paths: [slowFsck("hang.sh", 30, 0)], timeoutMs: 500 }))!;
  expect(performance.now() - t0).toBeLessThan(5000);
  expect(r).toMatchObject({ ok: false, summary: "killed after 0.5 s" });
});

test("a pass that changed something is repeated, three passes at most", async () => {
  const r = (await fsckFat("/dev/fake", { paths: [slowFsck("always.sh", 0, 1)] }))!;
  expect(r).toMatchObject({ status: 1, ok: true, changed: true });
});
