// A small HTTP/1.1 client on raw TCP (Bun.connect) for the fetcher's hot path: chunk and Range
// GETs to http:// and https:// servers. Bun's fetch costs ~0.25 ms per request on loopback; this
// costs a write and a parse (and over TLS, no copy through fetch's HTTP thread: a cold store copy
// over https 0.69 s instead of 0.80). Keep-alive connections are pooled per origin and reused;
// bodies are framed by Content-Length, chunked transfer coding, or connection close. No
// redirects, pipelining or compression: the caller (HttpPool) falls back to fetch for those.
//
// TLS: the same CAs as fetch (src/fetch/trust.ts), the certificate checked against the URL's host
// name, and nothing (no request, no credentials) written before the handshake verified it; a
// refusal rejects with the TLS error's code, so the caller reports it as fetch's would be.
//
// Failure semantics the mirror layer relies on: a body shorter than announced, a connection that
// dies mid-response, a malformed head or an abort (timeout) always rejects; the connection is then
// destroyed, never reused. A request that fails on a *reused* idle connection before any response
// byte arrived (the server closed it while idle) is retried once on a fresh connection.
import type { Socket } from "bun";
import { concatBytes } from "../../sys/bytes.ts";
import { tlsOptions } from "../../fetch/trust.ts";

export class Http1Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Http1Error";
  }
}

export interface Http1Response {
  status: number;
  /** header names lowercased; repeated headers joined with ", " */
  headers: Map<string, string>;
  body: Uint8Array;
}

export interface Http1RequestOptions {
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Called once the head is parsed; returning false means "body not wanted" (it is drained if
   *  small, else the connection is dropped) and the response comes back with an empty body. */
  wantBody?: (status: number, headers: Map<string, string>) => boolean;
  /** a wanted body longer than this fails the request (Http1Error) before it is all in memory */
  maxBody?: number;
}

export interface Http1Options {
  /** idle connections kept per origin (default 32) */
  maxIdlePerOrigin?: number;
  /** close a connection idle this long (default 20 s; servers drop idle ones too) */
  idleMs?: number;
}

const MAX_HEAD = 64 * 1024;
/** an unwanted body up to this size is read and discarded to keep the connection */
const DRAIN_MAX = 64 * 1024;
const CRLFCRLF = [13, 10, 13, 10];

function indexOfSeq(buf: Uint8Array, seq: number[], from: number): number {
  const first = seq[0]!;
  for (let i = buf.indexOf(first, from); i >= 0 && i + seq.length <= buf.length; i = buf.indexOf(first, i + 1)) {
    let k = 1;
    while (k < seq.length && buf[i + k] === seq[k]) k++;
    if (k === seq.length) return i;
  }
  return -1;
}


type Framing = "none" | "length" | "chunked" | "close";

/** One in-flight exchange: parses the response as bytes arrive. */
class Exchange {
  gotBytes = false;
  private head: Uint8Array | null = null; // partial head bytes
  private status = 0;
  private headers = new Map<string, string>();
  private framing: Framing = "none";
  private want = true;
  private remaining = 0; // length framing: bytes left; chunked: bytes left in this chunk
  private body: Uint8Array | null = null; // length framing target
  private filled = 0;
  private parts: Uint8Array[] = []; // chunked / close framing
  private partsLen = 0;
  private chunkState: "size" | "data" | "crlf" | "trailer" = "size";
  private line: number[] = []; // chunked size/trailer line being read
  /** the connection may carry another request afterwards */
  reusable = true;
  done = false;

  constructor(
    private isHead: boolean,
    private wantBody: Http1RequestOptions["wantBody"],
    private maxBody: number,
    readonly resolve: (r: Http1Response) => void,
    readonly reject: (e: Error) => void,
  ) {}

  private tooLong(n: number): Http1Error {
    return new Http1Error(`body of ${n} bytes or more, longer than the ${this.maxBody} expected at most`);
  }

