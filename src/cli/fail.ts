// Shared CLI error exit: one clear line on stderr, non-zero status, no stack trace for user errors.
import { redactUrls } from "../fetch/errors.ts";
import { oneLine } from "../sys/errors.ts";

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
