// Host tools the media builders drive (grub-mkrescue, grub-mkimage, mtools): find them or say which
// Debian package brings them, and run them with their stderr tail in the error. A build that is
// interrupted (SIGINT/SIGTERM) ends the tools it started and removes its temporaries (sys/interrupt.ts).
import { basename, dirname, join } from "node:path";
import type { Subprocess } from "bun";
import { UserError } from "../sys/errors.ts";
import { interrupting, onInterrupt } from "../sys/interrupt.ts";

const SEARCH_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`; // losetup, blockdev live in sbin

/** Absolute path of a tool, or a UserError naming the package to install. */
export function needTool(tool: string, pkg: string): string {
  const p = Bun.which(tool, { PATH: SEARCH_PATH });
  if (!p) throw new UserError(`${tool} not found: apt-get install ${pkg}`);
  return p;
}

/** Runs argv to completion; on failure one line naming the tool, then the tail of its stderr. */
export async function runTool(argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<string> {
  const p = Bun.spawn(argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // its own process group: an interrupt ends the tool with its helpers (grub-mkrescue's
    // xorriso), so none goes on as an orphan writing into what the build's undo removes
    detached: true,
  });
  const forget = onInterrupt(async () => {
    killGroup(p, "SIGTERM");
    await Promise.race([p.exited, Bun.sleep(2000)]); // a moment to exit; then no more
    killGroup(p, "SIGKILL"); // helpers that outlived their leader
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).finally(forget);
  // Killed by the interrupt: the process is exiting; no "failed" line may race it.
  if (interrupting()) await new Promise(() => {});
  if (code !== 0) {
    const tail = err.trim().split("\n").filter(Boolean).slice(-3).join(" | ");
    throw new UserError(`${argv[0]!.split("/").pop()} failed (exit ${code}): ${tail || "no message"}`);
  }
  return out;
}

/** A temporary name beside `out`: on the same filesystem, so renaming it into place is atomic and
 *  a good file already at `out` is replaced only by a complete one. */
export function tempBeside(out: string): string {
  return join(dirname(out), `${basename(out)}.tmp-${process.pid}`);
}

function killGroup(p: Subprocess, sig: NodeJS.Signals): void {
  try {
    process.kill(-p.pid, sig);
  } catch {
    /* the group is gone already */
  }
}
