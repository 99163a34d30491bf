// Ctrl-C (SIGINT) or SIGTERM during a host command's long work: undo what is half done (partial
// outputs, temp dirs, tools still running), then exit 130/143 as a shell reports a signal. One
// place for every command: the undos registered at that moment run last-registered first (the
// way scopes unwind: a tool started inside a build is stopped before the build's files go).

const undos: (() => void | Promise<void>)[] = [];
let stopping = false;

/** Until the returned function is called, an interrupt runs `undo` (then exits). */
export function onInterrupt(undo: () => void | Promise<void>): () => void {
  if (undos.length === 0) {
    process.on("SIGINT", interrupted);
    process.on("SIGTERM", interrupted);
  }
  undos.push(undo);
  return () => {
    const i = undos.indexOf(undo);
    if (i >= 0) undos.splice(i, 1);
    if (undos.length === 0) {
      process.off("SIGINT", interrupted);
      process.off("SIGTERM", interrupted);
    }
  };
}

/** An interrupt is being handled: the process is about to exit (work it cut short must not report
 *  its own failure on top). */
export const interrupting = (): boolean => stopping;

async function interrupted(sig: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const undo of [...undos].reverse()) {
    try {
      await undo();
    } catch {
      /* best effort: the others still run */
    }
  }
  process.exit(sig === "SIGINT" ? 130 : 143);
}
