// Helpers shared by the NBD-over-HTTP-store tests and bench/nbd-vs-nbdkit.ts: a test image built
// by mkfs.ext4, nginx on a loopback port with an access log, and the real CLI (`inetboot serve`,
// `inetboot nbd`) as subprocesses whose stderr is collected while they run.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "../..");
export const MiB = 1 << 20;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program without blocking the event loop (servers under test may live in this process). */
export async function run(cmd: string[], timeoutMs = 30_000): Promise<RunResult> {
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

export const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
export const shaFile = (path: string) => sha(readFileSync(path));

/** sha256 over every file (path + bytes) below dir: "did anything in the store change?" */
export function hashTree(dir: string): string {
  const h = createHash("sha256");
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else h.update(p.slice(dir.length) + "\0").update(readFileSync(p)).update(`\0${st.mtimeMs}\0`);
    }
  };
  walk(dir);
  return h.digest("hex");
}

/** An ext4 image holding real programs (compressible, some duplicate blocks) with zero regions
 *  between them, as a real disk image has. */
export function makeExt4Image(dir: string, sizeMiB: number, files: string[]): string {
  const tree = join(dir, "tree");
  mkdirSync(tree, { recursive: true });
  for (const f of files) if (existsSync(f)) copyFileSync(f, join(tree, f.split("/").pop()!));
  // the same file twice: chunk deduplication in the store
  copyFileSync(files.find(existsSync)!, join(tree, "copy-of-first"));
  const img = join(dir, "disk.img");
  const r = Bun.spawnSync(["mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", tree, img, `${sizeMiB}M`], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`mkfs.ext4 failed: ${r.stderr.toString()}`);
  return img;
}

/** Collects a subprocess's stderr into a string as it arrives; waitFor resolves on a match. */
class StderrTap {
  text = "";
  private ended = false;
  private waiters: (() => void)[] = [];
  constructor(stream: ReadableStream<Uint8Array>) {
    const dec = new TextDecoder();
    void (async () => {
      for await (const chunk of stream) {
        this.text += dec.decode(chunk);
        this.waiters.splice(0).forEach((w) => w());
      }
      this.ended = true;
      this.waiters.splice(0).forEach((w) => w());
    })();
  }
  async waitFor(re: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.text);
      if (m) return m;
      if (this.ended) throw new Error(`process ended before ${re}: ${this.text}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}: ${this.text}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, left);
      });
    }
  }
}

export interface CliProcess {
  proc: Bun.Subprocess<"ignore", "ignore", "pipe">;
  err: StderrTap;
  /** SIGINT, then wait; returns the exit code */
  stop(): Promise<number>;
}

function spawnCli(args: string[], env?: Record<string, string>): CliProcess {
  const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe", env: env && { ...process.env, ...env } });
  const err = new StderrTap(proc.stderr);
  return {
    proc,
    err,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGINT");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
}

export interface ServeProcess extends CliProcess {
  url: string;
  /** access-log lines (one per request) seen so far */
  lines(): string[];
}

/** `inetboot serve DIR --port P ...extra` (P = 0: any free port). */
export async function startServe(dir: string, port = 0, extra: string[] = []): Promise<ServeProcess> {
  const c = spawnCli(["serve", dir, "--port", String(port), ...extra]);
  const m = await c.err.waitFor(/serving .* at (https?:\S+)\n/);
  return { ...c, url: m[1]!, lines: () => c.err.text.split("\n").filter((l) => /"(GET|HEAD) /.test(l)) };
}

export interface NbdProcess extends CliProcess {
  uri: string;
}

/** `inetboot nbd SOURCE ...args`; resolves once it announced its NBD URI. */
export async function startNbd(source: string, args: string[], env?: Record<string, string>): Promise<NbdProcess> {
  const c = spawnCli(["nbd", source, ...args], env);
  const m = await c.err.waitFor(/serving .* on (nbd\S+)\n/);
  return { ...c, uri: m[1]! };
}

export interface Nginx {
  url: string;
  port: number;
  /** request lines of the access log ("GET /store/index 200 ...") */
  lines(): string[];
  stop(): Promise<void>;
}

/** nginx.conf for a foreground, single-process nginx serving `root`, everything kept in workDir. */
export function nginxConfig(o: { workDir: string; root: string; listen: string; accessLog: string; logFormat: string; tls?: NginxTls; server?: string }): string {
  const w = o.workDir;
  const tmp = `${w}/tmp`;
  return `daemon off;
master_process off;
worker_processes 1;
user root;
pid ${w}/nginx.pid;
error_log ${w}/error.log;
events { worker_connections 256; }
http {
  log_format req ${o.logFormat};
  access_log ${o.accessLog} req;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  keepalive_timeout 300s;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  server {
    listen ${o.listen}${o.tls ? ` ssl;\n    ssl_certificate ${o.tls.cert};\n    ssl_certificate_key ${o.tls.key}` : ""};
    root ${o.root};${o.server ? `\n    ${o.server}` : ""}
  }
}
`;
}

/** A server certificate and its key (PEM files) for nginx to serve https:// with. */
export interface NginxTls {
  cert: string;
  key: string;
}

/** Where and how startNginx's server runs besides root, port and TLS. */
export interface NginxMore {
  /** listen on this address instead of 127.0.0.1, run by `exec` (inside a network namespace) */
  host?: string;
  exec?: string[];
  /** more directives for the server block (auth_basic ...) */
  server?: string;
}

/** Debian's nginx serving `root` on a loopback port, one access-log line per request (ending in
 *  the user, if any, and the client's address); https:// with `tls`. */
export async function startNginx(root: string, workDir: string, port = freePort(), tls?: NginxTls, at: NginxMore = {}): Promise<Nginx> {
  mkdirSync(join(workDir, "tmp"), { recursive: true });
  const log = join(workDir, "access.log");
  writeFileSync(log, "");
  const conf = join(workDir, "nginx.conf");
  const host = at.host ?? "127.0.0.1";
  writeFileSync(conf, nginxConfig({ workDir, root, listen: `${host}:${port}`, accessLog: log, logFormat: `'"$request" $status $body_bytes_sent $remote_user $remote_addr'`, tls, server: at.server }));
  const proc = Bun.spawn([...(at.exec ?? []), "nginx", "-p", workDir, "-c", conf], { stderr: "pipe", stdout: "ignore", stdin: "ignore" });
  const url = `${tls ? "https" : "http"}://${host}:${port}/`;
  for (let i = 0; ; i++) {
    // (readiness only: the tests check the certificate themselves)
    if (await fetch(url, { method: "HEAD", tls: { rejectUnauthorized: false } }).then(() => true, () => false)) break;
    if (proc.exitCode !== null || i > 100) throw new Error(`nginx did not start: ${await new Response(proc.stderr).text()}`);
    await Bun.sleep(50);
  }
  return {
    url,
    port,
    lines: () => readFileSync(log, "utf8").split("\n").filter(Boolean),
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** The chunk GETs among access-log lines. */
export const chunkGets = (lines: string[]) => lines.filter((l) => /"GET \S*\/chunks\/[0-9a-f]{2}\/[0-9a-f]{64}\.zst/.test(l));