  /** Feeds bytes; returns true when the response is complete. Throws Http1Error on bad framing. */
  feed(data: Uint8Array): boolean {
    this.gotBytes = true;
    if (this.status === 0) {
      const buf = this.head ? concatBytes([this.head, data], this.head.length + data.length) : data;
      const end = indexOfSeq(buf, CRLFCRLF, this.head ? Math.max(0, this.head.length - 3) : 0);
      if (end < 0) {
        if (buf.length > MAX_HEAD) throw new Http1Error(`response head larger than ${MAX_HEAD} bytes`);
        this.head = buf === data ? data.slice() : buf; // Bun may reuse its receive buffer
        return false;
      }
      this.head = null;
      this.parseHead(Buffer.from(buf.buffer, buf.byteOffset, end).toString("latin1"));
      if (this.status === 0) {
        // an interim 1xx response: the real one follows
        return this.feed(buf.subarray(end + 4));
      }
      data = buf.subarray(end + 4);
      if (this.framing === "none") return this.finish(data);
    }
    switch (this.framing) {
      case "length": {
        const n = Math.min(this.remaining, data.length);
        if (this.want) {
          if (this.filled === 0 && n === this.remaining) {
            // The whole body in one piece (the usual case on a LAN: Bun reads up to 512 KiB at
            // once): keep a view of it. Bun hands every data callback a buffer of its own.
            this.body = data.subarray(0, n);
          } else {
            // Every byte is written before the body is handed out: no need to zero it.
            this.body ??= Bun.allocUnsafe(this.filled + this.remaining);
            this.body.set(data.subarray(0, n), this.filled);
          }
        }
        this.filled += n;
        this.remaining -= n;
        return this.remaining === 0 ? this.finish(data.subarray(n)) : false;
      }
      case "chunked":
        return this.feedChunked(data);
      case "close":
        if (this.want) this.parts.push(data.slice());
        this.partsLen += data.length;
        if (this.want && this.partsLen > this.maxBody) throw this.tooLong(this.partsLen);
        return false;
    }
    return false;
  }

  private parseHead(text: string): void {
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
    if (!m) throw new Http1Error(`bad status line "${(lines[0] ?? "").slice(0, 80)}"`);
    const status = Number(m[2]);
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const c = l.indexOf(":");
      if (c <= 0) throw new Http1Error(`bad header line "${l.slice(0, 80)}"`);
      const k = l.slice(0, c).trim().toLowerCase();
      const v = l.slice(c + 1).trim();
      const old = headers.get(k);
      headers.set(k, old === undefined ? v : `${old}, ${v}`);
    }
    if (status >= 100 && status < 200 && status !== 101) return; // 1xx: keep status 0, parse the next head
    this.status = status;
    this.headers = headers;
    const conn = (headers.get("connection") ?? "").toLowerCase();
    if (conn.includes("close") || (m[1] === "0" && !conn.includes("keep-alive"))) this.reusable = false;
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (this.isHead || status === 204 || status === 304) this.framing = "none";
    else if (te !== undefined) {
      if (!/(^|,)\s*chunked\s*$/i.test(te)) throw new Http1Error(`unsupported Transfer-Encoding "${te}"`);
      this.framing = "chunked";
    } else if (cl !== undefined) {
      if (!/^\d+$/.test(cl)) throw new Http1Error(`bad Content-Length "${cl}"`);
      this.framing = "length";
      this.remaining = Number(cl);
    } else {
      this.framing = "close";
      this.reusable = false;
    }
    this.want = this.wantBody ? this.wantBody(status, headers) : true;
    if (this.want && this.framing === "length" && this.remaining > this.maxBody) throw this.tooLong(this.remaining);
    if (!this.want && !(this.framing === "length" && this.remaining <= DRAIN_MAX)) {
      // Not worth reading: answer now and drop the connection.
      this.reusable = false;
      this.framing = "none";
      return;
    }
    if (this.framing === "length" && this.want && this.remaining === 0) this.body = new Uint8Array(0);
  }

  private feedChunked(data: Uint8Array): boolean {
    let i = 0;
    while (i < data.length) {
      if (this.chunkState === "data") {
        const n = Math.min(this.remaining, data.length - i);
        if (this.want) this.parts.push(data.slice(i, i + n));
        this.partsLen += n;
        if (this.want && this.partsLen > this.maxBody) throw this.tooLong(this.partsLen);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.chunkState = "crlf";
        continue;
      }
      // line-oriented states: size line, CRLF after data, trailer lines
      const b = data[i++]!;
      if (b !== 10) {
        if (b !== 13) this.line.push(b);
        if (this.line.length > 1024) throw new Http1Error("chunk size line too long");
        continue;
      }
      const line = String.fromCharCode(...this.line);
      this.line = [];
      if (this.chunkState === "crlf") {
        if (line !== "") throw new Http1Error("missing CRLF after chunk data");
        this.chunkState = "size";
      } else if (this.chunkState === "size") {
        const m = /^([0-9a-fA-F]+)\s*(;.*)?$/.exec(line);
        if (!m) throw new Http1Error(`bad chunk size line "${line.slice(0, 40)}"`);
        this.remaining = parseInt(m[1]!, 16);
        this.chunkState = this.remaining === 0 ? "trailer" : "data";
      } else if (line === "") {
        return this.finish(data.subarray(i)); // end of trailers
      }
    }
    return false;
  }

  /** Called on EOF: completes a close-framed body, else the response is cut short. */
  eof(): void {
    if (this.done) return;
    if (this.status !== 0 && this.framing === "close") {
      this.finish(new Uint8Array(0));
      return;
    }
    let why = "connection closed before a response";
    if (this.status !== 0 && this.framing === "length") why = `short body: connection closed after ${this.filled} of ${this.filled + this.remaining} bytes`;
    else if (this.status !== 0) why = "connection closed inside a chunked body";
    this.fail(new Http1Error(why));
  }

  private finish(rest: Uint8Array): boolean {
    if (rest.length > 0) this.reusable = false; // bytes we did not ask for: do not trust the stream
    this.done = true;
    let body: Uint8Array;
    if (!this.want) body = new Uint8Array(0);
    else if (this.framing === "length") body = this.body ?? new Uint8Array(0);
    else body = concatBytes(this.parts, this.partsLen);
    this.resolve({ status: this.status, headers: this.headers, body });
    return true;
  }

  fail(e: Error): void {
    if (this.done) return;
    this.done = true;
    this.reusable = false;
    this.reject(e);
  }
}

