// NBD server I/O: listens on a unix socket or TCP port, runs the handshake table, then serves
// requests concurrently, answering by handle in completion order. Each reply's frames are queued
// as one unit, so frames of different replies never interleave on the socket.
import { unlinkSync, existsSync, lstatSync } from "node:fs";
import type { Socket, SocketListener } from "bun";
import type { BlockSource } from "../store/source.ts";
import { UserError, listenFailure } from "../sys/errors.ts";
import { decodeRequest, type Request } from "./codec.ts";
import { Handshake, type ExportDesc } from "./handshake.ts";
import { CMD, MAX_REQUEST, REQUEST_MAGIC, REQUEST_SIZE } from "./protocol.ts";
import { CMD_NAME, errorReply, execute, NbdReplyError, type Session } from "./transmission.ts";
import { NBD_ERR } from "./protocol.ts";

export interface NbdServerOptions {
  source: BlockSource;
  /** "unix:/path" or "tcp:HOST:PORT" (PORT 0 picks a free one). */
  listen: string;
  exportName?: string;
  description?: string;
  /** Called with one line when a connection ends abnormally (default: silent). */
  log?: (line: string) => void;
  /** Where the lines about requests the source failed go (default: `log`). */
  errorLog?: (line: string) => void;
}

export interface NbdServer {
  /** nbd://HOST:PORT/NAME or nbd+unix:///NAME?socket=PATH */
  address: string;
  /** Stops accepting; each connection stops reading requests and ends once the replies to those
   *  in flight are sent (as at a client's DISC), or after `graceMs` (default 5 s) at the latest. */
  close(graceMs?: number): Promise<void>;
}

export type ListenSpec = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export function parseListen(spec: string): ListenSpec {
  if (spec.startsWith("unix:")) {
    const path = spec.slice(5);
    if (!path) throw new UserError(`--listen ${spec}: empty socket path`);
    return { kind: "unix", path };
  }
  const m = /^tcp:(\[[^\]]+\]|[^:]+):(\d+)$/.exec(spec);
  if (!m) throw new UserError(`--listen ${spec}: expected unix:PATH or tcp:HOST:PORT`);
  const port = Number(m[2]);
  if (port > 65535) throw new UserError(`--listen ${spec}: port out of range`);
  return { kind: "tcp", host: m[1].replace(/^\[|\]$/g, ""), port };
}

/** Limits that turn into backpressure on the reading side. */
const MAX_INFLIGHT = 64;
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** Frames smaller than this are merged into one write. */
const MERGE_BELOW = 64 * 1024;

/** A growable byte buffer with a read cursor (data arrives in arbitrary pieces). */
class ByteQueue {
  private buf = new Uint8Array(64 * 1024);
  private start = 0;
  private end = 0;
  get length() {
    return this.end - this.start;
  }
  push(chunk: Uint8Array) {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.length;
      if (live + chunk.length <= this.buf.length / 2) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let cap = this.buf.length;
        while (cap < (live + chunk.length) * 2) cap *= 2;
        const nb = new Uint8Array(cap);
        nb.set(this.buf.subarray(this.start, this.end));
        this.buf = nb;
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
  /** A view valid until the next push: copy anything kept across awaits. */
  peek(n = this.length): Uint8Array {
    return this.buf.subarray(this.start, this.start + n);
  }
  consume(n: number) {
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
  }
}

class Connection {
  private in = new ByteQueue();
  private out: Uint8Array[] = [];
  private outBytes = 0;
  private hs: Handshake;
  private session: Session | null = null;
  private inflight = 0;
  /** Bytes of an oversized WRITE payload still to discard. */
  private skip = 0;
  /** Stop reading requests; end the socket once in-flight replies are out. */
  private stopping = false;
  private ended = false;
  private paused = false;
  /** Resolves once the socket is ended or closed. */
  readonly gone = Promise.withResolvers<void>();

  constructor(
    private sock: Socket<unknown>,
    private exp: ExportDesc,
    private source: BlockSource,
    private log: (line: string) => void,
    private onSourceError?: Session["onSourceError"],
  ) {
    this.hs = new Handshake(exp);
    this.send([this.hs.greeting()]);
  }

  onData(chunk: Uint8Array) {
    if (this.ended || this.stopping) return;
    this.in.push(chunk);
    this.pump();
  }

  onDrain() {
    while (this.out.length > 0) {
      const f = this.out[0];
      const n = Math.max(0, this.sock.write(f));
      this.outBytes -= n;
      if (n < f.length) {
        this.out[0] = f.subarray(n);
        return;
      }
      this.out.shift();
    }
    this.afterProgress();
  }

