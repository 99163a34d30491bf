// Cleanup that must happen however a bench or test ends: normal exit, an exception, or
// Ctrl-C/SIGTERM (where `finally` blocks never run). Each hook runs once, newest first, synchronously.
const hooks = new Set<() => void>();
let installed = false;

function runAll() {
  for (const h of [...hooks].reverse()) {
    hooks.delete(h);
    try {
      h();
    } catch {
      /* best effort: the others still run */
    }
  }
}

/** Registers `fn`; returns a function that unregisters it (call it when cleaned up normally). */
export function atExit(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on("exit", runAll);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
      process.on(sig, () => {
        runAll();
        process.exit(130);
      });
  }
  hooks.add(fn);
  return () => void hooks.delete(fn);
}
