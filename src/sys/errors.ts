// User-facing errors: one line, names what was wrong. The CLI prints `message` and exits non-zero;
// the agent prints it as an `error` event and opens the rescue shell.
export class UserError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = "UserError";
  }
}

/** Why reading a file failed, in words ("no such file"), else its errno code or message. */
export function readFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" ? "no such file" : (code ?? (e as Error).message);
}

/** Why a listen/bind failed, in words ("address already in use"), else the error's message. */
export function listenFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") return "address already in use";
  if (code === "EACCES") return "permission denied";
  return e instanceof Error ? e.message : String(e);
}

/** One line for any thrown value. */
export function oneLine(err: unknown): string {
  if (err instanceof Error) return err.message.split("\n")[0] ?? String(err);
  return String(err).split("\n")[0] ?? "";
}
