// fetchFile against local servers on 127.0.0.1 that inject faults: retries, stalls, truncation,
// 4xx, hash mismatch, redirects, refused ports, DNS failure, resume with Range, TLS with a private CA.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { backoffDelay, consoleProgress, FetchError, fetchFile, type FetchProgress } from "../../src/fetch/index.ts";
import { scratch } from "../lib/tmp.ts";

const FAST = { baseMs: 5, maxMs: 20 };

/** Deterministic pseudo-random bytes (so hashes are known without fixtures). */
function body(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

const SMALL = body(1000, 7);
const BIG = body(6 << 20, 3);
const hits = new Map<string, number>();
const hit = (p: string) => {
  const n = (hits.get(p) ?? 0) + 1;
  hits.set(p, n);
  return n;
};

let http: ReturnType<typeof Bun.serve>;
let base: string;
let dir: string;

beforeAll(() => {
  dir = scratch("fetch-test-");
  http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const p = new URL(req.url).pathname;
      const n = hit(p);
      switch (p) {
        case "/small":
          return new Response(SMALL);
        case "/big":
          return new Response(BIG);
        case "/flaky": // 500 then 200
          return n === 1 ? new Response("oops", { status: 500 }) : new Response(SMALL);
        case "/always500":
          return new Response("down", { status: 503 });
        case "/missing":
          return new Response("no", { status: 404 });
        case "/redirect":
          return Response.redirect("/small", 302);
        case "/stall": // a few bytes, then silence
          return new Response(
            new ReadableStream({
              async start(c) {
                c.enqueue(new Uint8Array(10));
                await Bun.sleep(5000);
                c.close();
              },
            }),
            { headers: { "content-length": "1000" } },
          );
        case "/slowheaders":
          await Bun.sleep(3000);
          return new Response(SMALL);
        default:
          return new Response("?", { status: 404 });
      }
    },
  });
  base = `http://127.0.0.1:${http.port}`;
});
afterAll(() => {
  http.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<FetchError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(FetchError);
    return e as FetchError;
  }
  throw new Error("expected a failure");
}

