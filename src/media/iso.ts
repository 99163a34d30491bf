// `inetboot iso`: a hybrid GRUB 2 ISO (El Torito BIOS + UEFI, also bootable when dd'ed to a stick)
// holding the kernel, our initramfs and a menu like the seed's CD. grub-mkrescue does the layout;
// we stage /boot/{vmlinuz,initramfs.cpio.zst,grub/grub.cfg} and check every input first.
import { existsSync, mkdtempSync, realpathSync, rmSync, statSync } from "node:fs";
import { copyFile, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../sys/errors.ts";
import { buildGrubConfig, INITRD_PATH, KERNEL_PATH, type GrubMenu } from "./grub-config.ts";
import { onInterrupt } from "../sys/interrupt.ts";
import { needTool, runTool, tempBeside } from "./tools.ts";

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
  const out = outputPath(opts.out);

  // All temporaries in one dir: our stage, and grub-mkrescue's own (its TMPDIR), which it leaves
  // in /tmp when it is killed. The ISO is written beside OUT and renamed over it only when whole.
  const work = mkdtempSync(join(tmpdir(), "inetboot-iso-"));
  const stage = join(work, "root");
  const part = tempBeside(out);
  const forget = onInterrupt(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(part, { force: true });
  });
  try {
    await mkdir(join(stage, "boot/grub"), { recursive: true });
    await mkdir(join(work, "tmp"));
    await copyFile(kernel, join(stage, KERNEL_PATH));
    await copyFile(initrd, join(stage, INITRD_PATH));
    await writeFile(join(stage, "boot/grub/grub.cfg"), grubCfg);
    log(`grub-mkrescue → ${out}`);
    // grub-mkrescue adds every platform installed under /usr/lib/grub; both were checked above so
    // a host lacking one fails instead of making a BIOS-only or UEFI-only ISO.
    await runTool(
      [
        mkrescue,
        "-o", part,
        "--product-name=inetboot",
        "--locales=", // no translations: smaller image
        "--themes=",
        stage,
        "--",
        "-volid", VOLUME_LABEL,
      ],
      { env: { TMPDIR: join(work, "tmp") } },
    );
    const st = await stat(part).catch(() => null);
    if (!st || st.size === 0) throw new UserError(`grub-mkrescue wrote no ${out}`);
    await rename(part, out);
    return { path: out, bytes: st.size, grubCfg };
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  } finally {
    forget();
    await rm(work, { recursive: true, force: true });
  }
}

/** `--out` resolved: its directory exists, and it is a new or regular file (through a symlink, the
 *  file it names), so the rename that finishes the build replaces no directory or device. */
export function outputPath(path: string, hint = "write the ISO to a file, then dd it"): string {
  const out = resolve(path);
  if (!existsSync(dirname(out))) throw new UserError(`output directory ${dirname(out)} does not exist`);
  if (!existsSync(out)) return out;
  if (!statSync(out).isFile()) throw new UserError(`--out ${path}: exists and is not a regular file (${hint})`);
  return realpathSync(out);
}
