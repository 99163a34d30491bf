// Repairing a FAT cache stick that was not cleanly unmounted (a power cut or a pulled stick while
// the cache wrote to it). FAT has no journal: a cut can leave a directory entry whose clusters are
// still free in the FAT, or a new directory whose cluster never reached the stick. Linux's vfat
// then sets the whole filesystem read-only the first time it meets the damage, and the cache takes
// no writes on any later boot. `fsck.fat -a` (dosfstools, carried in the initramfs) repairs that
// before the mount, as a desktop does for a stick with its dirty bit set. Chunks it truncates or
// drops are caught by the cache's digest check and fetched again.
import { existsSync } from "node:fs";
import { trackChild, untrackChild } from "../agent/pid1.ts";

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

export interface FsckOptions {
  paths?: string[];
  /** a pass still running after this is killed (the stick is then mounted as it is) */
  timeoutMs?: number;
  /** called every `tickMs` while fsck.fat runs: a big stick can take minutes, and the console
   *  should say the boot is still at it */
  onTick?: (seconds: number) => void;
  tickMs?: number;
}

/** fsck.fat on the cache medium; null when the initramfs has none. Never throws. It runs as a
 *  child process the event loop waits on, so PID 1 goes on reaping and logging meanwhile. */
export async function fsckFat(device: string, o: FsckOptions = {}): Promise<FsckResult | null> {
  const { paths = FSCK_FAT_PATHS, timeoutMs = 300_000, tickMs = 10_000 } = o;
  const bin = paths.find((p) => existsSync(p));
  if (!bin) return null;
  const t0 = performance.now();
  const elapsed = () => Math.round((performance.now() - t0) / 10) / 100;
  const ticker = o.onTick ? setInterval(() => o.onTick!(Math.round(elapsed())), tickMs) : null;
  let changed = false;
  try {
    // One pass can leave work for the next (a directory cut short is truncated first, and only
    // then found pointing elsewhere), so repeat while a pass changes something: 3 passes at most.
    for (let pass = 0; ; pass++) {
      const r = await runPass(bin, device, timeoutMs);
      // "DEV: N files, U/T clusters" when it got through; otherwise its last word on the matter.
      const tally = r.lines.find((l) => /\d+ files?, \d+\/\d+ clusters/.test(l));
      const status = r.status ?? -1;
      const summary = r.status === null ? `killed after ${timeoutMs / 1000} s` : (tally ?? r.lines.at(-1) ?? "");
      if (status === 1) changed = true;
      if (status !== 1 || pass === 2) return { status, changed, ok: status === 0 || status === 1, seconds: elapsed(), summary };
    }
  } finally {
    if (ticker) clearInterval(ticker);
  }
}

/** One `fsck.fat -a -w`: its exit status (null: killed at the deadline) and output lines. */
async function runPass(bin: string, device: string, timeoutMs: number): Promise<{ status: number | null; lines: string[] }> {
  let p: Bun.Subprocess<"ignore", "pipe", "pipe">;
  try {
    // -a: repair without asking (also clears the dirty bit); -w: write each change at once.
    p = Bun.spawn([bin, "-a", "-w", device], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    return { status: -1, lines: [`${bin}: ${(e as Error).message}`] };
  }
  // PID 1's orphan reaper must leave the child to Bun, which reports its status.
  trackChild(p.pid);
  let killed = false;
  const timer = setTimeout(() => ((killed = true), p.kill("SIGKILL")), timeoutMs);
  try {
    const output = Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    // Its output is complete at exit, unless something it started still holds the pipes: never
    // wait on that.
    const [out, err] = await Promise.race([output, Bun.sleep(1000).then(() => ["", ""])]);
    const lines = `${out}\n${err}`.split("\n").map((l) => l.trim()).filter(Boolean);
    return { status: killed ? null : code, lines };
  } finally {
    clearTimeout(timer);
    untrackChild(p.pid);
  }
}