interface ConnData {
  conn: Conn;
}

class Conn {
  sock: Socket<ConnData> | null = null;
  /** TLS: settles when the handshake is done and the certificate checked */
  verified: { resolve: () => void; reject: (e: Error) => void } | null = null;
  ex: Exchange | null = null;
  closed = false;
  uses = 0;
  idleTimer: ReturnType<typeof setTimeout> | null = null;
  private out = "";
  onIdleClose: (() => void) | null = null;
  /** puts the connection back in its pool (set per exchange) */
  release: (() => void) | null = null;

  write(s: string): void {
    if (this.out) {
      this.out += s;
      return;
    }
    const n = this.sock!.write(s);
    if (n < s.length) this.out = s.slice(Math.max(0, n)); // request heads are ASCII: chars = bytes
  }

  drain(): void {
    if (!this.out || !this.sock) return;
    const s = this.out;
    this.out = "";
    this.write(s);
  }

  data(d: Uint8Array): void {
    const ex = this.ex;
    if (!ex) {
      this.destroy(); // bytes while idle: the stream is out of step
      return;
    }
    try {
      if (ex.feed(d)) {
        // Complete: back to the pool synchronously, before the caller's continuation runs (it
        // may want to send the next request on this very connection).
        this.ex = null;
        if (!ex.reusable) this.destroy();
        else this.release?.();
      }
    } catch (e) {
      this.ex = null;
      ex.fail(e as Error);
      this.destroy();
    }
  }

  eof(): void {
    if (this.closed) return;
    this.closed = true;
    // closed before the TLS handshake finished: a server that does not speak TLS on this port
    const v = this.verified;
    this.verified = null;
    v?.reject(Object.assign(new Http1Error("TLS handshake failed"), { code: "EPROTO" }));
    const ex = this.ex;
    this.ex = null;
    ex?.eof();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.onIdleClose?.();
  }

  destroy(): void {
    if (!this.closed) {
      this.sock?.terminate();
      this.eof();
    }
  }
}

const handlers = {
  data(s: Socket<ConnData>, d: Uint8Array) {
    s.data.conn.data(d);
  },
  drain(s: Socket<ConnData>) {
    s.data.conn.drain();
  },
  end(s: Socket<ConnData>) {
    s.data.conn.eof();
  },
  close(s: Socket<ConnData>) {
    s.data.conn.eof();
  },
  error(s: Socket<ConnData>) {
    s.data.conn.eof();
  },
  connectError() {},
  handshake(s: Socket<ConnData>, success: boolean, err: (Error & { code?: string }) | null) {
    const c = s.data.conn;
    const v = c.verified;
    c.verified = null;
    if (success && !err) return v?.resolve();
    // refused: nothing (no request, no credentials) may go to this server
    const e = Object.assign(new Http1Error(err?.message ?? "TLS handshake failed"), { code: err?.code ?? "ERR_TLS_HANDSHAKE" });
    s.terminate();
    v?.reject(e);
  },
};

export class Http1Client {
  private idle = new Map<string, Conn[]>();
  private maxIdle: number;
  private idleMs: number;
  /** connections opened / requests served on a reused connection (tests, stats) */
  opened = 0;
  reused = 0;

  constructor(opts: Http1Options = {}) {
    this.maxIdle = opts.maxIdlePerOrigin ?? 32;
    this.idleMs = opts.idleMs ?? 20_000;
  }

  /** true for URLs this client handles (http and https). */
  static handles(url: string): boolean {
    return url.startsWith("http://") || url.startsWith("https://");
  }

