// The raw HTTP/1.1 client (src/store/fetcher/http1.ts) against Bun.serve, a hand-written TCP
// server (exact bytes on the wire: chunked bodies, idle closes, short bodies) and the fault server
// of the e2e tests; and HttpPool on top of it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { Http1Client } from "../../src/store/fetcher/http1.ts";
import { HttpError, HttpPool } from "../../src/store/fetcher/pool.ts";
import { redactUrls } from "../../src/fetch/errors.ts";
import { FaultServer, type Fault } from "../e2e/store-fault-server.ts";
import { prng } from "./store-fixtures.ts";
import { scratch } from "../lib/tmp.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const sig = () => AbortSignal.timeout(3000);

/** A TCP server that answers each request head with `reply(n, head, socket)` (n from 0). */
function rawServer(reply: (n: number, head: string, s: Socket<{ buf: string }>) => void): { port: number; conns: number; stop(): void } {
  let n = 0;
  const st = { port: 0, conns: 0, stop: () => l.stop(true) };
  const l: TCPSocketListener<{ buf: string }> = Bun.listen<{ buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: "" };
        st.conns++;
      },
      data(s, d) {
        s.data.buf += Buffer.from(d).toString("latin1");
        for (let i; (i = s.data.buf.indexOf("\r\n\r\n")) >= 0; ) {
          const head = s.data.buf.slice(0, i);
          s.data.buf = s.data.buf.slice(i + 4);
          reply(n++, head, s);
        }
      },
    },
  });
  st.port = l.port;
  return st;
}

describe("Http1Client against Bun.serve", () => {
  let srv: ReturnType<typeof Bun.serve>;
  const big = prng(1 << 20, 7);
  beforeAll(() => {
    srv = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const p = new URL(req.url).pathname;
        if (p === "/big") return new Response(big);
        if (p === "/stream") {
          // a streamed body: Bun.serve sends it with Transfer-Encoding: chunked
          const parts = [prng(1000, 1), prng(70000, 2), prng(5, 3)];
          return new Response(new ReadableStream({ async pull(c) { const x = parts.shift(); if (x) c.enqueue(x); else c.close(); } }));
        }
        if (p === "/missing") return new Response("nope", { status: 404 });
        return new Response(`hello ${p} ${req.headers.get("x-test") ?? ""}`);
      },
    });
  });
  afterAll(() => srv.stop(true));

  test("keep-alive: sequential requests reuse one connection", async () => {
    const c = new Http1Client();
    for (let i = 0; i < 5; i++) {
      const r = await c.request(`http://127.0.0.1:${srv.port}/a${i}`, { headers: { "x-test": "yes" }, signal: sig() });
      expect(r.status).toBe(200);
      expect(text(r.body)).toBe(`hello /a${i} yes`);
    }
    expect(c.opened).toBe(1);
    expect(c.reused).toBe(4);
    c.close();
  });

  test("a 1 MiB Content-Length body and a chunked streamed body arrive whole", async () => {
    const c = new Http1Client();
    const r = await c.request(`http://127.0.0.1:${srv.port}/big`, { signal: sig() });
    expect(Buffer.from(r.body).equals(Buffer.from(big))).toBe(true);
    const s = await c.request(`http://127.0.0.1:${srv.port}/stream`, { signal: sig() });
    expect(s.headers.get("transfer-encoding")).toBe("chunked");
    const want = Buffer.concat([prng(1000, 1), prng(70000, 2), prng(5, 3)]);
    expect(Buffer.from(s.body).equals(want)).toBe(true);
    c.close();
  });

  test("bodies kept as views of received data stay intact while the connection reads on", async () => {
    // http1.ts keeps a body that arrived in one piece as a view of Bun's receive buffer: this
    // fails if Bun ever reuses that buffer for later reads.
    const c = new Http1Client();
    const small: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) small.push((await c.request(`http://127.0.0.1:${srv.port}/s${i}`, { signal: sig() })).body);
    const bigs = [];
    for (let i = 0; i < 3; i++) bigs.push((await c.request(`http://127.0.0.1:${srv.port}/big`, { signal: sig() })).body);
    small.forEach((b, i) => expect(text(b)).toBe(`hello /s${i} `));
    for (const b of bigs) expect(Buffer.from(b).equals(Buffer.from(big))).toBe(true);
    expect(c.opened).toBe(1);
    c.close();
  });

  test("concurrent requests open parallel connections, then reuse them; 404 and HEAD", async () => {
    const c = new Http1Client();
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => c.request(`http://127.0.0.1:${srv.port}/p${i}`, { signal: sig() })));
    rs.forEach((r, i) => expect(text(r.body)).toBe(`hello /p${i} `));
    const opened = c.opened;
    expect(opened).toBeGreaterThan(1);
    await Promise.all(Array.from({ length: 8 }, () => c.request(`http://127.0.0.1:${srv.port}/q`, { signal: sig() })));
    expect(c.opened).toBe(opened);
    const nf = await c.request(`http://127.0.0.1:${srv.port}/missing`, { signal: sig() });
    expect(nf.status).toBe(404);
    const h = await c.request(`http://127.0.0.1:${srv.port}/big`, { method: "HEAD", signal: sig() });
    expect(h.status).toBe(200);
    expect(h.body.length).toBe(0);
    c.close();
  });
});

