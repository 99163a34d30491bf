// Warm boot: stage a verified kernel (and initrd) with kexec_file_load and reboot into it.
import { closeSync, openSync } from "node:fs";
import { kexecFileLoad, KEXEC_FILE_NO_INITRAMFS, reboot, REBOOT, sync } from "../sys/ffi.ts";

export function kexecLoad(kernel: string, initrd: string | null, cmdline: string) {
  const k = openSync(kernel, "r");
  const i = initrd ? openSync(initrd, "r") : -1;
  try {
    kexecFileLoad(k, i, cmdline, initrd ? 0 : KEXEC_FILE_NO_INITRAMFS);
  } finally {
    closeSync(k);
    if (i >= 0) closeSync(i);
  }
}

export function kexecReboot(): never {
  sync();
  reboot(REBOOT.KEXEC);
  throw new Error("reboot(KEXEC) returned");
}
