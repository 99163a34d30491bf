// Filesystem type from superblock magic numbers (pure): what `blkid` would say for the types a
// root image can have. Needs the first 36 KiB of the device.

export type FsType = "squashfs" | "ext4" | "erofs" | "iso9660" | "vfat";
export const PROBE_BYTES = 36 * 1024;

export function detectFs(b: Uint8Array): FsType | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ascii = (off: number, len: number) => (b.byteLength >= off + len ? String.fromCharCode(...b.subarray(off, off + len)) : "");
  if (ascii(0, 4) === "hsqs") return "squashfs";
  if (b.byteLength >= 1024 + 4 && dv.getUint32(1024, true) === 0xe0f5e1e2) return "erofs";
  if (b.byteLength >= 1082 && dv.getUint16(1080, true) === 0xef53) return "ext4";
  if (ascii(32769, 5) === "CD001") return "iso9660";
  if (b.byteLength >= 512 && b[510] === 0x55 && b[511] === 0xaa && (ascii(54, 3) === "FAT" || ascii(82, 3) === "FAT")) return "vfat";
  return null;
}
