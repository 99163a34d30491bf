// Scratch directories for tests. Each is removed when the whole run ends (test/preload.ts), pass or
// fail, so `make test` leaves nothing in $TMPDIR; INETBOOT_KEEP_TMP=1 keeps them for a post-mortem.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

/** A fresh directory under $TMPDIR named PREFIX + random letters. */
export function scratch(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Mount points (from /proc/self/mountinfo, octal escapes undone). */
function mountPoints(): string[] {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean)
      .map((l) => l.split(" ")[4]!.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))));
  } catch {
    return [];
  }
}

/** Removes every scratch directory, except one with something still mounted inside: a recursive
 *  delete would reach into that filesystem. */
export function removeScratch(): void {
  if (process.env.INETBOOT_KEEP_TMP === "1") return;
  const mounts = mountPoints();
  for (const d of made.splice(0)) {
    if (mounts.some((m) => m === d || m.startsWith(d + "/"))) {
      process.stderr.write(`test scratch: ${d} still has a mount inside; left in place\n`);
      continue;
    }
    rmSync(d, { recursive: true, force: true });
  }
}