  onClose() {
    this.ended = true;
    this.out = [];
    this.gone.resolve();
  }

  /** The client shut its sending side (libnbd does after DISC): as DISC, the replies to requests
   *  in flight are still sent, then the socket ends. */
  onEnd() {
    this.finish("");
  }

  /** The server is stopping: no more requests; those in flight are answered first. */
  shutdown(): Promise<void> {
    this.finish("");
    return this.gone.promise;
  }

  /** Queues one reply's frames as a unit. */
  private send(frames: Uint8Array[]) {
    if (this.ended) return;
    const total = frames.reduce((a, f) => a + f.length, 0);
    if (frames.length > 1 && total <= MERGE_BELOW) {
      const m = new Uint8Array(total);
      let p = 0;
      for (const f of frames) (m.set(f, p), (p += f.length));
      frames = [m];
    }
    for (const f of frames) {
      if (this.out.length === 0) {
        const n = Math.max(0, this.sock.write(f));
        if (n < f.length) {
          this.out.push(f.subarray(n));
          this.outBytes += f.length - n;
        }
      } else {
        this.out.push(f);
        this.outBytes += f.length;
      }
    }
  }

  private finish(why: string) {
    if (why) this.log(why);
    this.stopping = true;
    this.afterProgress();
  }

  /** Ends the socket when stopping and all is written; resumes reading when pressure drops. */
  private afterProgress() {
    if (this.ended) return;
    if (this.stopping) {
      if (this.inflight === 0 && this.out.length === 0) {
        this.ended = true;
        this.sock.end();
        this.gone.resolve();
      }
      return;
    }
    if (this.paused && this.inflight < MAX_INFLIGHT && this.outBytes < MAX_QUEUED_BYTES) {
      this.paused = false;
      this.sock.resume();
      this.pump();
    }
  }

  private pump() {
    try {
      if (!this.session) {
        const r = this.hs.feed(this.in.peek());
        this.in.consume(r.consumed);
        if (r.send.length) this.send(r.send);
        if (this.hs.state === "CLOSED") return this.finish("");
        if (this.hs.state !== "TRANSMISSION") return;
        this.session = { source: this.source, neg: this.hs.negotiated(), onSourceError: this.onSourceError };
      }
      this.pumpRequests();
    } catch (e) {
      // A bug must cost one connection, never the server.
      this.log(`nbd: connection error: ${e instanceof Error ? e.message : String(e)}`);
      this.ended = true;
      this.sock.end();
      this.gone.resolve();
    }
  }

  private pumpRequests() {
    const s = this.session!;
    while (!this.stopping) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.in.length);
        this.in.consume(n);
        this.skip -= n;
        if (this.skip > 0) return;
      }
      if (this.inflight >= MAX_INFLIGHT || this.outBytes >= MAX_QUEUED_BYTES) {
        if (!this.paused) (this.paused = true), this.sock.pause();
        return;
      }
      if (this.in.length < REQUEST_SIZE) return;
      const req = decodeRequest(this.in.peek(REQUEST_SIZE));
      if (req.magic !== REQUEST_MAGIC) {
        this.in.consume(this.in.length);
        return this.finish("nbd: bad request magic, disconnecting");
      }
      if (req.type === CMD.DISC) {
        this.in.consume(REQUEST_SIZE);
        return this.finish("");
      }
      let payload: Uint8Array | null = null;
      if (req.type === CMD.WRITE) {
        if (req.length > MAX_REQUEST) {
          // Too big to hold: discard the payload as it streams in, answer with an error.
          this.in.consume(REQUEST_SIZE);
          this.skip = req.length;
          this.send(errorReply(req, s, new NbdReplyError(NBD_ERR.EINVAL, `WRITE of ${req.length} bytes exceeds the ${MAX_REQUEST}-byte maximum`)));
          continue;
        }
        if (this.in.length < REQUEST_SIZE + req.length) return;
        payload = this.in.peek(REQUEST_SIZE + req.length).slice(REQUEST_SIZE);
        this.in.consume(REQUEST_SIZE + req.length);
      } else {
        this.in.consume(REQUEST_SIZE);
      }
      this.run(req, payload, s);
    }
  }

  private run(req: Request, payload: Uint8Array | null, s: Session) {
    this.inflight++;
    execute(req, payload, s)
      .catch((e) => errorReply(req, s, e))
      .then((frames) => {
        this.inflight--;
        this.send(frames);
        this.afterProgress();
        if (!this.stopping && !this.paused) this.pump();
      });
  }
}

