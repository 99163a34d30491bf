// Tiny root filesystems for the boot tests, built on the host (as root, no QEMU): Debian's static
// busybox, its applet links, a /sbin/init script that proves what the boot agent promised, and a
// file of pseudo-random data whose SHA-256 the test knows. The guest prints:
//   INETBOOT-ROOT-MARKER fstype=<image fs> root=<fs of / as mounted> pid=<pid>
//   OVERLAY-OK            (a file written to / reads back: the read-only store has a writable overlay)
//   BIG-SHA256 <hex>      (sha256 of /data/big.bin read through the whole block path)
//   NBD-DAEMON nice=<n> BUN_JSC_useDFGJIT=<0|1>
//                         (for each @inetboot-nbd process: it outlived switch_root, its priority
//                         and its JIT setting, from /proc)
//   ROOT-DONE             and then it powers off (only when it is PID 1).
// Images are cached under build/roots/ named by a hash of everything that goes into them.
import { createCipheriv, createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUILD } from "./qemu.ts";
import { need, run, sha256Hex } from "./sh.ts";

export type RootFsType = "squashfs" | "ext4" | "iso9660" | "erofs";
export const ROOT_FSTYPES: RootFsType[] = ["squashfs", "ext4", "iso9660", "erofs"];
export const ROOTS_DIR = join(BUILD, "roots");
export const BUSYBOX = "/bin/busybox";
/** Path of the random data file inside every busybox root. */
export const BIG_PATH = "/data/big.bin";
/** Where the inner root sits inside a KNOPPIX-style outer image (the seed's /cdrom/KNOPPIX/KNOPPIX). */
export const KNOPPIX_PATH = "/KNOPPIX/KNOPPIX";

const EXT: Record<RootFsType, string> = { squashfs: "squashfs", ext4: "ext4", iso9660: "iso", erofs: "erofs" };
// Fixed identity and time so the same inputs give the same bytes (or close: ext4/iso keep a few stamps).
const FIXED_TIME = 1700000000;
const FIXED_UUID = "1b7e6c9a-5f0d-4c3e-9a52-1e7d0b0f1e55";

export interface BusyboxRoot {
  /** The image file. */
  image: string;
  fstype: RootFsType;
  /** sha256 (hex) of BIG_PATH's content, which the guest prints as `BIG-SHA256 <hex>`. */
  sha256OfBig: string;
  /** Path of the data file inside the root (BIG_PATH). */
  bigPath: string;
  bigBytes: number;
  /** The label the guest prints in `INETBOOT-ROOT-MARKER fstype=<label>`. */
  label: string;
  /** True when the image came from the cache. */
  cached: boolean;
}

export interface BusyboxRootOptions {
  fstype: RootFsType;
  /** Default build/roots. */
  outDir?: string;
  /** Size of /data/big.bin in MiB (default 8). */
  bigMiB?: number;
  /** Printed as fstype= (defaults to fstype). */
  label?: string;
}

/** The root's /sbin/init. `label` is baked in: after the agent's overlay, / itself reads "overlay". */
export function initScript(label: string): string {
  return `#!/bin/sh
# inetboot test root: says it booted, proves / is writable and the data file is intact, powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sysfs /sys
mounted /dev || mount -t devtmpfs devtmpfs /dev
# PID 1's stdout is usually the console already (compare device numbers: the node it was opened
# through may be gone after switch_root); print once there, else to both.
if [ "$(stat -L -c %t:%T /proc/$$/fd/1 2>/dev/null)" = "$(stat -L -c %t:%T /dev/console)" ]; then say() { echo "$*"; }
else say() { echo "$*"; echo "$*" > /dev/console; }; fi
rootfs=$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)
say "INETBOOT-ROOT-MARKER fstype=${label} root=$rootfs pid=$$"
want="written-$(cat /proc/sys/kernel/random/uuid)"
mkdir -p /root
if echo "$want" > /root/written.txt && [ "$(cat /root/written.txt)" = "$want" ]; then say OVERLAY-OK
else say "OVERLAY-FAIL"; fi
# test.idle on the kernel command line: read nothing more, wait for a line on the console, power
# off (what the cache fill does while a booted system sits idle: usb-cache.test.ts).
case " $(cat /proc/cmdline) " in *" test.idle "*)
  say ROOT-IDLE
  read -r _ < /dev/console
  say ROOT-DONE
  sync; exec busybox poweroff -f;;
esac
say "BIG-SHA256 $(sha256sum ${BIG_PATH} | cut -d' ' -f1)"
for p in /proc/[0-9]*; do
  case "$(tr '\\000' ' ' < $p/cmdline 2>/dev/null)" in "@inetboot-nbd"*)
    say "NBD-DAEMON nice=$(cut -d' ' -f19 $p/stat) $(tr '\\000' '\\n' < $p/environ | grep '^BUN_JSC_useDFGJIT=')"
    # what the booted system can still reach of the initramfs the daemon runs in
    if [ -e $p/root/etc/inetboot/netrc ]; then say "NBD-DAEMON-NETRC present"; else say "NBD-DAEMON-NETRC absent"; fi;;
  esac
done
# test.hold: all read and checked, wait for a line before powering off (so a test can wait for
# the NBD daemon's background work to settle first: usb-cache.test.ts).
case " $(cat /proc/cmdline) " in *" test.hold "*) say ROOT-HOLD; read -r _ < /dev/console;; esac
say ROOT-DONE
if [ $$ = 1 ]; then sync; exec busybox poweroff -f; fi
`;
}

