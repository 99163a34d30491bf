// `inetboot serve`: a small static file server for block stores, manifests and boot payloads.
// GET/HEAD, one byte range per request, strong ETag + Last-Modified with 304s, no directory
// listings, nothing outside the root, one access-log line per request.
import { realpath, stat } from "node:fs/promises";
import { STATUS_CODES } from "node:http";
import { UserError, listenFailure } from "../sys/errors.ts";
import { httpDate, ifRangeHolds, makeEtag, notModified, parseRange } from "./http.ts";
import { resolveFile } from "./resolve.ts";

export interface ServeOptions {
  dir: string;
  /** TCP port; 0 picks a free one (default 8080). */
  port?: number;
  /** Address to bind (default 127.0.0.1; 0.0.0.0 or :: for every interface). */
  host?: string;
  /** No access log. */
  quiet?: boolean;
  /** Where access-log lines go (default stderr). */
  log?: (line: string) => void;
  /** https://: the certificate chain and its private key (PEM text). */
  tls?: { cert: string; key: string };
}

export interface RunningServer {
  port: number;
  /** Base URL, ending in "/". */
  url: string;
  /** The real path being served. */
  root: string;
  stop(): Promise<void>;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  let root: string;
  try {
    root = await realpath(opts.dir);
  } catch (e) {
    throw new UserError(`serve: cannot open ${opts.dir}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (!(await stat(root)).isDirectory()) throw new UserError(`serve: ${opts.dir} is not a directory`);
  const host = opts.host ?? "127.0.0.1";
  const log = opts.quiet ? undefined : (opts.log ?? ((l: string) => process.stderr.write(l + "\n")));

  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: host,
      port: opts.port ?? 8080,
      // Slow clients fetching big files must not be cut off mid-body.
      idleTimeout: 60,
      tls: opts.tls,
      async fetch(req, srv) {
        const t0 = performance.now();
        let res: Response;
        let bytes = 0;
        try {
          [res, bytes] = await handle(root, req, log);
        } catch (e) {
          res = plain(500);
          if (log) log(`serve: internal error: ${(e as Error).message}`);
        }
        if (log) {
          const ip = srv.requestIP(req)?.address ?? "-";
          const path = new URL(req.url).pathname;
          const range = req.headers.get("range");
          const ms = (performance.now() - t0).toFixed(1);
          log(`${ip} "${req.method} ${path}" ${res.status} ${bytes}${range ? ` range=${range}` : ""} ${ms}ms`);
        }
        return res;
      },
      // (the reason goes to the log, not to the client: it names paths on this machine)
      error(e) {
        if (log) log(`serve: internal error: ${e.message}`);
        return plain(500);
      },
    });
  } catch (e) {
    if (/KEY_VALUES_MISMATCH/.test(String((e as Error).message))) throw new UserError("serve: the key does not belong to the certificate (--key, --cert)");
    throw new UserError(`serve: cannot listen on ${host}:${opts.port ?? 8080}: ${listenFailure(e)}`);
  }
  const port = server.port!;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    port,
    root,
    url: `${opts.tls ? "https" : "http"}://${shownHost}:${port}/`,
    stop: async () => {
      await server.stop(true);
    },
  };
}

function plain(status: number, headers: Record<string, string> = {}): Response {
  return new Response(`${status} ${STATUS_CODES[status] ?? ""}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

/** Builds the response and the number of body bytes it will carry (for the log). */
async function handle(root: string, req: Request, warn?: (line: string) => void): Promise<[Response, number]> {
  const head = req.method === "HEAD";
  if (req.method !== "GET" && !head) return [plain(405, { allow: "GET, HEAD" }), 0];

  const found = await resolveFile(root, new URL(req.url).pathname);
  if (!found.ok) {
    if (found.status === 403 && found.why.startsWith("not readable")) warn?.(`serve: ${new URL(req.url).pathname}: ${found.why} (check its permissions)`);
    return [plain(found.status), 0];
  }
  const size = found.stat.size;
  const mtime = found.stat.mtimeMs;
  const etag = makeEtag(size, mtime);
  const lastModified = httpDate(mtime);
  const file = Bun.file(found.path);
  const headers: Record<string, string> = {
    etag,
    "last-modified": lastModified,
    "accept-ranges": "bytes",
    "content-type": file.type || "application/octet-stream",
  };

  if (notModified(req.headers, etag, mtime)) {
    return [new Response(null, { status: 304, headers: { etag, "last-modified": lastModified } }), 0];
  }

  let status = 200;
  let start = 0;
  let end = size - 1;
  if (ifRangeHolds(req.headers, etag, lastModified)) {
    const r = parseRange(req.headers.get("range"), size);
    if (r === "unsatisfiable") return [plain(416, { "content-range": `bytes */${size}` }), 0];
    if (r !== "none") {
      status = 206;
      start = r.start;
      end = r.end;
      headers["content-range"] = `bytes ${start}-${end}/${size}`;
    }
  }
  const length = Math.max(0, end - start + 1);
  headers["content-length"] = String(length);
  // Slice to the stat'ed size so the body always matches Content-Length even if the file grows.
  const body = head ? null : file.slice(start, end + 1);
  return [new Response(body, { status, headers }), head ? 0 : length];
}
