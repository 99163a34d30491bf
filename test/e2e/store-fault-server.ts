// A small HTTP/1.1 file server on 127.0.0.1 written on raw TCP (Bun.listen) so it can misbehave in
// ways a real server library would not allow: 500s, stalls, bodies shorter than Content-Length,
// flipped bytes, and dying with connections open. Supports keep-alive and single Range requests.
import { readFileSync, statSync } from "node:fs";
import { join, normalize } from "node:path";
import type { Socket, TCPSocketListener } from "bun";

export type Fault = "ok" | "500" | "stall" | "truncate" | "flip" | "close";

export interface FaultServerOptions {
  root: string;
  /** fault for the k-th file request (k from 0); default "ok" */
  faultFor?: (k: number, path: string) => Fault;
  port?: number;
}

interface Conn {
  buf: string;
  /** bytes waiting for the socket to drain (Bun's write may take only part) */
  out: Uint8Array[];
  endAfter: boolean;
}

function send(s: Socket<Conn>, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  s.data.out.push(bytes);
  pump(s);
}

function pump(s: Socket<Conn>): void {
  while (s.data.out.length) {
    const head = s.data.out[0]!;
    const n = s.write(head);
    if (n < head.length) {
      s.data.out[0] = head.subarray(Math.max(0, n));
      return;
    }
    s.data.out.shift();
  }
  if (s.data.endAfter) s.end();
}

function endAfterSend(s: Socket<Conn>): void {
  s.data.endAfter = true;
  pump(s);
}

export class FaultServer {
  requests = 0;
  /** counts of each fault served */
  served: Record<Fault, number> = { ok: 0, "500": 0, stall: 0, truncate: 0, flip: 0, close: 0 };
  private listener: TCPSocketListener<Conn> | null = null;
  private sockets = new Set<Socket<Conn>>();
  port = 0;
  faultFor: (k: number, path: string) => Fault;

  constructor(private opts: FaultServerOptions) {
    this.faultFor = opts.faultFor ?? (() => "ok");
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  start(port = this.opts.port ?? 0): this {
    this.listener = Bun.listen<Conn>({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => {
          s.data = { buf: "", out: [], endAfter: false };
          this.sockets.add(s);
        },
        close: (s) => {
          this.sockets.delete(s);
        },
        error: () => {},
        drain: (s) => pump(s),
        data: (s, chunk) => {
          s.data.buf += chunk.toString("latin1");
          for (;;) {
            const end = s.data.buf.indexOf("\r\n\r\n");
            if (end < 0) return;
            const head = s.data.buf.slice(0, end);
            s.data.buf = s.data.buf.slice(end + 4);
            this.handle(s, head);
          }
        },
      },
    });
    this.port = this.listener.port;
    return this;
  }

  /** Stops listening and drops every open connection (a mirror dying mid-transfer). */
  stop(): void {
    this.listener?.stop(true);
    this.listener = null;
    for (const s of this.sockets) s.end();
    this.sockets.clear();
  }

  private handle(s: Socket<Conn>, head: string): void {
    const [reqLine, ...hl] = head.split("\r\n");
    const [method, rawPath] = (reqLine ?? "").split(" ");
    const headers = new Map(hl.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
    const path = normalize(decodeURIComponent((rawPath ?? "/").split("?")[0]!));
    const file = join(this.opts.root, path);
    let body: Uint8Array;
    try {
      if (!statSync(file).isFile()) throw new Error();
      body = readFileSync(file);
    } catch {
      send(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
      return;
    }
    const k = this.requests++;
    const fault = this.faultFor(k, path);
    this.served[fault]++;
    if (fault === "500") {
      send(s, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!");
      return;
    }
    if (fault === "stall") return; // never answer; the client must time out
    if (fault === "close") {
      s.end();
      return;
    }
    let status = "200 OK";
    let extra = "";
    const total = body.length;
    const m = /^bytes=(\d+)-(\d*)$/.exec(headers.get("range") ?? "");
    if (m) {
      const start = Number(m[1]);
      const endIncl = m[2] ? Math.min(Number(m[2]), total - 1) : total - 1;
      if (start >= total) {
        send(s, `HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */${total}\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      body = body.subarray(start, endIncl + 1);
      status = "206 Partial Content";
      extra = `Content-Range: bytes ${start}-${endIncl}/${total}\r\n`;
    }
    const len = body.length;
    if (fault === "flip" && body.length > 0) {
      body = body.slice();
      body[body.length >> 1]! ^= 0x40;
    }
    send(s, `HTTP/1.1 ${status}\r\nContent-Length: ${len}\r\nAccept-Ranges: bytes\r\n${extra}\r\n`);
    if (method === "HEAD") return;
    if (fault === "truncate") {
      send(s, body.subarray(0, len >> 1));
      endAfterSend(s); // short body, then the connection dies
      return;
    }
    send(s, body);
  }
}