describe("Http1Client: exact bytes on the wire", () => {
  test("chunked body with extensions and trailers; a response split into 1-byte writes", async () => {
    const msg = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n" + "x".repeat(26) + "\r\n0\r\nX-Trailer: t\r\n\r\n";
    const srv = rawServer((_, __, s) => {
      // byte by byte, so every parser state sees a split
      const bytes = Buffer.from(msg, "latin1");
      let i = 0;
      const t = setInterval(() => {
        if (i >= bytes.length) return clearInterval(t);
        s.write(bytes.subarray(i, i + 1));
        i++;
      }, 0);
    });
    const c = new Http1Client();
    const r = await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() });
    expect(text(r.body)).toBe("hello" + "x".repeat(26));
    // the connection is reusable after the trailers
    const r2 = await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() });
    expect(text(r2.body)).toBe("hello" + "x".repeat(26));
    expect(c.opened).toBe(1);
    c.close();
    srv.stop();
  });

  test("server closing idle keep-alive connections: the next request retries on a fresh one", async () => {
    const srv = rawServer((n, _, s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${String(n).padStart(2, "0")}`);
      setTimeout(() => s.end(), 20); // idle close after each answer
    });
    const c = new Http1Client();
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("00");
    await Bun.sleep(80);
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("01");
    expect(srv.conns).toBe(2);
    c.close();
    srv.stop();
  });

  test("a close racing the reuse (no reply, connection dropped) is retried once", async () => {
    // request 1 is dropped without an answer on the reused connection; request 2 answers
    const srv = rawServer((n, _, s) => {
      if (n === 1) return void s.end();
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${n}`);
    });
    const c = new Http1Client();
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("0");
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("2");
    c.close();
    srv.stop();
  });

  test("short bodies reject: Content-Length cut by a close, chunked cut mid-chunk", async () => {
    const srv = rawServer((n, _, s) => {
      if (n === 0) s.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
      else s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n12345");
      setTimeout(() => s.end(), 10);
    });
    const c = new Http1Client();
    await expect(c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).rejects.toThrow(/short body: connection closed after 5 of 10/);
    await expect(c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).rejects.toThrow(/chunked/);
    c.close();
    srv.stop();
  });

  test("body until close (no length), Connection: close, HTTP/1.0", async () => {
    const srv = rawServer((n, _, s) => {
      if (n === 0) (s.write("HTTP/1.1 200 OK\r\n\r\nuntil close"), s.end());
      else if (n === 1) s.write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc");
      else s.write("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nxyz");
    });
    const c = new Http1Client();
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("until close");
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("abc");
    expect(text((await c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).body)).toBe("xyz");
    expect(srv.conns).toBe(3); // none of these may be reused
    c.close();
    srv.stop();
  });

  test("a stalled server: the signal aborts the request; garbage is an error", async () => {
    const srv = rawServer((n, _, s) => {
      if (n === 1) s.write("SMTP ready\r\n\r\n");
    });
    const c = new Http1Client();
    const t0 = performance.now();
    await expect(c.request(`http://127.0.0.1:${srv.port}/`, { signal: AbortSignal.timeout(150) })).rejects.toThrow(/aborted/);
    expect(performance.now() - t0).toBeLessThan(2000);
    await expect(c.request(`http://127.0.0.1:${srv.port}/`, { signal: sig() })).rejects.toThrow(/bad status line/);
    c.close();
    srv.stop();
  });

  test("user:password@ in the URL is sent as HTTP Basic credentials, percent-decoded; none without", async () => {
    const heads: string[] = [];
    const srv = rawServer((_, head, s) => {
      heads.push(head);
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    const c = new Http1Client();
    await c.request(`http://us%40er:p%3Ass@127.0.0.1:${srv.port}/store/index`, { signal: sig() });
    await c.request(`http://127.0.0.1:${srv.port}/store/index`, { signal: sig() });
    expect(heads[0]).toStartWith("GET /store/index HTTP/1.1\r\n");
    expect(heads[0]).toContain(`\r\nAuthorization: Basic ${Buffer.from("us@er:p:ss").toString("base64")}`);
    expect(heads[0]).not.toContain("p%3Ass@"); // the userinfo is not sent in the request line or Host
    expect(heads[1]).not.toContain("Authorization");
    c.close();
    srv.stop();
  });

  test("connection refused is an error naming the address", async () => {
    const srv = rawServer(() => {});
    const port = srv.port;
    srv.stop();
    await expect(new Http1Client().request(`http://127.0.0.1:${port}/`, { signal: sig() })).rejects.toThrow(`127.0.0.1:${port}`);
  });
});

