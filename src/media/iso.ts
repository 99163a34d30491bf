// `inetboot iso`: a hybrid GRUB 2 ISO (El Torito BIOS + UEFI, also bootable when dd'ed to a stick)
// holding the kernel, our initramfs and a menu like the seed's CD. grub-mkrescue does the layout;
// we stage /boot/{vmlinuz,initramfs.cpio.zst,grub/grub.cfg} and check every input first.
import { existsSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../sys/errors.ts";
import { buildGrubConfig, INITRD_PATH, KERNEL_PATH, type GrubMenu } from "./grub-config.ts";
import { needTool, runTool } from "./tools.ts";

export const DEFAULT_KERNEL = "build/kernel/vmlinuz";
export const DEFAULT_INITRD = "build/initramfs.cpio.zst";
export const GRUB_PLATFORMS = { bios: "/usr/lib/grub/i386-pc", uefi: "/usr/lib/grub/x86_64-efi" };
export const VOLUME_LABEL = "INETBOOT";

export interface IsoOptions extends GrubMenu {
  out: string;
  kernel?: string;
  initrd?: string;
  log?: (msg: string) => void;
}

export interface IsoResult {
  path: string;
  bytes: number;
  grubCfg: string;
}

/** A readable regular file (symlinks followed), or a UserError naming the option. */
export function requireFile(path: string, what: string): string {
  const p = resolve(path);
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new UserError(`${what} ${path} not found`);
  }
  if (!st.isFile()) throw new UserError(`${what} ${path} is not a file`);
  if (st.size === 0) throw new UserError(`${what} ${path} is empty`);
  return p;
}

/** Both GRUB platforms' module dirs, or a UserError naming the missing package. */
export function requireGrubPlatforms(): void {
  if (!existsSync(join(GRUB_PLATFORMS.bios, "boot.img"))) throw new UserError(`no GRUB BIOS modules in ${GRUB_PLATFORMS.bios}: apt-get install grub-pc-bin`);
  if (!existsSync(join(GRUB_PLATFORMS.uefi, "linux.mod"))) throw new UserError(`no GRUB UEFI modules in ${GRUB_PLATFORMS.uefi}: apt-get install grub-efi-amd64-bin`);
}

export async function buildIso(opts: IsoOptions): Promise<IsoResult> {
  const log = opts.log ?? (() => {});
  const kernel = requireFile(opts.kernel ?? DEFAULT_KERNEL, "kernel");
  const initrd = requireFile(opts.initrd ?? DEFAULT_INITRD, "initramfs");
  const grubCfg = buildGrubConfig(opts); // validates the menu before any slow work
  const mkrescue = needTool("grub-mkrescue", "grub-common");
  needTool("xorriso", "xorriso");
  needTool("mformat", "mtools"); // grub-mkrescue builds the EFI boot image with mtools
  requireGrubPlatforms();
  const out = resolve(opts.out);
  if (!existsSync(dirname(out))) throw new UserError(`output directory ${dirname(out)} does not exist`);

  const stage = await mkdtemp(join(tmpdir(), "inetboot-iso-"));
  try {
    await mkdir(join(stage, "boot/grub"), { recursive: true });
    await copyFile(kernel, join(stage, KERNEL_PATH));
    await copyFile(initrd, join(stage, INITRD_PATH));
    await writeFile(join(stage, "boot/grub/grub.cfg"), grubCfg);
    log(`grub-mkrescue → ${out}`);
    // grub-mkrescue adds every platform installed under /usr/lib/grub; both were checked above so
    // a host lacking one fails instead of making a BIOS-only or UEFI-only ISO.
    await runTool([
      mkrescue,
      "-o", out,
      "--product-name=inetboot",
      "--locales=", // no translations: smaller image
      "--themes=",
      stage,
      "--",
      "-volid", VOLUME_LABEL,
    ]);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  const st = await stat(out).catch(() => null);
  if (!st || st.size === 0) throw new UserError(`grub-mkrescue wrote no ${out}`);
  return { path: out, bytes: st.size, grubCfg };
}
