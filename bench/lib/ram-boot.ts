// The "download everything first" way to boot a live image (dracut's livenet, live-boot's fetch=):
// a busybox initramfs that brings up the NIC with QEMU user networking's fixed addresses, wgets the
// whole squashfs into RAM (tmpfs), loop-mounts it read-only, lays a tmpfs overlay on top and
// switch_roots to /sbin/init. The same final shape as the agent's NBD root and direct-boot.ts.
import { join } from "node:path";
import { buildBusyboxInitrd } from "../../test/lib/direct-boot.ts";
import { BUILD, Guest } from "../../test/lib/qemu.ts";

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
  return buildBusyboxInitrd({
    name: "ram-initrd", dir: join(BUILD, "bench"), want: WANT, init: INIT,
    applets: ["sh", "mount", "insmod", "sleep", "mkdir", "cat", "cut", "echo", "poweroff", "switch_root", "ip", "wget", "stat"],
  });
}

/** QEMU with user networking whose initramfs downloads `url` (as the guest sees it) into RAM and boots it. */
export function ramGuest(o: { url: string; memMB?: number; echo?: boolean }): Guest {
  return new Guest({ initrd: buildRamInitrd(), append: `ram.url=${o.url}`, memMB: o.memMB, echo: o.echo });
}
