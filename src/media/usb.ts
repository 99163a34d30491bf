// `inetboot usb`: a GPT disk image (or a real stick) that boots with UEFI and BIOS into our
// initramfs and keeps the block cache. Built without loop devices or mounts, so it works as any
// user on a plain file:
//
//   LBA 0            protective MBR, its code area = GRUB boot.img (BIOS)
//   LBA 1..33        GPT header + entries            (backup copy in the last 33 sectors)
//   1 MiB .. 2 MiB   partition 2, BIOS boot: GRUB core.img (BIOS, found via boot.img)
//   2 MiB .. end     partition 1, EFI system partition, FAT32 "INETBOOT" (filled with mtools):
//                      EFI/BOOT/BOOTX64.EFI       GRUB for UEFI (grub-mkimage x86_64-efi)
//                      boot/vmlinuz, boot/initramfs.cpio.zst
//                      boot/grub/grub.cfg, boot/grub/{i386-pc,x86_64-efi}/ (GRUB modules)
//                      inetboot-cache/            the persistent block cache (starts empty)
//
// Both GRUBs carry an embedded config that finds the FAT by its volume serial and loads
// boot/grub/grub.cfg from it, so the stick boots from any slot or drive number.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { open, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { UserError } from "../sys/errors.ts";
import { patchBootImg, patchCoreImg } from "./bios-boot.ts";
import { encodeGpt, GPT_TYPE, randomGuid, SECTOR, type DiskWrite, type GptLayout } from "./gpt.ts";
import { buildGrubConfig, INITRD_PATH, KERNEL_PATH, type GrubMenu } from "./grub-config.ts";
import { DEFAULT_INITRD, DEFAULT_KERNEL, GRUB_PLATFORMS, outputPath, requireFile, requireGrubPlatforms, VOLUME_LABEL } from "./iso.ts";
import { onInterrupt } from "../sys/interrupt.ts";
import { needTool, runTool, tempBeside } from "./tools.ts";

export const CACHE_FOLDER = "inetboot-cache";
export const DEFAULT_SIZE = 1 << 30;
const MIB = 1 << 20;
const BIOS_BOOT_LBA = MIB / SECTOR; // 2048
const ESP_LBA = (2 * MIB) / SECTOR; // 4096
/** GRUB, grub.cfg, FAT overhead and a little room for the cache on the smallest stick we accept */
const SLACK = 24 * MIB;

/** Modules built into both GRUB images: enough to find the FAT and run grub.cfg with no disk reads. */
const CORE_MODULES = ["part_gpt", "fat", "search", "search_fs_uuid", "normal", "configfile", "linux", "echo", "serial", "terminal", "test", "boot"];

export interface UsbOptions extends GrubMenu {
  /** image file to create (replaced if it exists, only by a complete image) */
  out?: string;
  /** a whole-disk block device, overwritten */
  device?: string;
  yesReallyOverwrite?: boolean;
  /** image size in bytes (ignored for a device: its own size) */
  size?: number;
  kernel?: string;
  initrd?: string;
  log?: (msg: string) => void;
}

export interface UsbResult {
  path: string;
  bytes: number;
  layout: GptLayout;
  /** byte offset of the FAT32 partition (for `mtools -i IMG@@OFFSET`) */
  espOffset: number;
  /** FAT volume serial as GRUB and blkid print it (XXXX-XXXX) */
  fatUuid: string;
  grubCfg: string;
}

/** The partition layout for a disk of `bytes` bytes. */
export function usbLayout(bytes: number): GptLayout {
  const sectors = Math.floor(bytes / SECTOR);
  const lastUsable = sectors - 34;
  const espLast = Math.floor((lastUsable + 1) / 2048) * 2048 - 1; // end on a 1 MiB boundary
  if (espLast <= ESP_LBA) throw new UserError(`a disk of ${bytes} bytes is too small`);
  return {
    diskGuid: randomGuid(),
    sectors,
    partitions: [
      { type: GPT_TYPE.esp, guid: randomGuid(), firstLba: ESP_LBA, lastLba: espLast, name: "INETBOOT" },
      { type: GPT_TYPE.biosBoot, guid: randomGuid(), firstLba: BIOS_BOOT_LBA, lastLba: ESP_LBA - 1, name: "BIOS boot" },
    ],
  };
}

