// Console output for the boot agent and the NBD daemon: synchronous write(2) on fd 1/2.
// Bun builds process.stdout/stderr lazily as Node streams, and that first use costs ~9 ms natively,
// ~0.3 s under an emulated CPU, on every boot; a direct write also keeps event lines in order.
import { writeSync } from "node:fs";
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";

/** Writes all of `text` to `fd`; falls back to the Node stream if the fd is non-blocking and full. */
export function writeFd(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(fd, buf, off);
  } catch {
    const rest = buf.subarray(off);
    if (rest.length) (fd === 1 ? process.stdout : process.stderr).write(rest);
  }
}

const MARK: Record<string, string> = { info: "ℹ", success: "✔", warn: "⚠", error: "✖", fatal: "✖", start: "◐", ready: "✔", fail: "✖", debug: "⚙", trace: "→" };

/** A consola reporter that prints `ℹ message` lines through writeFd (no colours, no stream). */
export function plainReporter(fdOf: (level: number) => 1 | 2 = (l) => (l <= 1 ? 2 : 1)): ConsolaReporter {
  return {
    log(o: LogObject) {
      const text = o.args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
      const mark = MARK[o.type] ?? "";
      writeFd(fdOf(o.level), `${mark ? mark + " " : ""}${text}\n`);
    },
  };
}

/**
 * The boot side's logger: consola's core (its full entry point reads process.stdout at import)
 * with the plain reporter. Errors and warnings to fd 2, the rest to fd 1 (both the console at boot).
 */
export const bootLog: ConsolaInstance = createConsola({ reporters: [plainReporter()] });
