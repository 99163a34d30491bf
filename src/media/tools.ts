// Host tools the media builders drive (grub-mkrescue, grub-mkimage, mtools): find them or say which
// Debian package brings them, and run them with their stderr tail in the error. A build that is
// interrupted (SIGINT/SIGTERM) ends the tools it started and removes its temporaries (onInterrupt).
import { basename, dirname, join } from "node:path";
import type { Subprocess } from "bun";
import { UserError } from "../sys/errors.ts";

const SEARCH_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`; // losetup, blockdev live in sbin

/** Absolute path of a tool, or a UserError naming the package to install. */
export function needTool(tool: string, pkg: string): string {
  const p = Bun.which(tool, { PATH: SEARCH_PATH });
  if (!p) throw new UserError(`${tool} not found: apt-get install ${pkg}`);
  return p;
}

/** Tools running now, each the leader of its own process group (its helpers, e.g. grub-mkrescue's
 *  xorriso, are in it): a signal to us ends the whole group, so none goes on as an orphan. */
const running = new Set<Subprocess>();
/** What an interrupt must undo, registered by the builds under way. */
const undos = new Set<() => void>();
let stopping = false;

/** Runs argv to completion; on failure one line naming the tool, then the tail of its stderr. */
export async function runTool(argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<string> {
  const p = Bun.spawn(argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    detached: true, // its own process group (see `running`)
  });
  running.add(p);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).finally(() => running.delete(p));
  // Killed by our interrupt handler: it exits the process; no "failed" line may race it.
  if (stopping) await new Promise(() => {});
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

/** Until the returned function is called, SIGINT/SIGTERM end the running tools, run `undo`
 *  (synchronous: remove the build's temporaries) and exit 130/143, as a shell reports them. */
export function onInterrupt(undo: () => void): () => void {
  if (undos.size === 0) {
    process.on("SIGINT", interrupted);
    process.on("SIGTERM", interrupted);
  }
  undos.add(undo);
  return () => {
    undos.delete(undo);
    if (undos.size === 0) {
      process.off("SIGINT", interrupted);
      process.off("SIGTERM", interrupted);
    }
  };
}

async function interrupted(sig: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  const tools = [...running];
  killGroups(tools, "SIGTERM");
  // Tools get a moment to exit (and stop writing into what we remove); then no more.
  await Promise.race([Promise.all(tools.map((p) => p.exited)), Bun.sleep(2000)]);
  killGroups(tools, "SIGKILL"); // helpers that outlived their leader
  for (const undo of undos) {
    try {
      undo();
    } catch {
      /* best effort: the others still run */
    }
  }
  process.exit(sig === "SIGINT" ? 130 : 143);
}

function killGroups(tools: Subprocess[], sig: NodeJS.Signals): void {
  for (const p of tools) {
    try {
      process.kill(-p.pid, sig);
    } catch {
      /* the group is gone already */
    }
  }
}
