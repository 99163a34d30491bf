// Interop: `inetboot serve` started through the real CLI, probed with curl, and compared request by
// request with nginx serving the same directory. Also: curl's own resume (-C -) and ETag handling
// against our server, and our fetcher downloading from nginx.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fetchFile } from "../../src/fetch/index.ts";
import { scratch } from "../lib/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const BLK = crypto.getRandomValues(new Uint8Array(1_000_000));
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

let tmp: string;
let www: string;
let ours: string; // base URLs, ending in "/"
let theirs: string;
let serveProc: ReturnType<typeof Bun.spawn>;
let nginxProc: ReturnType<typeof Bun.spawn>;
let serveLog = "";

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

async function waitUp(url: string) {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await Bun.sleep(50);
    }
  }
  throw new Error(`${url} never came up`);
}

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}
let n = 0;
function curl(url: string, ...args: string[]): CurlResult {
  const id = ++n;
  const hdr = join(tmp, `h${id}`);
  const out = join(tmp, `b${id}`);
  const p = Bun.spawnSync(["curl", "-s", "--path-as-is", "-D", hdr, "-o", out, "-w", "%{http_code}", ...args, url]);
  if (p.exitCode !== 0) throw new Error(`curl ${args.join(" ")} ${url}: exit ${p.exitCode}`);
  const headers: Record<string, string> = {};
  for (const line of readFileSync(hdr, "utf8").split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = new Uint8Array();
  try {
    body = Uint8Array.from(readFileSync(out));
  } catch {}
  return { status: Number(p.stdout.toString()), headers, body };
}

beforeAll(async () => {
  tmp = scratch("serve-nginx-");
  www = join(tmp, "www");
  mkdirSync(join(www, "sub"), { recursive: true });
  writeFileSync(join(www, "blk.bin"), BLK);
  writeFileSync(join(www, "sub", "a.txt"), "hello\n");
  writeFileSync(join(tmp, "secret"), "TOP SECRET");

  // Ours, through the CLI, on an ephemeral port announced on stderr.
  serveProc = Bun.spawn([process.execPath, "src/main.ts", "serve", www, "--port", "0"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = (serveProc.stderr as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  while (!/serving .* at (http:\S+)\n/.test(serveLog)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`inetboot serve exited: ${serveLog}`);
    serveLog += dec.decode(value);
  }
  ours = /serving .* at (http:\S+)\n/.exec(serveLog)![1]!;
  void (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      serveLog += dec.decode(value);
    }
  })();

  // nginx on the same directory.
  const port = freePort();
  const conf = join(tmp, "nginx.conf");
  const t = (d: string) => join(tmp, d);
  writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1;
pid ${t("nginx.pid")}; error_log ${t("nginx-error.log")};
events { worker_connections 64; }
http {
  access_log off; default_type application/octet-stream;
  client_body_temp_path ${t("cb")}; proxy_temp_path ${t("px")}; fastcgi_temp_path ${t("fc")};
  uwsgi_temp_path ${t("uw")}; scgi_temp_path ${t("sc")};
  server { listen 127.0.0.1:${port}; root ${www}; autoindex off; location / { } }
}
`,
  );
  nginxProc = Bun.spawn(["nginx", "-p", tmp, "-c", conf], { stdout: "ignore", stderr: "pipe" });
  theirs = `http://127.0.0.1:${port}/`;
  await waitUp(theirs);
  await waitUp(ours);
});

afterAll(async () => {
  serveProc?.kill("SIGTERM");
  nginxProc?.kill("SIGTERM");
  await Promise.all([serveProc?.exited, nginxProc?.exited]);
  rmSync(tmp, { recursive: true, force: true });
});

describe("inetboot serve vs nginx, via curl", () => {
  test("the CLI announced 127.0.0.1 and an ephemeral port", () => {
    expect(ours).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(serveLog).toContain(`serving ${www} at ${ours}`);
  });

  const same: [string, string[]][] = [
    ["full GET", []],
    ["HEAD", ["-I"]],
    ["range a-b", ["-r", "10-19"]],
    ["range a-", ["-r", "999990-"]],
    ["suffix range", ["-H", "Range: bytes=-5"]],
    ["range past the end, clipped", ["-r", "999000-2000000"]],
    ["unsatisfiable range", ["-r", "1000000-"]],
    ["stale If-Range", ["-r", "0-9", "-H", 'If-Range: "stale"']],
  ];
  for (const [name, args] of same) {
    test(`${name}: same status, length, Content-Range and bytes`, () => {
      const a = curl(ours + "blk.bin", ...args);
      const b = curl(theirs + "blk.bin", ...args);
      expect(a.status).toBe(b.status);
      expect(a.headers["content-range"]).toBe(b.headers["content-range"]);
      // Error bodies are prose, and with -I curl stores the headers as the body.
      if (a.status !== 416) expect(a.headers["content-length"]).toBe(b.headers["content-length"]);
      if (a.status !== 416 && !args.includes("-I")) expect(sha(a.body)).toBe(sha(b.body));
      if (a.status === 206 || a.status === 200) expect(a.headers["accept-ranges"]).toBe("bytes");
    });
  }

  test("range bytes are the file's bytes", () => {
    const a = curl(ours + "blk.bin", "-r", "123456-123999");
    expect(a.status).toBe(206);
    expect(a.body).toEqual(BLK.subarray(123456, 124000));
  });

  test("each server's own ETag and Last-Modified give 304", () => {
    for (const base of [ours, theirs]) {
      const h = curl(base + "blk.bin", "-I").headers;
      expect(h.etag).toBeTruthy();
      const r1 = curl(base + "blk.bin", "-H", `If-None-Match: ${h.etag}`);
      expect(r1.status).toBe(304);
      expect(r1.body.length).toBe(0);
      expect(curl(base + "blk.bin", "-H", `If-Modified-Since: ${h["last-modified"]}`).status).toBe(304);
    }
    // Both servers derive the Last-Modified from the same mtime.
    expect(curl(ours + "blk.bin", "-I").headers["last-modified"]).toBe(curl(theirs + "blk.bin", "-I").headers["last-modified"]);
  });

  test("missing files 404 on both; directories never list", () => {
    expect(curl(ours + "nope").status).toBe(404);
    expect(curl(theirs + "nope").status).toBe(404);
    for (const p of ["", "sub/"]) {
      expect(curl(ours + p).status).toBe(404);
      expect(curl(theirs + p).status).toBeGreaterThanOrEqual(400); // nginx says 403
    }
  });

  test("traversal attempts never reach the file outside the root", () => {
    for (const p of ["../secret", "%2e%2e/secret", "sub/..%2f..%2fsecret", "sub/%2e%2e/%2e%2e/secret"]) {
      const r = curl(ours + p);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(new TextDecoder().decode(r.body)).not.toContain("TOP SECRET");
    }
  });
});

describe("curl's client features against inetboot serve", () => {
  test("curl -C - resumes a partial download", async () => {
    const dest = join(tmp, "resume.bin");
    writeFileSync(dest, BLK.subarray(0, 400_000));
    const p = Bun.spawnSync(["curl", "-sf", "-C", "-", "-o", dest, ours + "blk.bin"]);
    expect(p.exitCode).toBe(0);
    expect(await Bun.file(dest).bytes()).toEqual(BLK);
    await Bun.sleep(200); // spawnSync blocked the loop that collects the server's stderr
    expect(serveLog).toContain('"GET /blk.bin" 206 600000 range=bytes=400000-');
  });

  test("curl --etag-save / --etag-compare skips an unchanged file", () => {
    const etagFile = join(tmp, "etag");
    const dest = join(tmp, "etag.bin");
    expect(Bun.spawnSync(["curl", "-sf", "--etag-save", etagFile, "-o", dest, ours + "blk.bin"]).exitCode).toBe(0);
    expect(readFileSync(etagFile, "utf8").trim()).toBe(curl(ours + "blk.bin", "-I").headers.etag!);
    const p = Bun.spawnSync(["curl", "-s", "-w", "%{http_code}", "--etag-compare", etagFile, "-o", join(tmp, "etag2.bin"), ours + "blk.bin"]);
    expect(p.stdout.toString()).toBe("304");
  });
});

describe("our fetcher against nginx", () => {
  test("download verified by sha256 and size", async () => {
    const dest = join(tmp, "from-nginx.bin");
    const r = await fetchFile(theirs + "blk.bin", { dest, sha256: sha(BLK), size: BLK.length });
    expect(await Bun.file(dest).bytes()).toEqual(BLK);
    expect(r.size).toBe(BLK.length);
  });

  test("nginx 404 is a one-line http error", async () => {
    await expect(fetchFile(theirs + "missing", { retries: 0 })).rejects.toThrow(`fetch ${theirs}missing: HTTP 404 Not Found`);
  });
});

describe("shutdown", () => {
  test("SIGTERM stops inetboot serve with exit 0 and closes the port", async () => {
    serveProc.kill("SIGTERM");
    expect(await serveProc.exited).toBe(0);
    await expect(fetch(ours)).rejects.toThrow();
  });
});
