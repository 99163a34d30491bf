// `inetboot iso`: a hybrid BIOS/UEFI GRUB ISO with the kernel, our initramfs and a boot menu.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { collectRepeated } from "../options.ts";

export const menuArgs = {
  entry: { type: "string", description: "menu entry 'Title|kernel command line' (repeatable; a Rescue shell entry is always added last)" },
  append: { type: "string", description: "appended to every entry's command line (e.g. inetboot.log=json)" },
  default: { type: "string", description: "default entry, counting from 0 (default 0)" },
  timeout: { type: "string", description: "seconds before the default boots (default 5; -1 waits)" },
  serial: { type: "boolean", description: "GRUB's menu on the serial port too (COM1, 115200)" },
  kernel: { type: "string", description: "kernel image (default build/kernel/vmlinuz)" },
  initrd: { type: "string", description: "initramfs (default build/initramfs.cpio.zst)" },
} as const;

export default defineCommand({
  meta: { name: "iso", description: "Build a hybrid BIOS/UEFI GRUB ISO (grub-mkrescue) holding the kernel, the initramfs and a boot menu" },
  args: {
    out: { type: "string", description: "output ISO file", required: true },
    ...menuArgs,
  },
  async run(ctx) {
    await guarded(async (a: typeof ctx.args) => {
      const { runIso } = await import("../../media/cli.ts");
      await runIso({ ...a, entries: collectRepeated(ctx.rawArgs, "entry") });
    })({ args: ctx.args });
  },
});
