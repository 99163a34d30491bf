// Retry delays: exponential backoff with jitter, so many machines booting at once after a server
// hiccup do not retry in lockstep (the seed's 13-site GSLB setup is exactly that crowd).

export interface BackoffOptions {
  /** Delay before the first retry, ms (default 250). */
  baseMs?: number;
  /** Cap on any single delay, ms (default 8000). */
  maxMs?: number;
  /** Random source in [0,1) (tests pass a fixed one). */
  random?: () => number;
}

/** Delay before retry number `attempt` (1 = first retry): base·2^(attempt-1), capped, then scaled
 *  into [50%, 100%] of that value ("equal jitter": never zero, never above the cap). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = opts.baseMs ?? 250;
  const max = opts.maxMs ?? 8000;
  const rnd = opts.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (exp / 2) * rnd());
}

/** Sleeps `ms`, waking early (rejecting with the signal's reason) if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
