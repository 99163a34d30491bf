// One progress line on stderr for long host commands (pack, verify, cache verify): redrawn on a
// terminal, a line every few seconds otherwise (a log or a CI job).
import { humanBytes } from "../store/info.ts";

/** Progress on stderr: a redrawn line on a terminal, a line every few seconds otherwise. */
export function progressLine(label: string) {
  const tty = process.stderr.isTTY;
  const t0 = performance.now();
  let lastLine = 0;
  return {
    update(done: number, total: number, unit: "bytes" | "chunks") {
      const now = performance.now();
      if (!tty && now - lastLine < 2000 && (done < total || !total)) return;
      lastLine = now;
      const pct = total ? ((100 * done) / total).toFixed(0) : "?";
      const rate = unit === "bytes" ? ` ${(done / 1e6 / ((now - t0) / 1000 || 1e-9)).toFixed(0)} MB/s` : "";
      const what = unit === "bytes" ? (total ? `${humanBytes(done)} / ${humanBytes(total)}` : humanBytes(done)) : `${done} / ${total} chunks`;
      // a pipe's size is known only at its end: no percentage until then
      process.stderr.write(`${tty ? "\r\x1b[K" : ""}${label} ${total ? `${pct}% ` : ""}${what}${rate}${tty ? "" : "\n"}`);
    },
    end() {
      if (tty) process.stderr.write("\n");
    },
  };
}