/** One log line per request the source failed (an EIO the client sees: which chunk, which mirror,
 *  why), at most 10 per 10 s; the rest are counted in the next line (a dead store fails every read). */
function sourceErrorLog(log: (line: string) => void): Session["onSourceError"] {
  const WINDOW_MS = 10_000, MAX = 10;
  let windowStart = 0, inWindow = 0, dropped = 0;
  return (req, e) => {
    const now = performance.now();
    if (now - windowStart > WINDOW_MS) (windowStart = now), (inWindow = 0);
    if (++inWindow > MAX) return void dropped++;
    const more = dropped ? ` (and ${dropped} more failed requests before this one)` : "";
    dropped = 0;
    const what = CMD_NAME.get(req.type) ?? `command ${req.type}`;
    log(`nbd: ${what} ${req.offset}+${req.length} failed: ${e instanceof Error ? e.message : String(e)}${more}`);
  };
}

/** Does something accept connections on this unix socket? (A stale file refuses them.) */
async function answers(path: string): Promise<boolean> {
  try {
    const s = await Promise.race([
      Bun.connect({ unix: path, socket: { data() {} } }),
      Bun.sleep(1000).then(() => null),
    ]);
    s?.end();
    return s !== null;
  } catch {
    return false;
  }
}

function addressOf(l: ListenSpec, name: string, port: number): string {
  const path = name ? "/" + encodeURIComponent(name) : "";
  if (l.kind === "unix") return `nbd+unix://${path || "/"}?socket=${l.path}`;
  const host = l.host.includes(":") ? `[${l.host}]` : l.host;
  return `nbd://${host}:${port}${path}`;
}

export async function startNbdServer(opts: NbdServerOptions): Promise<NbdServer> {
  const l = parseListen(opts.listen);
  const exp: ExportDesc = {
    name: opts.exportName ?? "",
    description: opts.description,
    size: opts.source.size,
    readOnly: opts.source.readOnly,
    blockSize: opts.source.blockSize,
  };
  const log = opts.log ?? (() => {});
  const onSourceError = sourceErrorLog(opts.errorLog ?? log);
  const conns = new Map<Socket<unknown>, Connection>();
  const handlers = {
    open(sock: Socket<unknown>) {
      conns.set(sock, new Connection(sock, exp, opts.source, log, onSourceError));
    },
    data(sock: Socket<unknown>, data: Uint8Array) {
      conns.get(sock)?.onData(data);
    },
    drain(sock: Socket<unknown>) {
      conns.get(sock)?.onDrain();
    },
    end(sock: Socket<unknown>) {
      conns.get(sock)?.onEnd();
    },
    close(sock: Socket<unknown>) {
      conns.get(sock)?.onClose();
      conns.delete(sock);
    },
    error(sock: Socket<unknown>, err: Error) {
      log(`nbd: socket error: ${err.message}`);
      conns.get(sock)?.onClose();
      conns.delete(sock);
    },
  };
  let listener: SocketListener<unknown>;
  if (l.kind === "unix") {
    // A stale socket file from an earlier run would make bind fail with EADDRINUSE: remove it,
    // unless a server still answers there (taking its path would cut it off from new clients).
    if (existsSync(l.path) && lstatSync(l.path).isSocket()) {
      if (await answers(l.path)) throw new UserError(`listen(unix:${l.path}): address already in use (a server is listening there)`);
      unlinkSync(l.path);
    }
    try {
      listener = Bun.listen({ unix: l.path, socket: handlers, binaryType: "uint8array", allowHalfOpen: true } as never);
    } catch (e) {
      throw new UserError(`listen(unix:${l.path}): ${listenFailure(e)}`);
    }
  } else {
    try {
      listener = Bun.listen({ hostname: l.host, port: l.port, socket: handlers, binaryType: "uint8array", allowHalfOpen: true } as never);
    } catch (e) {
      throw new UserError(`listen(tcp:${l.host}:${l.port}): ${listenFailure(e)}`);
    }
  }
  const port = l.kind === "tcp" ? (listener as unknown as { port: number }).port : 0;
  return {
    address: addressOf(l, exp.name, port),
    async close(graceMs = 5000) {
      listener.stop(false);
      const all = Promise.all([...conns.values()].map((c) => c.shutdown()));
      let timer: Timer | undefined;
      await Promise.race([all, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const s of conns.keys()) s.terminate();
      conns.clear();
      if (l.kind === "unix" && existsSync(l.path)) {
        try {
          unlinkSync(l.path);
        } catch {}
      }
    },
  };
}
