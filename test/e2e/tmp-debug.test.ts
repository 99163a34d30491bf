import { test } from "bun:test";
import { withGuest } from "../lib/qemu.ts";
const drop = 'for a do shift; if [ -n "$skip" ]; then skip=; continue; fi; case "$a" in -kernel|-initrd|-append) skip=1; continue;; esac; set -- "$@" "$a"; done; exec "$@"';
test("dbg", async () => {
  await withGuest({ wrap: ["/bin/sh", "-c", drop, "sh"], extra: ["-device", "qemu-xhci", "-drive", "if=none,id=stick,format=raw,file=/tmp/t.img", "-device", "usb-storage,drive=stick,bootindex=0"] }, async (g) => {
    await g.waitEvent("shell.ready", 200000);
    await g.waitText(/inetboot# $/m);
    console.log(await g.shell("lsmod"));
    console.log(await g.shell("sh -c 'ls /sys/bus/scsi/devices; cat /sys/bus/scsi/devices/*/modalias; ls /sys/bus/usb/devices'"));
    console.log(await g.shell("modprobe sd_mod"));
    console.log(await g.shell("sh -c 'sleep 2; ls /dev/sd*'"));
  });
}, 300000);