  async request(url: string, opts: Http1RequestOptions = {}): Promise<Http1Response> {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Http1Error(`${u.protocol} URLs are not supported`);
    const tls = u.protocol === "https:";
    if (opts.signal?.aborted) throw new Http1Error("aborted");
    const host = u.hostname.replace(/^\[|\]$/g, "");
    const port = Number(u.port || (tls ? 443 : 80));
    const key = `${u.protocol}${host}:${port}`;
    let head = `${opts.method ?? "GET"} ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n`;
    // user:password@ in the URL is HTTP Basic authentication, as in fetch() (https:// goes there)
    if (u.username || u.password) head += `Authorization: Basic ${basicCredentials(u)}\r\n`;
    for (const [k, v] of Object.entries(opts.headers ?? {})) head += `${k}: ${v}\r\n`;
    head += "\r\n";
    const isHead = opts.method === "HEAD";
    const reusedConn = this.takeIdle(key);
    if (reusedConn) {
      try {
        return await this.exchange(reusedConn, key, head, isHead, opts);
      } catch (e) {
        // A reused connection that died before answering was most likely closed by the server
        // while idle: GET and HEAD are safe to send again, once, on a fresh connection.
        if (!(e instanceof StaleConnection) || opts.signal?.aborted) throw e instanceof StaleConnection ? e.cause : e;
      }
    }
    const conn = await this.connect(host, port, opts.signal, tls);
    return this.exchange(conn, key, head, isHead, opts).catch((e) => {
      throw e instanceof StaleConnection ? e.cause : e;
    });
  }

  private takeIdle(key: string): Conn | null {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (c.closed) continue;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = null;
      c.onIdleClose = null;
      c.sock?.ref();
      this.reused++;
      return c;
    }
    return null;
  }

  private putIdle(key: string, c: Conn): void {
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    if (list.length >= this.maxIdle) return c.destroy();
    list.push(c);
    c.sock?.unref(); // an idle connection must not keep a CLI process alive
    c.onIdleClose = () => {
      const i = list!.indexOf(c);
      if (i >= 0) list!.splice(i, 1);
    };
    c.idleTimer = setTimeout(() => c.destroy(), this.idleMs);
    (c.idleTimer as { unref?: () => void }).unref?.();
  }

  private async connect(host: string, port: number, signal?: AbortSignal, tls = false): Promise<Conn> {
    const conn = new Conn();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, rej) => {
      onAbort = () => rej(new Http1Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    const verified = tls ? new Promise<void>((resolve, reject) => (conn.verified = { resolve, reject })) : null;
    verified?.catch(() => {}); // it may fail while the connect is still awaited: not "unhandled"
    const tlsOpts = tls ? { ...(tlsOptions() ?? {}), serverName: host } : undefined;
    const connecting = Bun.connect<ConnData>({ hostname: host, port, socket: handlers, data: { conn }, ...(tlsOpts ? { tls: tlsOpts } : {}) } as never) as unknown as Promise<Socket<ConnData>>;
    try {
      conn.sock = await Promise.race([connecting, aborted]);
      if (verified) await Promise.race([verified, aborted]);
    } catch (e) {
      connecting.then((s) => s.terminate(), () => {});
      const msg = (e as Error).message ?? String(e);
      // keep the code: a refused certificate must stay recognisable as one (fetch/errors.ts)
      throw Object.assign(new Http1Error(msg === "aborted" ? msg : `connect ${host}:${port}: ${msg}`), { code: (e as { code?: string }).code });
    } finally {
      signal?.removeEventListener("abort", onAbort!);
    }
    this.opened++;
    conn.sock.setNoDelay(true);
    return conn;
  }

  private exchange(conn: Conn, key: string, head: string, isHead: boolean, opts: Http1RequestOptions): Promise<Http1Response> {
    const reused = conn.uses > 0;
    conn.uses++;
    return new Promise<Http1Response>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = () => {
        conn.ex?.fail(new Http1Error("aborted"));
        conn.ex = null;
        conn.destroy();
      };
      const ex = new Exchange(
        isHead,
        opts.wantBody,
        opts.maxBody ?? Number.POSITIVE_INFINITY,
        (r) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(r);
        },
        (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(reused && !ex.gotBytes && !signal?.aborted ? new StaleConnection(e) : e);
        },
      );
      if (conn.closed) return ex.fail(new Http1Error("connection closed before a response"));
      conn.ex = ex;
      conn.release = () => this.putIdle(key, conn);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        conn.write(head);
      } catch (e) {
        ex.fail(new Http1Error(`write: ${(e as Error).message}`));
        conn.destroy();
      }
    });
  }

  /** Closes idle connections; later requests still work (they open new ones). */
  close(): void {
    for (const list of this.idle.values()) for (const c of list.splice(0)) c.destroy();
  }
}

class StaleConnection extends Error {
  constructor(readonly cause: Error) {
    super(cause.message);
  }
}

/** base64("user:password") of a URL's percent-decoded userinfo (RFC 7617). */
export function basicCredentials(u: URL): string {
  return Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64");
}