/** Refuses anything but an unmounted whole-disk block device; returns its size in bytes. */
export function checkDevice(device: string, yes: boolean | undefined, mounts = readText("/proc/mounts") + readText("/proc/swaps")): number {
  if (!yes) throw new UserError(`refusing to overwrite ${device} without --yes-really-overwrite (everything on it is lost)`);
  let st;
  try {
    st = statSync(device);
  } catch {
    throw new UserError(`device ${device} not found`);
  }
  if (!st.isBlockDevice()) throw new UserError(`${device} is not a block device (use --out for an image file)`);
  const name = basename(resolve(device));
  const partSuffix = /\d$/.test(name) ? /^p\d+$/ : /^\d+$/; // sdb → sdb1, nvme0n1 → nvme0n1p1
  for (const line of mounts.split("\n")) {
    const src = line.split(/\s+/)[0] ?? "";
    if (!src.startsWith("/dev/")) continue;
    const s = basename(src);
    if (s === name || (s.startsWith(name) && partSuffix.test(s.slice(name.length))))
      throw new UserError(`${device} is in use (${src} is mounted or swap): unmount it first`);
  }
  const sys = `/sys/class/block/${name}`;
  if (existsSync(join(sys, "partition"))) throw new UserError(`${device} is a partition: give the whole disk (e.g. /dev/sdb)`);
  const sectors = Number(readText(join(sys, "size")).trim());
  if (!sectors) throw new UserError(`${device} has size 0 (no medium?)`);
  return sectors * 512;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

async function writeRegions(path: string, writes: DiskWrite[]): Promise<void> {
  const fh = await open(path, "r+");
  try {
    for (const w of writes) {
      let done = 0;
      while (done < w.data.length) done += (await fh.write(w.data, done, w.data.length - done, w.offset + done)).bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Both GRUB images, each with the small config that finds our FAT by serial. */
async function makeGrubImages(tmp: string, fatUuid: string): Promise<{ core: Uint8Array; efi: Uint8Array }> {
  const mkimage = needTool("grub-mkimage", "grub-common");
  const early = join(tmp, "early.cfg");
  await writeFile(early, `search --no-floppy --fs-uuid --set=root ${fatUuid}\nset prefix=($root)/boot/grub\n`);
  const core = join(tmp, "core.img");
  const efi = join(tmp, "BOOTX64.EFI");
  await runTool([mkimage, "-O", "i386-pc", "-d", GRUB_PLATFORMS.bios, "-o", core, "-c", early, "-p", "/boot/grub", "biosdisk", ...CORE_MODULES]);
  await runTool([mkimage, "-O", "x86_64-efi", "-d", GRUB_PLATFORMS.uefi, "-o", efi, "-c", early, "-p", "/boot/grub", ...CORE_MODULES]);
  return { core: new Uint8Array(await readFile(core)), efi: new Uint8Array(await readFile(efi)) };
}

export async function buildUsb(opts: UsbOptions): Promise<UsbResult> {
  const log = opts.log ?? (() => {});
  if (!!opts.out === !!opts.device) throw new UserError("give exactly one of --out FILE or --device /dev/sdX");
  const kernel = requireFile(opts.kernel ?? DEFAULT_KERNEL, "kernel");
  const initrd = requireFile(opts.initrd ?? DEFAULT_INITRD, "initramfs");
  const grubCfg = buildGrubConfig(opts);
  for (const t of ["mformat", "mmd", "mcopy"]) needTool(t, "mtools");
  needTool("grub-mkimage", "grub-common");
  requireGrubPlatforms();

  let path: string;
  let bytes: number;
  if (opts.device) {
    bytes = checkDevice(opts.device, opts.yesReallyOverwrite);
    path = opts.device;
  } else {
    path = outputPath(opts.out!, "a stick? use --device");
    bytes = opts.size ?? DEFAULT_SIZE;
    if (bytes % SECTOR) throw new UserError(`bad --size ${bytes}: not a multiple of ${SECTOR} bytes`);
  }
  const need = statSync(kernel).size + statSync(initrd).size + SLACK + ESP_LBA * SECTOR;
  if (bytes < need) throw new UserError(`${opts.device ?? "--size"} ${mib(bytes)} is too small: kernel, initramfs and GRUB need at least ${mib(need)}`);

  const layout = usbLayout(bytes);
  const esp = layout.partitions[0]!;
  const espOffset = esp.firstLba * SECTOR;
  const serial = crypto.getRandomValues(new Uint32Array(1))[0]!;
  const serialHex = serial.toString(16).padStart(8, "0");
  const fatUuid = `${serialHex.slice(0, 4)}-${serialHex.slice(4)}`.toUpperCase();

  // An image is built beside --out and renamed over it only when whole (a good one there survives
  // a failed or interrupted rebuild); a device is written in place, as asked.
  const disk = opts.device ? path : tempBeside(path);
  const tmp = mkdtempSync(join(tmpdir(), "inetboot-usb-"));
  const forget = onInterrupt(() => {
    rmSync(tmp, { recursive: true, force: true });
    if (!opts.device) rmSync(disk, { force: true });
  });
  try {
    const { core, efi } = await makeGrubImages(tmp, fatUuid);
    const coreSectors = Math.ceil(core.length / SECTOR);
    if (coreSectors > ESP_LBA - BIOS_BOOT_LBA) throw new UserError(`GRUB core.img is ${core.length} bytes: larger than the 1 MiB BIOS boot partition`);
    const bootImg = new Uint8Array(await readFile(join(GRUB_PLATFORMS.bios, "boot.img")));

    if (!opts.device) {
      await writeFile(disk, "");
      const fh = await open(disk, "r+");
      await fh.truncate(bytes); // sparse: the image costs only what is written
      await fh.close();
    }

    // The FAT first, then the tables and boot code, so a stick interrupted half-way is not bootable.
    log(`FAT32 "${VOLUME_LABEL}" (${fatUuid}) at ${mib(espOffset)}, ${mib((esp.lastLba - esp.firstLba + 1) * SECTOR)}`);
    const img = `${disk}@@${espOffset}`;
    const env = { MTOOLS_SKIP_CHECK: "1" };
    await runTool(
      [needTool("mformat", "mtools"), "-i", img, "-F", "-T", String(esp.lastLba - esp.firstLba + 1), "-H", String(esp.firstLba),
        "-v", VOLUME_LABEL, "-N", serialHex, "::"],
      { env },
    );
    await runTool([needTool("mmd", "mtools"), "-i", img, "::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub", `::/${CACHE_FOLDER}`], { env });
    await writeFile(join(tmp, "grub.cfg"), grubCfg);
    await writeFile(join(tmp, "BOOTX64.EFI"), efi);
    await writeFile(join(tmp, "README.txt"), stickReadme());
    const mcopy = needTool("mcopy", "mtools");
    const put = (src: string | string[], dest: string) => runTool([mcopy, "-i", img, "-o", "-s", ...[src].flat(), dest], { env });
    log("copying the kernel, the initramfs and GRUB");
    await put(kernel, `::${KERNEL_PATH}`);
    await put(initrd, `::${INITRD_PATH}`);
    await put(join(tmp, "grub.cfg"), "::/boot/grub/grub.cfg");
    await put(join(tmp, "BOOTX64.EFI"), "::/EFI/BOOT/BOOTX64.EFI");
    await put(join(tmp, "README.txt"), "::/README.txt");
    for (const [plat, dir] of [["i386-pc", GRUB_PLATFORMS.bios], ["x86_64-efi", GRUB_PLATFORMS.uefi]] as const) {
      await runTool([needTool("mmd", "mtools"), "-i", img, `::/boot/grub/${plat}`], { env });
      const files = readdirSync(dir).filter((f) => f.endsWith(".mod") || f.endsWith(".lst")).map((f) => join(dir, f));
      await put(files, `::/boot/grub/${plat}/`);
    }

    log("writing the GPT and the BIOS boot code");
    const mbrCode = patchBootImg(bootImg, BIOS_BOOT_LBA);
    await writeRegions(disk, [
      { offset: 0, data: mbrCode },
      { offset: 440, data: new Uint8Array(6) }, // no MBR disk signature
      { offset: BIOS_BOOT_LBA * SECTOR, data: patchCoreImg(core, BIOS_BOOT_LBA) },
      ...encodeGpt(layout),
    ]);
    if (opts.device) {
      // Let the kernel see the new partitions without a replug (best effort: busy or no permission is fine).
      const bd = Bun.which("blockdev", { PATH: "/usr/sbin:/sbin:/usr/bin:/bin" });
      if (bd) await runTool([bd, "--rereadpt", path]).catch((e) => log(`partition table not re-read (${(e as Error).message}): replug the stick`));
    }
    if (!opts.device) await rename(disk, path);
  } catch (e) {
    if (!opts.device) await unlink(disk).catch(() => {});
    throw e;
  } finally {
    forget();
    await rm(tmp, { recursive: true, force: true });
  }
  return { path, bytes, layout, espOffset, fatUuid, grubCfg };
}

function mib(n: number): string {
  return `${Math.round(n / MIB)} MiB`;
}

function stickReadme(): string {
  return [
    "inetboot boot stick",
    "",
    "Boots with UEFI (EFI/BOOT/BOOTX64.EFI) and BIOS (GRUB in the MBR and the BIOS boot partition).",
    "boot/grub/grub.cfg holds the menu: edit it to add boot sources.",
    `${CACHE_FOLDER}/ keeps downloaded blocks, so later boots need not fetch them again.`,
    "Host tools: inetboot cache stats|verify|prune <this stick>/inetboot-cache",
    "",
  ].join("\r\n");
}
