// Shared CLI error exit: one clear line on stderr, non-zero status, no stack trace for user errors.
import { redactUrls } from "../fetch/errors.ts";
import { oneLine } from "../sys/errors.ts";

/** The exit status of a CLI whose reader went away (`inetboot info S | head -1`): 128 + SIGPIPE,
 *  what the shell reports for a tool the signal ended (`seq 1e9 | head`). Not 0: the output was
 *  cut short, and `set -o pipefail` scripts see it as coreutils would make them. */
export const BROKEN_PIPE_EXIT = 141;

/** Bun ignores SIGPIPE, so a write into a closed pipe is an EPIPE "error" event on the stream,
 *  which, unhandled, dies with a stack trace. End quietly instead, as a Unix tool does. */
export function quietOnBrokenPipe(): void {
  for (const s of [process.stdout, process.stderr])
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(BROKEN_PIPE_EXIT);
      if (s === process.stdout) fail(e); // e.g. ENOSPC on `> file`: one line, not a trace
      process.exit(1); // stderr itself is gone: nowhere to say it
    });
}

export function fail(err: unknown): never {
  process.stderr.write(`inetboot: ${redactUrls(oneLine(err))}\n`); // no password of a URL in it
  process.exit(1);
}

/** Wraps a command's run so any thrown error becomes one line and exit 1. */
export function guarded<A>(fn: (args: A) => Promise<void> | void) {
  return async (ctx: { args: A }) => {
    try {
      await fn(ctx.args);
    } catch (e) {
      fail(e);
    }
  };
}
