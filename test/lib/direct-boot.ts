// Boots a root image WITHOUT inetboot, as a reference: Debian's kernel, a tiny busybox initramfs that
// loads virtio + filesystem modules, mounts the image from a local virtio disk read-only (optionally
// loop-mounting a path inside it, like inetboot.rootpath=), puts a tmpfs overlay on top, moves
// /dev /proc /sys in and switch_roots to /sbin/init: the same shape the agent builds over NBD.
// It checks the images themselves (can Debian's kernel mount them, does their init run).
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD, Guest, KERNEL_DIR as KDIR, kernelVersion, type BootOptions } from "./qemu.ts";
import { run, sha256Hex } from "./sh.ts";

/** Modules the reference initramfs loads, in this order after their dependencies. */
const WANT = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "squashfs", "isofs", "erofs", "overlay", "loop"];

const INIT = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
fail() { echo "DIRECT-INIT-FAIL $*"; sleep 1; poweroff -f; }
for m in $(cat /modules.list); do insmod /modules/$m || echo "direct-init: insmod $m failed"; done
fstype=; rootpath=
for a in $(cat /proc/cmdline); do
  case $a in direct.fstype=*) fstype=\${a#*=};; direct.rootpath=*) rootpath=\${a#*=};; esac
done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /lower /inner /rw /newroot
mount -o ro -t "$fstype" /dev/vda /lower || fail "mount /dev/vda ($fstype)"
low=/lower
if [ -n "$rootpath" ]; then
  mount -o ro,loop -t squashfs "/lower$rootpath" /inner || fail "loop-mount $rootpath"; low=/inner
fi
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work || fail tmpfs
mount -t overlay -o "lowerdir=$low,upperdir=/rw/upper,workdir=/rw/work" overlay /newroot || fail overlay
for d in dev proc sys; do mkdir -p /newroot/$d; mount --move /$d /newroot/$d; done
echo "direct-init: switch_root into $fstype\${rootpath:+ $rootpath}"
exec switch_root /newroot /sbin/init
`;

/** Module files (relative to lib/modules/VER) in load order, dependencies first. */
export function moduleLoadOrder(modulesDep: string, want: string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split("\n")) {
    const m = line.match(/^([^:]+):\s*(.*)$/);
    if (!m) continue;
    deps.set(m[1]!, m[2]!.split(/\s+/).filter(Boolean));
    byName.set(m[1]!.replace(/^.*\//, "").replace(/\.ko(\.[a-z]+)?$/, "").replace(/-/g, "_"), m[1]!);
  }
  const out: string[] = [];
  const visit = (p: string) => {
    if (out.includes(p)) return;
    // modules.dep lists the whole closure; the last entries are the deepest, so load them first.
    for (const d of [...(deps.get(p) ?? [])].reverse()) visit(d);
    if (!out.includes(p)) out.push(p);
  };
  for (const w of want) {
    const p = byName.get(w);
    if (!p) throw new Error(`module ${w} not in modules.dep`);
    visit(p);
  }
  return out;
}

/**
 * A small busybox initramfs (cached by its inputs): the applets named, the kernel modules `want`
 * with their dependencies (loaded by `init` from /modules.list in order), and the `init` script.
 */
export function buildBusyboxInitrd(o: { name: string; dir: string; want: string[]; applets: string[]; init: string }): string {
  const ver = kernelVersion();
  const modDir = join(KDIR, "lib/modules", ver);
  const order = moduleLoadOrder(readFileSync(join(modDir, "modules.dep"), "utf8"), o.want);
  const key = sha256Hex(JSON.stringify({ v: 1, ver, order, init: o.init, applets: o.applets, bb: sha256Hex(readFileSync("/bin/busybox")) })).slice(0, 16);
  const out = join(o.dir, `${o.name}-${key}.cpio`);
  if (existsSync(out)) return out;
  mkdirSync(o.dir, { recursive: true });
  const stage = `${out}.d`;
  rmSync(stage, { recursive: true, force: true });
  for (const d of ["bin", "proc", "sys", "dev", "modules"]) mkdirSync(join(stage, d), { recursive: true });
  writeFileSync(join(stage, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  for (const a of o.applets) symlinkSync("busybox", join(stage, "bin", a));
  const names: string[] = [];
  for (const rel of order) {
    const name = rel.replace(/^.*\//, "");
    writeFileSync(join(stage, "modules", name), readFileSync(join(modDir, rel)));
    names.push(name);
  }
  writeFileSync(join(stage, "modules.list"), names.join("\n") + "\n");
  writeFileSync(join(stage, "init"), o.init, { mode: 0o755 });
  const list = run(["find", ".", "-mindepth", "1"], { cwd: stage });
  run(["sh", "-c", `cpio -o -H newc --quiet -R 0:0 > '${out}.tmp' && mv '${out}.tmp' '${out}'`], { cwd: stage, stdin: list });
  rmSync(stage, { recursive: true, force: true });
  return out;
}

/** Builds (cached) build/roots/direct-initrd-<key>.cpio. */
export function buildDirectInitrd(): string {
  return buildBusyboxInitrd({
    name: "direct-initrd", dir: join(BUILD, "roots"), want: WANT, init: INIT,
    applets: ["sh", "mount", "insmod", "sleep", "mkdir", "cat", "echo", "poweroff", "switch_root"],
  });
}

export interface DirectBootOptions {
  image: string;
  fstype: string;
  /** A path inside the image to loop-mount as the root (squashfs). */
  rootpath?: string;
  append?: string;
  memMB?: number;
  echo?: boolean;
  cpus?: number;
  /** more QEMU arguments */
  extra?: string[];
}

/** Starts QEMU on the image as a read-only virtio disk; no network. */
export function directGuest(o: DirectBootOptions): Guest {
  const opts: BootOptions = {
    initrd: buildDirectInitrd(),
    append: [`direct.fstype=${o.fstype}`, o.rootpath ? `direct.rootpath=${o.rootpath}` : "", o.append ?? ""].join(" ").trim(),
    memMB: o.memMB,
    cpus: o.cpus,
    echo: o.echo,
    net: ["-nic", "none"],
    extra: ["-drive", `file=${o.image},format=raw,if=virtio,readonly=on`, ...(o.extra ?? [])],
  };
  return new Guest(opts);
}
