// Host-side checks of the test root images: each image is read back with its own format's tools
// (unsquashfs, debugfs, xorriso, fsck.erofs), never with our code, and the extracted tree must hold
// what the boot tests rely on: an executable /sbin/init, busybox applet links, root ownership, and
// /data/big.bin whose bytes hash to the digest the builder returned.
import { afterAll, describe, expect, test } from "bun:test";
import { lstatSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  BIG_PATH,
  buildBusyboxRoot,
  buildKnoppixRoot,
  initScript,
  KNOPPIX_PATH,
  pseudoRandom,
  ROOT_FSTYPES,
  type RootFsType,
} from "../lib/roots.ts";
import { moduleLoadOrder } from "../lib/direct-boot.ts";
import { run, sha256Hex } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

const tmp = scratch("inetboot-roots-");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Extracts the whole image with the format's own tool. */
function extract(fstype: RootFsType, image: string, name: string): string {
  const dir = join(tmp, name);
  switch (fstype) {
    case "squashfs":
      run(["unsquashfs", "-q", "-n", "-no-xattrs", "-d", dir, image]);
      break;
    case "ext4":
      run(["mkdir", dir]);
      run(["debugfs", "-R", `rdump / ${dir}`, image]);
      break;
    case "iso9660":
      run(["xorriso", "-osirrox", "on", "-indev", image, "-extract", "/", dir]);
      break;
    case "erofs":
      run(["fsck.erofs", `--extract=${dir}`, image]);
      break;
  }
  return dir;
}

/** Each format's superblock magic, read from the image's bytes. */
function magicOk(fstype: RootFsType, b: Buffer): boolean {
  switch (fstype) {
    case "squashfs":
      return b.subarray(0, 4).toString("latin1") === "hsqs";
    case "ext4":
      return b.readUInt16LE(1024 + 0x38) === 0xef53;
    case "iso9660":
      return b.subarray(32769, 32774).toString("latin1") === "CD001";
    case "erofs":
      return b.readUInt32LE(1024) === 0xe0f5e1e2;
  }
}

function checkTree(dir: string, label: string, sha256OfBig: string, bigBytes: number, sticky = true) {
  const init = join(dir, "sbin/init");
  const st = lstatSync(init);
  expect(st.isFile()).toBe(true);
  expect(st.mode & 0o7777).toBe(0o755);
  expect(st.uid).toBe(0);
  expect(readFileSync(init, "utf8")).toBe(initScript(label));
  // The script must at least parse with the shell that will run it.
  run(["/bin/busybox", "sh", "-n", init]);

  const bb = join(dir, "bin/busybox");
  expect(lstatSync(bb).mode & 0o111).not.toBe(0);
  expect(sha256Hex(readFileSync(bb))).toBe(sha256Hex(readFileSync("/bin/busybox")));
  // Every applet the init script calls resolves to busybox.
  for (const a of ["bin/sh", "bin/mount", "bin/grep", "usr/bin/awk", "bin/cat", "bin/mkdir", "usr/bin/sha256sum", "usr/bin/cut",
    "bin/stat", "bin/readlink", "bin/sync", "sbin/poweroff"]) {
    const l = lstatSync(join(dir, a));
    expect(l.isSymbolicLink(), a).toBe(true);
    expect(readlinkSync(join(dir, a))).toBe("/bin/busybox");
  }
  for (const d of ["proc", "sys", "dev", "root", "tmp"]) expect(lstatSync(join(dir, d)).isDirectory(), d).toBe(true);
  if (sticky) expect(lstatSync(join(dir, "tmp")).mode & 0o7777).toBe(0o1777);

  const big = readFileSync(join(dir, BIG_PATH.slice(1)));
  expect(big.length).toBe(bigBytes);
  expect(sha256Hex(big)).toBe(sha256OfBig);
}

