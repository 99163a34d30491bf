// `inetboot fetch`: download one file, verify it, print "SHA256 SIZE [FILE]".
// With --out FILE the body is saved atomically and the summary goes to stdout. With --out - (or no
// --out while stdout is a pipe) the body is written to stdout only after it verified (it is staged
// in a temp file first, so a failed hash never emits bytes) and the summary goes to stderr. With no
// --out on a terminal nothing is kept: the command just reports the size and hash.
import { once } from "node:events";
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../sys/errors.ts";
import { onInterrupt } from "../sys/interrupt.ts";
import { consoleProgress } from "./progress.ts";
import { fetchFile } from "./fetch.ts";
import { useNetrcFile } from "./netrc.ts";

export interface FetchCliArgs {
  url: string;
  out?: string;
  sha256?: string;
  ca?: string;
  netrc?: string;
  timeout?: string;
  deadline?: string;
  retries?: string;
  quiet?: boolean;
}

function num(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UserError(`--${name} must be a non-negative number, got "${v}"`);
  return n;
}

export async function runFetchCli(a: FetchCliArgs): Promise<void> {
  useNetrcFile(a.netrc);
  const timeoutMs = num("timeout", a.timeout, 30) * 1000;
  const deadlineS = a.deadline === undefined ? undefined : num("deadline", a.deadline, 0);
  const retries = Math.floor(num("retries", a.retries, 3));
  const toStdout = a.out === "-" || (a.out === undefined && !process.stdout.isTTY);
  const discard = a.out === undefined && !toStdout;
  const common = {
    sha256: a.sha256,
    caFile: a.ca,
    timeoutMs,
    deadlineMs: deadlineS === undefined ? undefined : deadlineS * 1000,
    retries,
    onProgress: a.quiet ? undefined : consoleProgress(),
  };

  if (toStdout) {
    const tmp = await mkdtemp(join(tmpdir(), "inetboot-fetch-"));
    // Ctrl-C must not leave the staged body (possibly GBs) behind in the temp dir
    const forget = onInterrupt(() => rmSync(tmp, { recursive: true, force: true }));
    try {
      const dest = join(tmp, "body");
      const r = await fetchFile(a.url, { ...common, dest });
      await copyToStdout(dest);
      process.stderr.write(`${r.sha256} ${r.size}\n`);
    } finally {
      forget();
      await rm(tmp, { recursive: true, force: true });
    }
    return;
  }
  const r = await fetchFile(a.url, { ...common, dest: a.out, discard });
  process.stdout.write(a.out ? `${r.sha256} ${r.size} ${a.out}\n` : `${r.sha256} ${r.size}\n`);
}

// Bun.write(Bun.stdout, file) uses sendfile(), which fails with EAGAIN on a non-blocking pipe in
// Bun 1.4.5; a plain chunked copy honouring backpressure works for pipes, files and terminals.
async function copyToStdout(path: string): Promise<void> {
  for await (const chunk of Bun.file(path).stream()) {
    if (!process.stdout.write(chunk)) await once(process.stdout, "drain");
  }
}
