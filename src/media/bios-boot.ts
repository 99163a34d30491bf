// BIOS boot of a GPT stick without grub-install (which wants a mounted, loop-attached disk). What
// grub-bios-setup would do, done on bytes: GRUB's boot.img goes into the MBR's code area and is told
// the LBA of core.img; core.img (made by grub-mkimage -O i386-pc, first sector = diskboot.img) goes
// into the BIOS boot partition and its first sector's blocklist is told where the rest of it is.
// Offsets are GRUB's (include/grub/i386/pc/boot.h, boot/i386/pc/diskboot.S).
import { SECTOR } from "./gpt.ts";

/** boot.img: u64 LBA of core.img's first sector */
const KERNEL_SECTOR = 0x5c;
/** boot.img: 2-byte jump that skips the "BIOS gave a bad drive number" workaround */
const DRIVE_CHECK = 0x66;
/** the MBR's boot code ends where the disk signature and partition table begin */
export const MBR_CODE_END = 0x1b8;
/** diskboot.img: the blocklist (u64 start, u16 sectors, u16 segment) ends its sector */
const BLOCKLIST = SECTOR - 12;

/** MBR boot code (bytes 0..0x1b8) pointing at core.img in sector `coreLba`. */
export function patchBootImg(bootImg: Uint8Array, coreLba: number): Uint8Array {
  if (bootImg.length !== SECTOR) throw new Error(`boot.img is ${bootImg.length} bytes, expected ${SECTOR}`);
  const code = bootImg.slice(0, MBR_CODE_END);
  new DataView(code.buffer).setBigUint64(KERNEL_SECTOR, BigInt(coreLba), true);
  // As grub-bios-setup does for hard disks: nop the jump so a BIOS that passes a floppy drive
  // number for a USB disk still reads from 0x80.
  code[DRIVE_CHECK] = 0x90;
  code[DRIVE_CHECK + 1] = 0x90;
  return code;
}

/** core.img with its blocklist naming the sectors after the first, stored from `coreLba` on. */
export function patchCoreImg(coreImg: Uint8Array, coreLba: number): Uint8Array {
  const sectors = Math.ceil(coreImg.length / SECTOR);
  if (sectors < 2) throw new Error(`core.img is ${coreImg.length} bytes: too small to be GRUB's`);
  if (sectors - 1 > 0xffff) throw new Error(`core.img is ${coreImg.length} bytes: too large for one blocklist`);
  const out = new Uint8Array(sectors * SECTOR);
  out.set(coreImg);
  const v = new DataView(out.buffer);
  v.setBigUint64(BLOCKLIST, BigInt(coreLba + 1), true);
  v.setUint16(BLOCKLIST + 8, sectors - 1, true);
  return out;
}
