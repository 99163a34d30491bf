// Debian's nginx as the store's HTTP server (what a CDN origin would be), listening on any address,
// optionally inside a network namespace, with an access log the benches count bytes from.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { atExit } from "../../test/lib/cleanup.ts";
import { nginxConfig } from "../../test/lib/servers.ts";

export interface LogLine {
  path: string;
  status: number;
  bytes: number;
  /** when nginx finished the request (ms since the epoch, $msec) */
  ms: number;
}

export interface NginxServer {
  proc: Subprocess;
  /** parsed access log so far (one entry per finished request) */
  log(): LogLine[];
  stop(): Promise<void>;
}

export async function startNginxAt(o: { root: string; workDir: string; host: string; port: number; wrap?: string[] }): Promise<NginxServer> {
  const w = o.workDir;
  mkdirSync(join(w, "tmp"), { recursive: true });
  const logFile = join(w, "access.log");
  writeFileSync(logFile, "");
  const conf = join(w, "nginx.conf");
  writeFileSync(conf, nginxConfig({ workDir: w, root: o.root, listen: `${o.host}:${o.port}`, accessLog: logFile, logFormat: `'$msec $status $body_bytes_sent "$request"'` }));
  const proc = Bun.spawn([...(o.wrap ?? []), "nginx", "-p", w, "-c", conf], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const forget = atExit(() => proc.kill("SIGKILL"));
  const stop = async () => {
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(t);
    forget();
  };
  // Wait until it accepts connections (inside a namespace the host reaches it over the veth).
  for (let i = 0; ; i++) {
    const ok = await Bun.connect({ hostname: o.host, port: o.port, socket: { data() {} } }).then(
      (s) => (s.end(), true),
      () => false,
    );
    if (ok) break;
    if (proc.exitCode !== null || i > 100) {
      await stop();
      throw new Error(`nginx did not start on ${o.host}:${o.port}: ${await new Response(proc.stderr).text()}`);
    }
    await Bun.sleep(50);
  }
  return {
    proc,
    log: () =>
      readFileSync(logFile, "utf8")
        .split("\n")
        .flatMap((l) => {
          const m = l.match(/^([\d.]+) (\d{3}) (\d+) "\S+ (\S+)/);
          return m ? [{ ms: Number(m[1]) * 1000, status: Number(m[2]), bytes: Number(m[3]), path: m[4]! }] : [];
        }),
    stop,
  };
}

/** Requests and body bytes of log entries, all and chunk GETs only (store layout: chunks/ab/<sha>.zst). */
export function tally(lines: LogLine[]) {
  const chunks = lines.filter((l) => /\/chunks\/[0-9a-f]{2}\/[0-9a-f]{64}\.zst/.test(l.path));
  const sum = (xs: LogLine[]) => xs.reduce((a, l) => a + l.bytes, 0);
  return { requests: lines.length, bytes: sum(lines), chunkRequests: chunks.length, chunkBytes: sum(chunks) };
}
