// Host tools the media builders drive (grub-mkrescue, grub-mkimage, mtools): find them or say which
// Debian package brings them, and run them with their stderr tail in the error.
import { UserError } from "../sys/errors.ts";

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
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) {
    const tail = err.trim().split("\n").filter(Boolean).slice(-3).join(" | ");
    throw new UserError(`${argv[0]!.split("/").pop()} failed (exit ${code}): ${tail || "no message"}`);
  }
  return out;
}
