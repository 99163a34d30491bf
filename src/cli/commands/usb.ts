// `inetboot usb`: a GPT boot stick (image file or real device): UEFI + BIOS GRUB, kernel, initramfs,
// menu and an empty inetboot-cache/ folder on a FAT32 partition.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { collectRepeated } from "../options.ts";
import { menuArgs } from "./iso.ts";

export default defineCommand({
  meta: { name: "usb", description: "Build a bootable USB stick image (or write a stick): GPT, FAT32 with GRUB, kernel, initramfs, inetboot-cache/" },
  args: {
    out: { type: "string", description: "image file to write (then dd it to a stick)" },
    size: { type: "string", description: "image size (default 1G)" },
    device: { type: "string", description: "write a whole stick directly, e.g. /dev/sdb (erases it)" },
    "yes-really-overwrite": { type: "boolean", description: "required with --device" },
    ...menuArgs,
  },
  async run(ctx) {
    await guarded(async (a: typeof ctx.args) => {
      const { runUsb } = await import("../../media/cli.ts");
      await runUsb({ ...a, yesReallyOverwrite: a["yes-really-overwrite"], entries: collectRepeated(ctx.rawArgs, "entry") });
    })({ args: ctx.args });
  },
});