/** Deterministic pseudo-random bytes: AES-256-CTR of zeros under a key derived from `seed`. */
export function pseudoRandom(bytes: number, seed: string): Uint8Array {
  const key = createHash("sha256").update(seed).digest();
  const c = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  return new Uint8Array(Buffer.concat([c.update(Buffer.alloc(bytes)), c.final()]));
}

function busyboxApplets(): string[] {
  // `--list-full` names each applet with its directory (bin/sh, sbin/poweroff, usr/bin/sha256sum).
  return run([BUSYBOX, "--list-full"]).split("\n").map((s) => s.trim()).filter(Boolean);
}

/** Lays out the root tree in `dir` (which must not exist). Returns the data file's digest. */
export function stageBusyboxRoot(dir: string, label: string, bigMiB: number): { sha256OfBig: string; bigBytes: number } {
  mkdirSync(dir, { recursive: true });
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "mnt", "data"])
    mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  run(["chmod", "1777", join(dir, "tmp")]);
  run(["chmod", "0700", join(dir, "root")]);
  writeFileSync(join(dir, "bin/busybox"), readFileSync(BUSYBOX), { mode: 0o755 });
  for (const a of busyboxApplets()) {
    if (a === "bin/busybox" || a === "sbin/init" || a === "linuxrc") continue;
    const p = join(dir, a);
    if (!existsSync(p)) symlinkSync("/bin/busybox", p);
  }
  writeFileSync(join(dir, "sbin/init"), initScript(label), { mode: 0o755 });
  writeFileSync(join(dir, "etc/inetboot-root"), `${label}\n`, { mode: 0o644 });
  writeFileSync(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n", { mode: 0o644 });
  writeFileSync(join(dir, "etc/group"), "root:x:0:\n", { mode: 0o644 });
  // Different data per image, so a store holding several images cannot pass by reading a neighbour.
  const big = pseudoRandom(bigMiB << 20, `inetboot-big-${label}-${bigMiB}`);
  writeFileSync(join(dir, BIG_PATH.slice(1)), big, { mode: 0o644 });
  return { sha256OfBig: sha256Hex(big), bigBytes: big.length };
}

function duBytes(dir: string): number {
  return Number(run(["du", "-sb", dir]).split(/\s/)[0]);
}

/** Makes `image` of type `fstype` from the staged tree `dir`. */
export function makeImage(fstype: RootFsType, dir: string, image: string): void {
  rmSync(image, { force: true });
  switch (fstype) {
    case "squashfs":
      need("mksquashfs", "squashfs-tools");
      run(["mksquashfs", dir, image, "-comp", "zstd", "-noappend", "-no-xattrs", "-all-root",
        "-mkfs-time", String(FIXED_TIME), "-all-time", String(FIXED_TIME), "-quiet"]);
      return;
    case "ext4": {
      need("mkfs.ext4", "e2fsprogs");
      // Room for metadata (inode tables, journal) on top of the files; -d copies the tree, no mount needed.
      const mib = Math.ceil((duBytes(dir) * 1.3) / 1048576) + 16;
      run(["mkfs.ext4", "-q", "-F", "-d", dir, "-L", "inetboot-root", "-U", FIXED_UUID, "-E", `root_owner=0:0,hash_seed=${FIXED_UUID}`,
        "-N", "2048", image, `${mib}M`], { env: { E2FSPROGS_FAKE_TIME: String(FIXED_TIME) } });
      return;
    }
    case "iso9660":
      need("xorriso", "xorriso");
      // -R (not -r): Rock Ridge with the tree's real modes and owners, symlinks kept; the kernel's
      // isofs honours both, so an ISO works as a root (read-only, like the others).
      run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "INETBOOT_ROOT", "-o", image, dir], {
        env: { SOURCE_DATE_EPOCH: String(FIXED_TIME) },
      });
      return;
    case "erofs":
      need("mkfs.erofs", "erofs-utils");
      // lz4hc: Debian's kernel has EROFS_FS_ZIP (lz4) but not LZMA.
      run(["mkfs.erofs", "--quiet", "-zlz4hc", "--all-root", "-T", String(FIXED_TIME), "-U", FIXED_UUID, image, dir]);
      return;
  }
}

