// The "download everything first" way to boot a live image (dracut's livenet, live-boot's fetch=):
// a busybox initramfs that brings up the NIC with QEMU user networking's fixed addresses, wgets the
// whole squashfs into RAM (tmpfs), loop-mounts it read-only, lays a tmpfs overlay on top and
// switch_roots to /sbin/init. The same final shape as the agent's NBD root and direct-boot.ts.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { moduleLoadOrder } from "../../test/lib/direct-boot.ts";
import { BUILD, Guest } from "../../test/lib/qemu.ts";
import { run, sha256Hex } from "../../test/lib/sh.ts";

const KDIR = join(BUILD, "kernel");
const WANT = ["virtio_pci", "virtio_net", "squashfs", "overlay", "loop"];

// QEMU user networking: the guest is 10.0.2.15/24, the host (gateway) 10.0.2.2; no DHCP needed.
const INIT = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
fail() { echo "RAM-INIT-FAIL $*"; sleep 1; poweroff -f; }
for m in $(cat /modules.list); do insmod /modules/$m || echo "ram-init: insmod $m failed"; done
url=
for a in $(cat /proc/cmdline); do case $a in ram.url=*) url=\${a#*=};; esac; done
[ -n "$url" ] || fail "no ram.url= on the command line"
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up; ip link set eth0 up || fail "no eth0"
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
mkdir -p /ram /lower /newroot
mount -t tmpfs -o mode=0755 tmpfs /ram && mkdir /ram/upper /ram/work || fail tmpfs
echo "ram-init: fetching $url at $(cut -d' ' -f1 /proc/uptime)"
wget -q -O /ram/root.squashfs "$url" || fail "wget $url"
echo "RAM-INIT-FETCHED bytes=$(stat -c %s /ram/root.squashfs) uptime=$(cut -d' ' -f1 /proc/uptime)"
mount -o ro,loop -t squashfs /ram/root.squashfs /lower || fail "loop-mount the squashfs"
mount -t overlay -o "lowerdir=/lower,upperdir=/ram/upper,workdir=/ram/work" overlay /newroot || fail overlay
for d in dev proc sys; do mkdir -p /newroot/$d; mount --move /$d /newroot/$d; done
exec switch_root /newroot /sbin/init
`;

/** Builds (cached) build/bench/ram-initrd-<key>.cpio. */
export function buildRamInitrd(): string {
  const ver = readdirSync(join(KDIR, "lib/modules"))[0];
  if (!ver) throw new Error(`no modules under ${KDIR}/lib/modules: run 'make kernel'`);
  const modDir = join(KDIR, "lib/modules", ver);
  const order = moduleLoadOrder(readFileSync(join(modDir, "modules.dep"), "utf8"), WANT);
  const key = sha256Hex(JSON.stringify({ v: 1, ver, order, INIT, bb: sha256Hex(readFileSync("/bin/busybox")) })).slice(0, 16);
  const out = join(BUILD, "bench", `ram-initrd-${key}.cpio`);
  if (existsSync(out)) return out;
  const stage = `${out}.d`;
  rmSync(stage, { recursive: true, force: true });
  for (const d of ["bin", "proc", "sys", "dev", "modules"]) mkdirSync(join(stage, d), { recursive: true });
  writeFileSync(join(stage, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  for (const a of ["sh", "mount", "insmod", "sleep", "mkdir", "cat", "cut", "echo", "poweroff", "switch_root", "ip", "wget", "stat"])
    symlinkSync("busybox", join(stage, "bin", a));
  const names: string[] = [];
  for (const rel of order) {
    const name = rel.replace(/^.*\//, "");
    writeFileSync(join(stage, "modules", name), readFileSync(join(modDir, rel)));
    names.push(name);
  }
  writeFileSync(join(stage, "modules.list"), names.join("\n") + "\n");
  writeFileSync(join(stage, "init"), INIT, { mode: 0o755 });
  const list = run(["find", ".", "-mindepth", "1"], { cwd: stage });
  run(["sh", "-c", `cpio -o -H newc --quiet -R 0:0 > '${out}.tmp' && mv '${out}.tmp' '${out}'`], { cwd: stage, stdin: list });
  rmSync(stage, { recursive: true, force: true });
  return out;
}

/** QEMU with user networking whose initramfs downloads `url` (as the guest sees it) into RAM and boots it. */
export function ramGuest(o: { url: string; memMB?: number; echo?: boolean }): Guest {
  return new Guest({ initrd: buildRamInitrd(), append: `ram.url=${o.url}`, memMB: o.memMB, echo: o.echo });
}