describe("fetchFile", () => {
  test("small body in memory, sha256 and size", async () => {
    const r = await fetchFile(`${base}/small`);
    expect(r.bytes).toEqual(SMALL);
    expect(r.size).toBe(1000);
    expect(r.sha256).toBe(sha(SMALL));
    expect(r.path).toBeUndefined();
  });

  test("large body streams to disk, atomically, with progress", async () => {
    const dest = join(dir, "big.bin");
    const seen: FetchProgress[] = [];
    const r = await fetchFile(`${base}/big`, { dest, sha256: sha(BIG), size: BIG.length, onProgress: (p) => seen.push(p) });
    expect(r.path).toBe(dest);
    expect(r.bytes).toBeUndefined();
    expect(await Bun.file(dest).bytes()).toEqual(BIG);
    expect(existsSync(`${dest}.part`)).toBe(false);
    const last = seen.at(-1)!;
    expect(last.done).toBe(true);
    expect(last.bytes).toBe(BIG.length);
    expect(last.total).toBe(BIG.length);
  });

  test("500 then 200: retried", async () => {
    hits.delete("/flaky");
    const r = await fetchFile(`${base}/flaky`, { backoff: FAST });
    expect(r.bytes).toEqual(SMALL);
    expect(r.attempts).toBe(2);
    expect(hits.get("/flaky")).toBe(2);
  });

  test("5xx gives up after retries", async () => {
    hits.delete("/always500");
    const e = await failure(fetchFile(`${base}/always500`, { retries: 2, backoff: FAST }));
    expect(e.kind).toBe("http");
    expect(e.status).toBe(503);
    expect(hits.get("/always500")).toBe(3);
  });

  test("404 is not retried", async () => {
    hits.delete("/missing");
    const e = await failure(fetchFile(`${base}/missing`, { retries: 3, backoff: FAST }));
    expect(e.kind).toBe("http");
    expect(e.message).toBe(`fetch ${base}/missing: HTTP 404 Not Found`);
    expect(hits.get("/missing")).toBe(1);
  });

  test("redirect followed", async () => {
    const r = await fetchFile(`${base}/redirect`);
    expect(r.bytes).toEqual(SMALL);
    expect(r.url).toBe(`${base}/small`);
  });

  test("stall: no bytes for timeoutMs fails with kind timeout", async () => {
    const t = performance.now();
    const e = await failure(fetchFile(`${base}/stall`, { timeoutMs: 300, retries: 0 }));
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain("no data for 0.3 s");
    expect(performance.now() - t).toBeLessThan(2000);
  });

  test("slow headers count as a stall too, and stalls are retried", async () => {
    hits.delete("/slowheaders");
    const e = await failure(fetchFile(`${base}/slowheaders`, { timeoutMs: 200, retries: 1, backoff: FAST }));
    expect(e.kind).toBe("timeout");
    expect(hits.get("/slowheaders")).toBe(2);
  });

  test("overall deadline", async () => {
    const t = performance.now();
    const e = await failure(fetchFile(`${base}/stall`, { timeoutMs: 10_000, deadlineMs: 300, retries: 5 }));
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain("deadline");
    expect(performance.now() - t).toBeLessThan(2000);
  });

  test("wrong hash: fails, and neither DEST nor DEST.part is left (an old DEST is kept)", async () => {
    const dest = join(dir, "wrong.bin");
    const e1 = await failure(fetchFile(`${base}/small`, { dest, sha256: "ab".repeat(32), retries: 3 }));
    expect(e1.kind).toBe("hash");
    expect(e1.message).toBe(`fetch ${base}/small: sha256 mismatch: expected ${"ab".repeat(32)}, got ${sha(SMALL)}`);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
    writeFileSync(dest, "previous good version");
    await failure(fetchFile(`${base}/small`, { dest, sha256: "cd".repeat(32) }));
    expect(readFileSync(dest, "utf8")).toBe("previous good version");
  });

  test("expected size disagrees with Content-Length", async () => {
    const e = await failure(fetchFile(`${base}/small`, { size: 999 }));
    expect(e.kind).toBe("size");
  });

  test("connection refused (closed port)", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const e = await failure(fetchFile(`http://127.0.0.1:${port}/x`, { retries: 1, backoff: FAST }));
    expect(e.kind).toBe("refused");
    expect(e.message).toBe(`fetch http://127.0.0.1:${port}/x: connection refused by 127.0.0.1`);
  });

  test("DNS failure", async () => {
    const e = await failure(fetchFile("http://nosuchhost.invalid/x", { retries: 0 }));
    expect(e.kind).toBe("dns");
    expect(e.message).toBe("fetch http://nosuchhost.invalid/x: DNS lookup failed for nosuchhost.invalid");
  });

  test("caller's signal aborts", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const e = await failure(fetchFile(`${base}/stall`, { signal: ac.signal, timeoutMs: 10_000 }));
    expect(e.kind).toBe("aborted");
  });

  test("bad URL and scheme", async () => {
    expect((await failure(fetchFile("not a url"))).kind).toBe("url");
    expect((await failure(fetchFile("ftp://127.0.0.1/x"))).kind).toBe("url");
  });

  test("credentials never appear in messages", async () => {
    const e = await failure(fetchFile(`http://user:secret@127.0.0.1:${http.port}/missing`));
    expect(e.message).not.toContain("secret");
  });
});

// A raw TCP server for what Bun.serve will not do: announce more bytes than it sends.
describe("truncated bodies", () => {
  const FULL = body(100_000, 11);
  const CUT = 40_000;
  let srv: Bun.TCPSocketListener<undefined>;
  let requests: string[] = [];
  let honourRange = true;
  beforeAll(() => {
    srv = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        async data(s, d) {
          const req = d.toString();
          requests.push(req);
          const range = /\r\nrange: bytes=(\d+)-\r\n/i.exec(req);
          const head = (status: string, extra: string, len: number) =>
            `HTTP/1.1 ${status}\r\nContent-Length: ${len}\r\nAccept-Ranges: bytes\r\nETag: "v1"\r\n${extra}Connection: close\r\n\r\n`;
          if (requests.length === 1) {
            s.write(head("200 OK", "", FULL.length));
            s.write(FULL.subarray(0, CUT));
            // Close only once the client has consumed the part: Bun's fetch drops body bytes still
            // buffered when the connection resets before they are read.
            await Bun.sleep(150);
          } else if (range && honourRange) {
            const from = Number(range[1]);
            s.write(head("206 Partial Content", `Content-Range: bytes ${from}-${FULL.length - 1}/${FULL.length}\r\n`, FULL.length - from));
            s.write(FULL.subarray(from));
          } else {
            s.write(head("200 OK", "", FULL.length));
            s.write(FULL);
          }
          s.end();
        },
      },
    });
  });
  afterAll(() => srv.stop(true));

  test("short body without retries: kind short", async () => {
    requests = [];
    const e = await failure(fetchFile(`http://127.0.0.1:${srv.port}/f`, { retries: 0 }));
    expect(e.kind).toBe("short");
    expect(e.message).toContain(`got ${CUT} of ${FULL.length} bytes`);
  });

  test("short body is resumed with Range + If-Range", async () => {
    requests = [];
    honourRange = true;
    const dest = join(dir, "resumed.bin");
    const r = await fetchFile(`http://127.0.0.1:${srv.port}/f`, { dest, sha256: sha(FULL), backoff: FAST });
    expect(await Bun.file(dest).bytes()).toEqual(FULL);
    expect(requests.length).toBe(2);
    expect(requests[1]).toMatch(new RegExp(`\\r\\nrange: bytes=${CUT}-\\r\\n`, "i"));
    expect(requests[1]).toMatch(/\r\nif-range: "v1"\r\n/i);
    expect(r.sha256).toBe(sha(FULL));
  });

  test("a server that answers the resume with 200 restarts cleanly", async () => {
    requests = [];
    honourRange = false;
    const r = await fetchFile(`http://127.0.0.1:${srv.port}/f`, { sha256: sha(FULL), backoff: FAST });
    expect(r.bytes).toEqual(FULL);
    expect(requests.length).toBe(2);
  });

  test("restarted into a file: the file holds the body from its first byte (not after a hole)", async () => {
    requests = [];
    honourRange = false;
    const dest = join(dir, "restarted.bin");
    const r = await fetchFile(`http://127.0.0.1:${srv.port}/f`, { dest, sha256: sha(FULL), backoff: FAST });
    expect(requests.length).toBe(2);
    expect(r.sha256).toBe(sha(FULL));
    expect(sha(await Bun.file(dest).bytes())).toBe(sha(FULL)); // the bytes on disk, not what fetch hashed
  });
});

