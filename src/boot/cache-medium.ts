// The persistent block cache (the seed's `knxblock` folder on a USB stick): find a vfat or ext4
// filesystem holding `inetboot-cache/` (removable devices first) or the one inetboot.cache names,
// mount it, and hand its folder to the chunk cache, the payload cache and the rollback state.
import { accessSync, constants, existsSync, mkdirSync } from "node:fs";
import type { CacheSpec } from "./cmdline.ts";
import { emit } from "../agent/events.ts";
import { mount, umount, sync, MS } from "../sys/ffi.ts";
import { oneLine } from "../sys/errors.ts";
import { bootLog } from "../sys/console.ts";
import { identifyFs, listBlockDevices, readHead } from "./blockdev.ts";
import { fsckFat } from "./fsck-fat.ts";
import type { MediumMount } from "../store/group-commit.ts";

/** The stick is data from outside: nothing on it is run, and no symlink on it is followed (one
 *  planted where PID 1 writes, e.g. files/<sha>.tmp-1, would aim its writes anywhere). */
const CACHE_MOUNT_FLAGS = MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOSYMFOLLOW;

export const CACHE_FOLDER = "inetboot-cache";
// Not under /run: switch_root moves /run into the new root, while the NBD daemon keeps the
// initramfs as its root and must still find the stick at the same path afterwards.
const MNT = "/.inetboot-cache";

export interface CacheMedium {
  device: string;
  fstype: string;
  mountpoint: string;
  dir: string;
}

const VFAT_OPTIONS = "iocharset=utf8";

const FS_MODULES: Record<string, string[]> = { vfat: ["vfat", "nls_cp437", "nls_iso8859_1", "nls_utf8"], ext4: ["ext4"] };

async function loadFsModules(type: string) {
  const { loadModulesByName } = await import("../agent/coldplug.ts");
  loadModulesByName(FS_MODULES[type] ?? [], false); // a missing nls module is the mount's to report
}

function wanted(spec: CacheSpec, dev: string, id: { label: string | null; uuid: string | null }): boolean {
  switch (spec.kind) {
    case "label": return id.label === spec.value;
    case "uuid": return (id.uuid ?? "").toLowerCase() === spec.value.toLowerCase();
    case "device": return dev === spec.value;
    default: return true;
  }
}

/** Finds, mounts and returns the cache medium; null when there is none (or inetboot.cache=off). */
export async function findCacheMedium(spec: CacheSpec, waitMs = 0): Promise<CacheMedium | null> {
  if (spec.kind === "off") return null;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const found = await scanOnce(spec);
    if (found) return found;
    if (Date.now() >= deadline) break;
    await Bun.sleep(250); // USB disks register a while after their driver loads
  }
  if (spec.kind !== "auto") emit("warning", { message: `inetboot.cache: no filesystem matches ${spec.kind}=${"value" in spec ? spec.value : ""}` });
  return null;
}

/** A FAT stick whose dirty bit is set was cut off while written: repair it before mounting
 *  (fsck-fat.ts says why). Whatever the outcome, the mount is tried: reads are verified anyway. */
async function repairFat(device: string) {
  // a large stick can take a while: say why the boot pauses, and that it still does
  bootLog.info(`${device}: not cleanly unmounted (cut off while written); checking it with fsck.fat`);
  const r = await fsckFat(device, { onTick: (s) => bootLog.info(`${device}: fsck.fat still checking (${s} s)`) });
  if (!r) {
    emit("warning", { message: `cache: ${device} was not cleanly unmounted and this initramfs has no fsck.fat; mounting it as it is` });
    return;
  }
  const fields = { device, status: r.status, changed: r.changed, seconds: r.seconds, summary: r.summary };
  if (r.ok) emit("cache.fsck", fields, `${device}: not cleanly unmounted, checked with fsck.fat in ${r.seconds} s: ${r.summary}`);
  else emit("warning", { message: `cache: fsck.fat -a ${device} failed (exit status ${r.status}): ${r.summary}; mounting it as it is` });
}

