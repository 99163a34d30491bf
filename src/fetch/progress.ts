// Download progress: fetchFile reports raw counters through a callback (the agent routes them to its
// event log); consoleProgress() turns them into throttled human lines on stderr.
import { createConsola } from "consola/core";
import { plainReporter } from "../sys/console.ts";

export interface FetchProgress {
  url: string;
  /** Bytes of the body received so far (including bytes kept from an earlier attempt). */
  bytes: number;
  /** Expected total, when known (Content-Length or the caller's `size`). */
  total?: number;
  /** Milliseconds since fetchFile started. */
  ms: number;
  /** true on the last call, after the body completed and verified. */
  done: boolean;
}

// Progress lines go to stderr (CLI data owns stdout), written directly: no Node stream to build,
// which matters in the agent (src/sys/console.ts).
const log = createConsola({ reporters: [plainReporter(() => 2)] });

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** One human line: "vmlinuz 12.3 MiB / 40.0 MiB (30%) 8.1 MB/s". */
export function formatProgress(label: string, p: FetchProgress): string {
  const rate = p.ms > 0 ? p.bytes / 1e6 / (p.ms / 1000) : 0;
  const pct = p.total ? ` (${Math.floor((p.bytes / p.total) * 100)}%)` : "";
  const of = p.total ? ` / ${formatBytes(p.total)}` : "";
  return `${label} ${formatBytes(p.bytes)}${of}${pct} ${rate.toFixed(1)} MB/s`;
}

export interface ConsoleProgressOptions {
  /** Name shown on each line (default: last path segment of the URL). */
  label?: string;
  /** Downloads whose known size is below this print nothing (default 1 MiB). */
  minBytes?: number;
  /** Print at most this often (default 1000 ms)… */
  everyMs?: number;
  /** …or whenever another this-many percent completed (default 10). */
  everyPct?: number;
  /** Where lines go (default: consola on stderr). */
  write?: (line: string) => void;
}

/** Returns an onProgress callback printing throttled lines (every 1 s or 10 %, and at the end). */
export function consoleProgress(opts: ConsoleProgressOptions = {}): (p: FetchProgress) => void {
  const minBytes = opts.minBytes ?? 1 << 20;
  const everyMs = opts.everyMs ?? 1000;
  const everyPct = opts.everyPct ?? 10;
  const write = opts.write ?? ((l: string) => log.info(l));
  let lastMs = -Infinity;
  let lastPct = 0;
  return (p) => {
    const big = p.total !== undefined ? p.total >= minBytes : p.bytes >= minBytes;
    if (!big) return;
    const pct = p.total ? (p.bytes / p.total) * 100 : 0;
    if (!p.done && p.ms - lastMs < everyMs && !(p.total && pct - lastPct >= everyPct)) return;
    lastMs = p.ms;
    lastPct = pct;
    const label = opts.label ?? (decodeURIComponent(new URL(p.url).pathname.split("/").pop() || "") || p.url);
    write(formatProgress(label, p) + (p.done ? " done" : ""));
  };
}