describe("busybox roots", () => {
  for (const fstype of ROOT_FSTYPES) {
    test(`${fstype}: the image's own tools read back init, applets and the data file`, () => {
      const r = buildBusyboxRoot({ fstype });
      expect(r.bigPath).toBe(BIG_PATH);
      expect(r.label).toBe(fstype);
      expect(magicOk(fstype, readFileSync(r.image))).toBe(true);
      // debugfs rdump drops the sticky bit: ext4's modes are read with debugfs stat below instead.
      checkTree(extract(fstype, r.image, `bb-${fstype}`), fstype, r.sha256OfBig, r.bigBytes, fstype !== "ext4");
      // A second call is served from the cache: same file, same digest.
      const again = buildBusyboxRoot({ fstype });
      expect(again.cached).toBe(true);
      expect(again.image).toBe(r.image);
      expect(again.sha256OfBig).toBe(r.sha256OfBig);
    }, 60_000);
  }

  test("ext4 passes e2fsck; squashfs is zstd; erofs passes fsck.erofs", () => {
    const ext4 = buildBusyboxRoot({ fstype: "ext4" }).image;
    run(["e2fsck", "-f", "-n", ext4]);
    const mode = (p: string) => run(["debugfs", "-R", `stat ${p}`, ext4]).match(/Mode:\s+(\d+)/)?.[1];
    expect(mode("/tmp")).toBe("01777");
    expect(mode("/sbin/init")).toBe("0755");
    expect(mode("/root")).toBe("0700");
    expect(run(["unsquashfs", "-s", buildBusyboxRoot({ fstype: "squashfs" }).image])).toContain("Compression zstd");
    run(["fsck.erofs", buildBusyboxRoot({ fstype: "erofs" }).image]);
  }, 60_000);

  test("each image carries its own data; a different size is a different cached image", () => {
    const a = buildBusyboxRoot({ fstype: "squashfs" });
    const b = buildBusyboxRoot({ fstype: "ext4" });
    expect(a.sha256OfBig).not.toBe(b.sha256OfBig);
    const small = buildBusyboxRoot({ fstype: "squashfs", bigMiB: 1 });
    expect(small.image).not.toBe(a.image);
    expect(small.bigBytes).toBe(1 << 20);
    checkTree(extract("squashfs", small.image, "bb-small"), "squashfs", small.sha256OfBig, small.bigBytes);
  }, 60_000);

  test("pseudoRandom is deterministic and seed-dependent", () => {
    expect(sha256Hex(pseudoRandom(4096, "x"))).toBe(sha256Hex(pseudoRandom(4096, "x")));
    expect(sha256Hex(pseudoRandom(4096, "x"))).not.toBe(sha256Hex(pseudoRandom(4096, "y")));
    expect(pseudoRandom(100, "x").length).toBe(100);
  });
});

describe("KNOPPIX-style roots (inetboot.rootpath=)", () => {
  for (const outer of ["ext4", "iso9660"] as const) {
    test(`${outer} outer image holds ${KNOPPIX_PATH} = the squashfs root`, () => {
      const r = buildKnoppixRoot({ outer });
      expect(r.rootpath).toBe(KNOPPIX_PATH);
      expect(magicOk(outer, readFileSync(r.image))).toBe(true);
      const dir = extract(outer, r.image, `kn-${outer}`);
      const inner = readFileSync(join(dir, KNOPPIX_PATH.slice(1)));
      expect(inner.subarray(0, 4).toString("latin1")).toBe("hsqs");
      expect(sha256Hex(inner)).toBe(sha256Hex(readFileSync(r.inner)));
      checkTree(extract("squashfs", r.inner, `kn-${outer}-inner`), `squashfs-in-${outer}`, r.sha256OfBig, r.bigBytes);
    }, 60_000);
  }
});

describe("direct-boot initramfs module order", () => {
  test("dependencies load before the module that needs them", () => {
    const dep = [
      "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
      "kernel/lib/crc16.ko:",
      "kernel/fs/mbcache.ko:",
      "kernel/fs/jbd2/jbd2.ko:",
      "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio_ring.ko:",
    ].join("\n");
    const order = moduleLoadOrder(dep, ["virtio_blk", "ext4"]);
    const at = (m: string) => order.findIndex((p) => p.endsWith(`/${m}.ko`));
    expect(order.length).toBe(7);
    expect(at("virtio_ring")).toBeLessThan(at("virtio"));
    expect(at("virtio")).toBeLessThan(at("virtio_blk"));
    for (const d of ["crc16", "mbcache", "jbd2"]) expect(at(d)).toBeLessThan(at("ext4"));
    expect(() => moduleLoadOrder(dep, ["nosuch"])).toThrow("nosuch");
  });
});
