// Block devices and their filesystem identity (type, label, UUID) read from superblocks, the
// way blkid would, for the few types a cache stick has (vfat, ext4). Pure parsing + /sys reads.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";

export interface FsIdentity {
  type: "vfat" | "ext4";
  label: string | null;
  uuid: string | null;
  /** vfat: the volume-dirty bit Linux sets while mounted read-write and clears when it unmounts
   *  (or remounts read-only); set at mount time means the last writer was cut off */
  dirty?: boolean;
}

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const text = (b: Uint8Array) => new TextDecoder().decode(b).replace(/\0.*$/s, "").trim();

/** Identity of a vfat or ext4 filesystem from its first 2 KiB; null for anything else. */
export function identifyFs(b: Uint8Array): FsIdentity | null {
  if (b.byteLength < 2048) return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dv.getUint16(1024 + 56, true) === 0xef53) {
    const u = hex(b.subarray(1024 + 104, 1024 + 120));
    const uuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
    return { type: "ext4", label: text(b.subarray(1024 + 120, 1024 + 136)) || null, uuid };
  }
  if (b[510] === 0x55 && b[511] === 0xaa) {
    // FAT32 keeps its extended boot record at 64, FAT12/16 at 36.
    const fat32 = String.fromCharCode(...b.subarray(82, 87)) === "FAT32";
    const fat16 = String.fromCharCode(...b.subarray(54, 57)) === "FAT";
    if (!fat32 && !fat16) return null;
    const ebr = fat32 ? 64 : 36;
    const id = dv.getUint32(ebr + 3, true);
    const label = String.fromCharCode(...b.subarray(ebr + 7, ebr + 18)).trim();
    const uuid = `${(id >>> 16).toString(16).padStart(4, "0")}-${(id & 0xffff).toString(16).padStart(4, "0")}`.toUpperCase();
    // The byte after the drive number: bit 0 "not cleanly unmounted".
    const dirty = (b[ebr + 1]! & 1) === 1;
    return { type: "vfat", label: label && label !== "NO NAME" ? label : null, uuid, dirty };
  }
  return null;
}

export interface BlockDev {
  name: string; // sda1
  path: string; // /dev/sda1
  removable: boolean;
  sizeBytes: number;
}

/** Partitions and whole disks under /sys/class/block (no loop, ram, nbd, zram). */
export function listBlockDevices(sys = "/sys"): BlockDev[] {
  const dir = `${sys}/class/block`;
  if (!existsSync(dir)) return [];
  const out: BlockDev[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (/^(loop|ram|nbd|zram|sr|dm-)/.test(name)) continue;
    try {
      const disk = existsSync(`${dir}/${name}/partition`) ? readFileSync(`${dir}/${name}/../removable`, "utf8").trim() : null;
      const removable = (disk ?? readFileSync(`${dir}/${name}/removable`, "utf8").trim()) === "1";
      const sizeBytes = Number(readFileSync(`${dir}/${name}/size`, "utf8")) * 512;
      if (sizeBytes === 0) continue;
      out.push({ name, path: `/dev/${name}`, removable, sizeBytes });
    } catch {
      // gone while we looked (a stick pulled): the others are still worth a look
    }
  }
  // Removable media first (the seed's USB stick), then the rest.
  return out.sort((a, b) => Number(b.removable) - Number(a.removable));
}

export function readHead(path: string, n = 2048): Uint8Array | null {
  let fd = -1;
  try {
    fd = openSync(path, "r");
    const b = new Uint8Array(n);
    const got = readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
