// PID-1 duties: never exit (the kernel panics when init dies), reap orphans, route fatal errors
// to the rescue shell.
import { readdirSync, readFileSync } from "node:fs";
import { waitpidNoHang } from "../sys/ffi.ts";

/** Pids our own code spawned through Bun; Bun reaps those itself, so the reaper leaves them alone. */
const ours = new Set<number>();
export function trackChild(pid: number) {
  ours.add(pid);
}
export function untrackChild(pid: number) {
  ours.delete(pid);
}

/** Zombies whose parent is us and that Bun does not own (orphans re-parented to PID 1). */
export function reapOrphans(): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (ours.has(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, "latin1");
    } catch {
      continue;
    }
    // "pid (comm) S ppid ...": comm may hold spaces and parens, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" && rest[1] === String(process.pid)) {
      if (waitpidNoHang(pid) > 0) n++;
    }
  }
  return n;
}

export function startReaper(intervalMs = 2000) {
  const t = setInterval(reapOrphans, intervalMs);
  (t as { unref?: () => void }).unref?.();
}

/** Makes process.exit harmless: as PID 1 an exit panics the kernel. */
export function forbidExit(onExit: (code: number | undefined) => void) {
  const exit = ((code?: number) => {
    onExit(code);
    return undefined as never;
  }) as typeof process.exit;
  process.exit = exit;
}
