// The static server in-process: bodies, HEAD, ranges, validators, refusals, access log; plus the
// pure Range/conditional helpers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fetchFile } from "../../src/fetch/index.ts";
import { makeEtag, noneMatch, parseRange } from "../../src/serve/http.ts";
import { startServer, type RunningServer } from "../../src/serve/server.ts";
import { safeSegments } from "../../src/serve/resolve.ts";
import { scratch } from "../lib/tmp.ts";

const BLK = crypto.getRandomValues(new Uint8Array(100_000));
let tmp: string;
let s: RunningServer;
const logLines: string[] = [];
const get = (p: string, init?: RequestInit) => fetch(s.url + p.replace(/^\//, ""), init);
const bytes = async (r: Response) => new Uint8Array(await r.arrayBuffer());

beforeAll(async () => {
  tmp = scratch("serve-test-");
  const www = join(tmp, "www");
  mkdirSync(join(www, "sub"), { recursive: true });
  writeFileSync(join(www, "blk.bin"), BLK);
  writeFileSync(join(www, "sub", "a.txt"), "hello\n");
  writeFileSync(join(www, "empty"), "");
  writeFileSync(join(www, "name with space.txt"), "spaced");
  writeFileSync(join(tmp, "secret"), "TOP SECRET");
  symlinkSync(join(tmp, "secret"), join(www, "out-link"));
  symlinkSync(join(www, "sub", "a.txt"), join(www, "in-link"));
  s = await startServer({ dir: www, port: 0, log: (l) => logLines.push(l) });
});
afterAll(async () => {
  await s.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("serve", () => {
  test("binds 127.0.0.1 on an ephemeral port", () => {
    expect(s.port).toBeGreaterThan(0);
    expect(s.url).toBe(`http://127.0.0.1:${s.port}/`);
  });

  test("GET whole file with validators", async () => {
    const r = await get("/blk.bin");
    expect(r.status).toBe(200);
    expect(await bytes(r)).toEqual(BLK);
    expect(r.headers.get("content-length")).toBe("100000");
    expect(r.headers.get("accept-ranges")).toBe("bytes");
    expect(r.headers.get("etag")).toMatch(/^"[0-9a-f]+-186a0"$/);
    expect(Date.parse(r.headers.get("last-modified")!)).toBeGreaterThan(0);
  });

  test("HEAD: headers, no body", async () => {
    const r = await get("/blk.bin", { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-length")).toBe("100000");
    expect((await bytes(r)).length).toBe(0);
  });

  test("percent-encoded names and empty files", async () => {
    expect(await (await get("/name%20with%20space.txt")).text()).toBe("spaced");
    const r = await get("/empty");
    expect(r.status).toBe(200);
    expect((await bytes(r)).length).toBe(0);
  });

  test("single ranges: a-b, a-, -n, clipped end", async () => {
    const cases: [string, number, number][] = [
      ["bytes=10-19", 10, 19],
      ["bytes=99990-", 99990, 99999],
      ["bytes=-5", 99995, 99999],
      ["bytes=99000-200000", 99000, 99999],
      ["bytes=0-0", 0, 0],
    ];
    for (const [range, a, b] of cases) {
      const r = await get("/blk.bin", { headers: { range } });
      expect(r.status).toBe(206);
      expect(r.headers.get("content-range")).toBe(`bytes ${a}-${b}/100000`);
      expect(r.headers.get("content-length")).toBe(String(b - a + 1));
      expect(await bytes(r)).toEqual(BLK.subarray(a, b + 1));
    }
  });

  test("unsatisfiable range: 416 with bytes */size", async () => {
    for (const range of ["bytes=100000-", "bytes=-0"]) {
      const r = await get("/blk.bin", { headers: { range } });
      expect(r.status).toBe(416);
      expect(r.headers.get("content-range")).toBe("bytes */100000");
    }
    expect((await get("/empty", { headers: { range: "bytes=0-" } })).status).toBe(416);
  });

  test("multi-range and malformed ranges get the whole body (200)", async () => {
    for (const range of ["bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=x-y"]) {
      const r = await get("/blk.bin", { headers: { range } });
      expect(r.status).toBe(200);
      expect((await bytes(r)).length).toBe(100_000);
    }
  });

  test("If-None-Match / If-Modified-Since → 304; changes are noticed", async () => {
    const path = join(tmp, "www", "sub", "a.txt");
    const first = await get("/sub/a.txt");
    const etag = first.headers.get("etag")!;
    const lm = first.headers.get("last-modified")!;
    const r304 = await get("/sub/a.txt", { headers: { "if-none-match": etag } });
    expect(r304.status).toBe(304);
    expect(r304.headers.get("etag")).toBe(etag);
    expect((await get("/sub/a.txt", { headers: { "if-none-match": `"zz", W/${etag}` } })).status).toBe(304);
    expect((await get("/sub/a.txt", { headers: { "if-none-match": '"other"' } })).status).toBe(200);
    expect((await get("/sub/a.txt", { headers: { "if-modified-since": lm } })).status).toBe(304);
    // A new mtime means a new ETag: the old one no longer matches.
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    const r = await get("/sub/a.txt", { headers: { "if-none-match": etag } });
    expect(r.status).toBe(200);
    expect(r.headers.get("etag")).not.toBe(etag);
  });

  test("If-Range: range honoured only while the validator matches", async () => {
    const etag = (await get("/blk.bin", { method: "HEAD" })).headers.get("etag")!;
    expect((await get("/blk.bin", { headers: { range: "bytes=0-9", "if-range": etag } })).status).toBe(206);
    const stale = await get("/blk.bin", { headers: { range: "bytes=0-9", "if-range": '"stale"' } });
    expect(stale.status).toBe(200);
    expect((await bytes(stale)).length).toBe(100_000);
  });

  test("no directory listings, missing files 404", async () => {
    for (const p of ["/", "/sub", "/sub/", "/nope", "/sub/nope"]) expect((await get(p)).status).toBe(404);
  });

  test("nothing outside the root is served", async () => {
    for (const p of ["/..%2fsecret", "/sub%2f..%2f..%2fsecret", "/%2e%2e/secret", "/sub/%2e%2e/%2e%2e/secret", "/..%5csecret", "/out-link"]) {
      const r = await get(p);
      expect([403, 404]).toContain(r.status);
      expect(await r.text()).not.toContain("TOP SECRET");
    }
    expect((await get("/out-link")).status).toBe(403);
    expect(await (await get("/in-link")).text()).toBe("hello\n");
  });

  test("raw request-targets with dot segments stay inside the root", async () => {
    const reply = await new Promise<string>((resolve) => {
      let buf = "";
      Bun.connect({
        hostname: "127.0.0.1",
        port: s.port,
        socket: {
          open(sock) {
            sock.write("GET /../secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
          },
          data(_sock, d) {
            buf += d.toString();
          },
          close() {
            resolve(buf);
          },
        },
      });
    });
    expect(reply).toMatch(/^HTTP\/1\.1 40[034]/);
    expect(reply).not.toContain("TOP SECRET");
  });

  test("other methods: 405 with Allow", async () => {
    const r = await get("/blk.bin", { method: "POST", body: "x" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET, HEAD");
  });

  test("one access-log line per request", async () => {
    logLines.length = 0;
    await (await get("/sub/a.txt", { headers: { range: "bytes=1-2" } })).arrayBuffer();
    expect(logLines.length).toBe(1);
    expect(logLines[0]).toMatch(/^127\.0\.0\.1 "GET \/sub\/a\.txt" 206 2 range=bytes=1-2 [\d.]+ms$/);
  });

  test("our fetcher downloads from our server", async () => {
    const want = new Bun.CryptoHasher("sha256").update(BLK).digest("hex");
    const dest = join(tmp, "copy.bin");
    const r = await fetchFile(s.url + "blk.bin", { dest, sha256: want, size: BLK.length });
    expect(new Uint8Array(await Bun.file(dest).arrayBuffer())).toEqual(BLK);
    expect(r.size).toBe(BLK.length);
  });

  test("port in use and missing directory are one-line errors", async () => {
    await expect(startServer({ dir: tmp, port: s.port })).rejects.toThrow(
      `serve: cannot listen on 127.0.0.1:${s.port}: address already in use`,
    );
    await expect(startServer({ dir: join(tmp, "nope"), port: 0 })).rejects.toThrow(/serve: cannot open .*nope: ENOENT/);
  });
});

describe("http helpers", () => {
  test("parseRange", () => {
    expect(parseRange(null, 10)).toBe("none");
    expect(parseRange("bytes=2-4", 10)).toEqual({ start: 2, end: 4 });
    expect(parseRange("bytes = 2 - 4", 10)).toEqual({ start: 2, end: 4 });
    expect(parseRange("bytes=8-", 10)).toEqual({ start: 8, end: 9 });
    expect(parseRange("bytes=-3", 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange("bytes=-30", 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange("bytes=5-100", 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange("bytes=10-", 10)).toBe("unsatisfiable");
    expect(parseRange("bytes=-0", 10)).toBe("unsatisfiable");
    expect(parseRange("bytes=0-", 0)).toBe("unsatisfiable");
    expect(parseRange("bytes=4-2", 10)).toBe("none");
    expect(parseRange("bytes=0-1,3-4", 10)).toBe("none");
    expect(parseRange("bytes=-", 10)).toBe("none");
    expect(parseRange("lines=0-1", 10)).toBe("none");
  });

  test("etag and If-None-Match comparison", () => {
    const e = makeEtag(100_000, 1_700_000_000_123.7);
    expect(e).toBe(`"${(1_700_000_000_123).toString(16)}-186a0"`);
    expect(noneMatch(e, e)).toBe(true);
    expect(noneMatch(`W/${e}`, e)).toBe(true);
    expect(noneMatch(`"a", ${e}`, e)).toBe(true);
    expect(noneMatch("*", e)).toBe(true);
    expect(noneMatch('"a"', e)).toBe(false);
  });

  test("safeSegments", () => {
    expect(safeSegments("/a/b%20c/./d")).toEqual(["a", "b c", "d"]);
    expect(safeSegments("/a/%2e%2e/b")).toBeNull();
    expect(safeSegments("/a%2fb")).toBeNull();
    expect(safeSegments("/a%00")).toBeNull();
    expect(safeSegments("/%zz")).toBeUndefined();
  });
});