describe("HTTPS", () => {
  let tlsSrv: ReturnType<typeof Bun.serve>;
  let certDir: string;
  beforeAll(() => {
    certDir = scratch("fetch-tls-");
    const p = Bun.spawnSync([
      "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
      "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem"),
      "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ], { stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`openssl failed: ${p.stderr.toString()}`);
    tlsSrv = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { key: Bun.file(join(certDir, "key.pem")), cert: Bun.file(join(certDir, "cert.pem")) },
      fetch: () => new Response(SMALL),
    });
  });
  afterAll(() => {
    tlsSrv.stop(true);
    rmSync(certDir, { recursive: true, force: true });
  });

  test("self-signed without a CA file: kind tls, not retried", async () => {
    const e = await failure(fetchFile(`https://127.0.0.1:${tlsSrv.port}/x`, { retries: 3, backoff: FAST }));
    expect(e.kind).toBe("tls");
  });

  test("with the CA file: succeeds", async () => {
    const r = await fetchFile(`https://127.0.0.1:${tlsSrv.port}/x`, { caFile: join(certDir, "cert.pem") });
    expect(r.bytes).toEqual(SMALL);
  });

  test("plain HTTP port spoken to as HTTPS: kind tls", async () => {
    const e = await failure(fetchFile(`https://127.0.0.1:${http.port}/small`, { retries: 0 }));
    expect(e.kind).toBe("tls");
  });

  test("unreadable CA file", async () => {
    const e = await failure(fetchFile(`https://127.0.0.1:${tlsSrv.port}/x`, { caFile: join(certDir, "nope.pem") }));
    expect(e.kind).toBe("io");
    expect(e.message).toContain("nope.pem");
  });
});

describe("helpers", () => {
  test("backoff grows exponentially, is capped and jittered within [50%,100%]", () => {
    expect(backoffDelay(1, { baseMs: 100, random: () => 0 })).toBe(50);
    expect(backoffDelay(1, { baseMs: 100, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(3, { baseMs: 100, random: () => 0.999999 })).toBe(400);
    expect(backoffDelay(20, { baseMs: 100, maxMs: 1000, random: () => 0.999999 })).toBe(1000);
  });

  test("console progress is throttled (every 1 s or 10 %) and ends with done", () => {
    const lines: string[] = [];
    const cb = consoleProgress({ write: (l) => lines.push(l), label: "img" });
    const total = 100 << 20;
    for (let i = 1; i <= 100; i++) cb({ url: "http://h/img", bytes: (total / 100) * i, total, ms: i * 10, done: false });
    cb({ url: "http://h/img", bytes: total, total, ms: 1000, done: true });
    // 10 % steps over 100 calls within one second → about 10 lines, plus the final one.
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(12);
    expect(lines.at(-1)).toContain("100.0 MiB / 100.0 MiB (100%)");
    expect(lines.at(-1)).toEndWith("done");
    const quiet: string[] = [];
    consoleProgress({ write: (l) => quiet.push(l) })({ url: "http://h/x", bytes: 10, total: 10, ms: 5, done: true });
    expect(quiet).toEqual([]); // small downloads print nothing
  });
});