function cacheKey(parts: unknown): string {
  return sha256Hex(JSON.stringify(parts)).slice(0, 16);
}

let busyboxDigest: string | undefined;
function busyboxHash(): string {
  return (busyboxDigest ??= sha256Hex(readFileSync(BUSYBOX)));
}

interface Meta {
  sha256OfBig: string;
  bigBytes: number;
  label: string;
}

/** Returns the cached image or builds it (tree → image.tmp → rename, then a .json sidecar). */
function cached(image: string, build: (tmp: string) => Meta): { meta: Meta; cached: boolean } {
  const side = `${image}.json`;
  if (existsSync(image) && existsSync(side)) return { meta: JSON.parse(readFileSync(side, "utf8")) as Meta, cached: true };
  mkdirSync(dirname(image), { recursive: true });
  const tmp = `${image}.tmp.${process.pid}`;
  try {
    const meta = build(tmp);
    renameSync(tmp, image);
    writeFileSync(side, JSON.stringify(meta, null, 2) + "\n");
    return { meta, cached: false };
  } finally {
    rmSync(tmp, { force: true });
  }
}

export function buildBusyboxRoot(opts: BusyboxRootOptions): BusyboxRoot {
  const { fstype } = opts;
  if (!ROOT_FSTYPES.includes(fstype)) throw new Error(`unknown root fstype ${fstype} (${ROOT_FSTYPES.join(", ")})`);
  const outDir = opts.outDir ?? ROOTS_DIR;
  const bigMiB = opts.bigMiB ?? 8;
  const label = opts.label ?? fstype;
  const key = cacheKey({ v: 4, fstype, bigMiB, label, init: initScript(label), busybox: busyboxHash() });
  const image = join(outDir, `busybox-${label}-${key}.${EXT[fstype]}`);
  const r = cached(image, (tmp) => {
    const stage = `${tmp}.d`;
    rmSync(stage, { recursive: true, force: true });
    try {
      const m = stageBusyboxRoot(stage, label, bigMiB);
      makeImage(fstype, stage, tmp);
      return { ...m, label };
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  });
  return { image, fstype, bigPath: BIG_PATH, ...r.meta, cached: r.cached };
}

export interface KnoppixRoot extends BusyboxRoot {
  /** Type of the outer image (what the store holds). */
  outer: "ext4" | "iso9660";
  /** Path of the inner squashfs inside the outer image: pass as inetboot.rootpath=. */
  rootpath: string;
  /** Filesystem of the inner image (the root itself); the outer one is `outer`/`fstype`. */
  innerFstype: "squashfs";
  /** The inner squashfs (also cached on its own). */
  inner: string;
}

/**
 * The seed's layout for `inetboot.rootpath=`: an outer ext4 or ISO holding /KNOPPIX/KNOPPIX, which is
 * the squashfs busybox root. The guest prints `fstype=squashfs-in-<outer>`.
 */
export function buildKnoppixRoot(opts: { outer: "ext4" | "iso9660"; outDir?: string; bigMiB?: number }): KnoppixRoot {
  const outDir = opts.outDir ?? ROOTS_DIR;
  const inner = buildBusyboxRoot({ fstype: "squashfs", outDir, bigMiB: opts.bigMiB, label: `squashfs-in-${opts.outer}` });
  const key = cacheKey({ v: 1, outer: opts.outer, inner: inner.image, big: inner.sha256OfBig });
  const image = join(outDir, `knoppix-${opts.outer}-${key}.${EXT[opts.outer]}`);
  const r = cached(image, (tmp) => {
    const stage = `${tmp}.d`;
    rmSync(stage, { recursive: true, force: true });
    try {
      mkdirSync(join(stage, dirname(KNOPPIX_PATH).slice(1)), { recursive: true });
      // A copy, not a link: mkfs.ext4 -d and xorriso would otherwise store a symlink.
      run(["cp", inner.image, join(stage, KNOPPIX_PATH.slice(1))]);
      writeFileSync(join(stage, "README.txt"), "inetboot test image: the root is KNOPPIX/KNOPPIX (squashfs)\n");
      makeImage(opts.outer, stage, tmp);
      return { sha256OfBig: inner.sha256OfBig, bigBytes: inner.bigBytes, label: inner.label };
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  });
  return {
    image,
    fstype: opts.outer,
    outer: opts.outer,
    rootpath: KNOPPIX_PATH,
    innerFstype: "squashfs",
    inner: inner.image,
    bigPath: BIG_PATH,
    ...r.meta,
    cached: r.cached,
  };
}

/** Size of a file in bytes (for reports). */
export function fileBytes(p: string): number {
  return statSync(p).size;
}
