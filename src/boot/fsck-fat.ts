// Repairing a FAT cache stick that was not cleanly unmounted (a power cut or a pulled stick while
// the cache wrote to it). FAT has no journal: a cut can leave a directory entry whose clusters are
// still free in the FAT, or a new directory whose cluster never reached the stick. Linux's vfat
// then sets the whole filesystem read-only the first time it meets the damage, and the cache takes
// no writes on any later boot. `fsck.fat -a` (dosfstools, carried in the initramfs) repairs that
// before the mount, as a desktop does for a stick with its dirty bit set. Chunks it truncates or
// drops are caught by the cache's digest check and fetched again.
import { existsSync } from "node:fs";

export const FSCK_FAT_PATHS = ["/usr/sbin/fsck.fat", "/sbin/fsck.fat"];

export interface FsckResult {
  /** fsck.fat's exit status (of the last pass): 0 nothing to change, 1 changed (errors
   *  corrected, dirty bit cleared), anything else failed */
  status: number;
  changed: boolean;
  ok: boolean;
  seconds: number;
  /** fsck.fat's last line (files and clusters), or why it failed */
  summary: string;
}

/** fsck.fat on the cache medium; null when the initramfs has none. Never throws. */
export function fsckFat(device: string, paths = FSCK_FAT_PATHS, timeoutMs = 300_000): FsckResult | null {
  const bin = paths.find((p) => existsSync(p));
  if (!bin) return null;
  const t0 = performance.now();
  let changed = false;
  // One pass can leave work for the next (a directory cut short is truncated first, and only
  // then found pointing elsewhere), so repeat while a pass changes something: 3 passes at most.
  for (let pass = 0; ; pass++) {
    // -a: repair without asking (also clears the dirty bit); -w: write each change at once.
    const r = Bun.spawnSync([bin, "-a", "-w", device], { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
    const lines = `${r.stdout.toString()}\n${r.stderr.toString()}`.split("\n").map((l) => l.trim()).filter(Boolean);
    // "DEV: N files, U/T clusters" when it got through; otherwise its last word on the matter.
    const tally = lines.find((l) => /\d+ files?, \d+\/\d+ clusters/.test(l));
    const status = r.exitCode ?? -1;
    const seconds = Math.round((performance.now() - t0) / 10) / 100;
    const summary = r.exitCode === null ? `killed after ${timeoutMs / 1000} s` : (tally ?? lines.at(-1) ?? "");
    if (status === 1) changed = true;
    if (status !== 1 || pass === 2) return { status, changed, ok: status === 0 || status === 1, seconds, summary };
  }
}