describe("HttpPool over the fault server", () => {
  const root = scratch("ibhttp1-");
  const data = prng(300_000, 11);
  writeFileSync(join(root, "f.bin"), data);
  let faults: Fault[] = [];
  const fs = new FaultServer({ root, faultFor: (k) => faults[k] ?? "ok" });
  beforeAll(() => void fs.start());
  afterAll(() => fs.stop());

  test("a password in the URL stays out of error messages; 401 says what the server wants", async () => {
    const srv = rawServer((_, _head, s) => s.write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"));
    const pool = new HttpPool({ timeoutMs: 2000 });
    const withPw = await pool.get(`http://u:secret@127.0.0.1:${srv.port}/x`).catch((e: Error) => e);
    expect(withPw).toBeInstanceOf(HttpError);
    expect((withPw as HttpError).status).toBe(401);
    expect((withPw as Error).message).toBe(`http://127.0.0.1:${srv.port}/x: HTTP 401: the server refused the user and password in the URL`);
    const without = await pool.get(`http://127.0.0.1:${srv.port}/x`).catch((e: Error) => e);
    expect((without as Error).message).toContain("HTTP 401: the server wants a user and password");
    expect(redactUrls(`a https://u:p@h:1/x and http://h/y?u=a@b`)).toBe("a https://h:1/x and http://h/y?u=a@b");
    pool.close();
    srv.stop();
  });

  test("Range GETs on keep-alive connections; 500, truncation, close and stalls are errors", async () => {
    const pool = new HttpPool({ timeoutMs: 300 });
    const url = fs.url + "f.bin";
    faults = [];
    fs.requests = 0;
    const r = await pool.get(url, { start: 1000, end: 201000 });
    expect(Buffer.from(r).equals(Buffer.from(data.subarray(1000, 201000)))).toBe(true);
    expect(Buffer.from(await pool.get(url)).equals(Buffer.from(data))).toBe(true);
    expect(pool.http1!.opened).toBe(1);
    faults = ["500", "truncate", "close", "stall", "flip", "ok"].map((f) => f as Fault);
    fs.requests = 0;
    await expect(pool.get(url, { start: 0, end: 100 })).rejects.toThrow(/HTTP 500/);
    await expect(pool.get(url, { start: 0, end: 100_000 })).rejects.toThrow(/short body/);
    await expect(pool.get(url, { start: 0, end: 100 })).rejects.toThrow(/closed/);
    await expect(pool.get(url, { start: 0, end: 100 })).rejects.toThrow(/timed out after 300 ms/);
    // flipped bytes pass HTTP (only the store's digest can catch them) …
    const flipped = await pool.get(url, { start: 0, end: 100 });
    expect(Buffer.from(flipped).equals(Buffer.from(data.subarray(0, 100)))).toBe(false);
    // … and the pool still works afterwards
    expect(Buffer.from(await pool.get(url, { start: 5, end: 10 })).equals(Buffer.from(data.subarray(5, 10)))).toBe(true);
    await expect(pool.get(fs.url + "nope")).rejects.toMatchObject({ status: 404 });
    expect(await pool.size(url)).toEqual({ size: 300_000, ranges: true });
    pool.close();
  });
});
