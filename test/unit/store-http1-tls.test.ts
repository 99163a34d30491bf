// The HTTP/1.1 client over TLS (src/store/fetcher/http1.ts) against a Bun TLS server whose
// certificate a private CA (made here with openssl) signs for 127.0.0.1 only. A request goes out
// only after the certificate checked: an untrusted issuer or another host name is refused before
// any byte (the request line, a password) reaches the server; a server that does not speak TLS is
// an error, not a hang.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import type { TCPSocketListener } from "bun";
import { tlsFailure } from "../../src/fetch/errors.ts";
import { Http1Client } from "../../src/store/fetcher/http1.ts";
import { HttpPool } from "../../src/store/fetcher/pool.ts";
import { makeTestCertificates } from "../lib/tls.ts";
import { scratch } from "../lib/tmp.ts";

const dir = scratch("inetboot-http1-tls-");
let server: TCPSocketListener<{ buf: string }>;
let plain: TCPSocketListener<undefined>;
let received = 0; // bytes the TLS server got, decrypted
const sig = () => AbortSignal.timeout(3000);
const caFile = join(dir, "ca.pem");
const savedCa = process.env.INETBOOT_CA_FILE;

beforeAll(() => {
  const t = makeTestCertificates(dir, ["127.0.0.1"]);
  server = Bun.listen<{ buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: readFileSync(t.cert, "utf8"), key: readFileSync(t.key, "utf8") },
    socket: {
      open(s) {
        s.data = { buf: "" };
      },
      data(s, d) {
        received += d.length;
        s.data.buf += Buffer.from(d).toString("latin1");
        for (let i; (i = s.data.buf.indexOf("\r\n\r\n")) >= 0; ) {
          s.data.buf = s.data.buf.slice(i + 4);
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        }
      },
    },
  });
  // plain HTTP on the port: answers the ClientHello with a 400 and closes, as nginx would
  plain = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(s) {
    s.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  } } });
});
afterAll(() => {
  server?.stop(true);
  plain?.stop(true);
  if (savedCa === undefined) delete process.env.INETBOOT_CA_FILE;
  else process.env.INETBOOT_CA_FILE = savedCa;
});

const errOf = (p: Promise<unknown>) => p.then(() => null, (e: Error & { code?: string }) => e);

describe("Http1Client over TLS", () => {
  test("a trusted certificate: the request is served, the connection kept alive and reused", async () => {
    process.env.INETBOOT_CA_FILE = caFile;
    const c = new Http1Client();
    for (let i = 0; i < 3; i++) {
      const r = await c.request(`https://127.0.0.1:${server.port}/x`, { signal: sig() });
      expect(r.status).toBe(200);
      expect(new TextDecoder().decode(r.body)).toBe("hello");
    }
    expect(c.opened).toBe(1);
    c.close();
  });

  test("an issuer not trusted: refused before a byte is sent (a password in the URL never leaves)", async () => {
    delete process.env.INETBOOT_CA_FILE; // Bun's built-in roots only
    expect(rootCertificates.length).toBeGreaterThan(0);
    const before = received;
    const e = await errOf(new Http1Client().request(`https://boot:s3cret@127.0.0.1:${server.port}/x`, { signal: sig() }));
    expect(e?.code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    expect(tlsFailure(e, "https://127.0.0.1/")).toMatch(/certificate issuer not trusted/);
    expect(received).toBe(before);
  });

  test("another host name than the certificate's: refused before a byte is sent", async () => {
    process.env.INETBOOT_CA_FILE = caFile;
    const before = received;
    // "localhost" reaches the same server, but the certificate names only 127.0.0.1
    const e = await errOf(new Http1Client().request(`https://localhost:${server.port}/x`, { signal: sig() }));
    expect(e?.code).toMatch(/ALTNAME|HOSTNAME/);
    expect(tlsFailure(e, "https://localhost/")).toMatch(/does not match the host name/);
    expect(received).toBe(before);
  });

  test("a server that does not speak TLS: an error within the request's time limit, not a hang", async () => {
    const t0 = performance.now();
    const e = await errOf(new Http1Client().request(`https://127.0.0.1:${plain.port}/x`, { signal: AbortSignal.timeout(5000) }));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(tlsFailure(e, `https://127.0.0.1:${plain.port}/`)).toMatch(/TLS failure with 127\.0\.0\.1: /);
  });

  test("HttpPool sends https through it: a refused certificate is flagged (the open fails at once)", async () => {
    delete process.env.INETBOOT_CA_FILE;
    const pool = new HttpPool({ timeoutMs: 2000 });
    const e = (await errOf(pool.get(`https://127.0.0.1:${server.port}/x`))) as Error & { final?: boolean };
    expect(e.final).toBe(true);
    expect(e.message).toContain("certificate issuer not trusted");
    pool.close();
  });
});