async function scanOnce(spec: CacheSpec): Promise<CacheMedium | null> {
  for (const dev of listBlockDevices()) {
    const head = readHead(dev.path);
    const id = head && identifyFs(head);
    if (!id || !wanted(spec, dev.path, id)) continue;
    const dir = `${MNT}/${CACHE_FOLDER}`;
    try {
      await loadFsModules(id.type);
      mkdirSync(MNT, { recursive: true });
      // The auto scan looks at every disk of the machine (its own system, a hibernated one): it
      // looks read-only, an ext4 without replaying its journal, and writes only to the medium
      // that has the folder.
      if (spec.kind === "auto") {
        mount(dev.path, MNT, id.type, CACHE_MOUNT_FLAGS | MS.RDONLY, id.type === "vfat" ? VFAT_OPTIONS : "noload");
        const ours = existsSync(dir);
        umount(MNT);
        if (!ours) continue;
      }
      // Not vfat's `flush` option: it sleeps 100 ms in every close() of a written file (a cold
      // boot paid that per chunk). The cache flushes what it writes itself (group-commit.ts).
      mount(dev.path, MNT, id.type, CACHE_MOUNT_FLAGS, id.type === "vfat" ? VFAT_OPTIONS : null);
    } catch (e) {
      emit("warning", { message: `cache: ${oneLine(e)}` });
      continue;
    }
    // Only a stick that is ours (it has the folder, or inetboot.cache names it) gets repaired.
    if (id.type === "vfat" && id.dirty) {
      try {
        umount(MNT);
        await repairFat(dev.path);
        mount(dev.path, MNT, id.type, CACHE_MOUNT_FLAGS, VFAT_OPTIONS);
      } catch (e) {
        emit("warning", { message: `cache: ${oneLine(e)}` });
        continue;
      }
    }
    mkdirSync(dir, { recursive: true });
    const m = { device: dev.path, fstype: id.type, mountpoint: MNT, dir };
    emit("cache.mounted", { device: m.device, fstype: m.fstype, label: id.label, dir }, `block cache on ${dev.path} (${id.type}${id.label ? `, ${id.label}` : ""})`);
    return m;
  }
  return null;
}

/** Once the stick holds the whole image (the daemon's cache fill is done), there is nothing left
 *  to write: read-only, the filesystem is clean again (vfat clears the dirty flag it set at
 *  mount), so a stick pulled out of the running system or a power cut cannot harm it, and no other
 *  OS asks to repair it. Nobody unmounts it otherwise: it is out of the booted system's sight. */
export function remountReadOnly(mountpoint: string) {
  mount(mountpoint, mountpoint, null, MS.REMOUNT | MS.RDONLY | CACHE_MOUNT_FLAGS);
}

/** The stick's mount for the NBD daemon's group commit: read-only while nothing is written,
 *  read-write again for the next write (group-commit.ts says why). Remounting is cheap: the
 *  group commit rests it only once its writes are flushed. */
export function mediumMount(mountpoint: string, onChange?: (readOnly: boolean, byKernel?: boolean) => void): MediumMount {
  let readOnly = false;
  /** the kernel made it read-only, not us: vfat does on meeting a damaged directory */
  let forced = false;
  return {
    wake() {
      if (forced) throw new Error(`${mountpoint}: set read-only by the kernel after a filesystem error; it stays so until fsck.fat at the next boot`);
      if (!readOnly) return;
      mount(mountpoint, mountpoint, null, MS.REMOUNT | CACHE_MOUNT_FLAGS);
      readOnly = false;
      onChange?.(false);
    },
    rest() {
      if (readOnly) return;
      // Writing on after the kernel stopped it would damage the stick further.
      if (kernelReadOnly(mountpoint)) forced = true;
      else remountReadOnly(mountpoint);
      readOnly = true;
      onChange?.(true, forced);
    },
  };
}

/** Is the filesystem read-only although we mounted it read-write? (access(2) answers EROFS.) */
function kernelReadOnly(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return false;
  } catch (e) {
    return (e as { code?: string }).code === "EROFS";
  }
}

/** Before kexec: everything on the stick, then unmount it cleanly. */
export function releaseCacheMedium(m: CacheMedium | null) {
  if (!m) return;
  sync();
  try {
    umount(m.mountpoint);
  } catch (e) {
    emit("warning", { message: `cache: ${oneLine(e)}` });
  }
}
