// Tiny helpers for the image builders: run a host tool, fail with its stderr tail, hash a recipe.
import { createHash } from "node:crypto";

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Let the tool write to our stderr (long builds show progress). */
  inheritStderr?: boolean;
  stdin?: Uint8Array | string;
}

/** Runs argv, returns stdout; throws one line naming the command plus the tool's stderr tail. */
export function run(argv: string[], opts: RunOptions = {}): string {
  const p = Bun.spawnSync(argv, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : undefined,
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: opts.inheritStderr ? "inherit" : "pipe",
  });
  if (p.exitCode !== 0) {
    const err = p.stderr ? new TextDecoder().decode(p.stderr).trim().split("\n").slice(-15).join("\n") : "";
    throw new Error(`${argv[0]} failed (exit ${p.exitCode}${p.signalCode ? `, ${p.signalCode}` : ""}): ${argv.join(" ")}\n${err}`);
  }
  return new TextDecoder().decode(p.stdout);
}

/** Throws a clear error when a host tool is missing (tests treat that as a failure, never a skip). */
export function need(tool: string, pkg: string): string {
  const p = Bun.which(tool, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
  if (!p) throw new Error(`${tool} not found: apt-get install ${pkg}`);
  return p;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
