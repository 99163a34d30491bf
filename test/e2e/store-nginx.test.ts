// Interop: a store served by Debian's nginx (a server nobody here wrote) on a loopback port, read
// through the store reader, in raw Range mode, and checked by the CLI's verify/info.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { mkdirSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { packImage } from "../../src/store/pack.ts";
import { openSource } from "../../src/store/open.ts";
import { makeImage, prng, tmp } from "../unit/store-fixtures.ts";
import { startNbd } from "../lib/servers.ts";

const CS = 65536;
let dir: string;
let root: string;
let img: Uint8Array;
let nginx: Bun.Subprocess;
let url: string;

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

beforeAll(async () => {
  dir = tmp("ibstore-nginx-");
  root = join(dir, "www");
  mkdirSync(join(dir, "logs"), { recursive: true });
  img = new Uint8Array(40 * CS + 999);
  img.set(makeImage(CS), 0);
  img.set(prng(20 * CS, 5), 12 * CS);
  writeFileSync(join(dir, "disk.img"), img);
  await packImage(join(dir, "disk.img"), join(root, "store"), { chunkSize: CS });
  writeFileSync(join(root, "disk.img"), img);
  const pw = Bun.spawnSync(["openssl", "passwd", "-apr1", "s3cret:pw"], { stdout: "pipe" });
  writeFileSync(join(dir, "htpasswd"), `boot:${pw.stdout.toString().trim()}\n`);
  const port = await freePort();
  url = `http://127.0.0.1:${port}/`;
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
master_process off;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 64; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    # a front that sends every request elsewhere, as a CDN or an S3 bucket's website may
    location /moved/ { rewrite ^/moved/(.*)$ /$1 redirect; }
    # the same files behind HTTP Basic authentication
    location /private/ { alias ${root}/; auth_basic "inetboot"; auth_basic_user_file ${dir}/htpasswd; }
  }
}
`,
  );
  nginx = Bun.spawn(["nginx", "-p", dir, "-c", join(dir, "nginx.conf")], { stderr: "pipe", stdout: "ignore" });
  for (let i = 0; i < 100; i++) {
    if (await fetch(url + "store/index").then((r) => r.ok, () => false)) return;
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${await new Response(nginx.stderr as ReadableStream).text()}`);
    await Bun.sleep(50);
  }
  throw new Error("nginx did not start");
});

afterAll(async () => {
  nginx?.kill();
  await nginx?.exited;
});

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

function cli(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: join(import.meta.dir, "../.."), stderr: "pipe", stdout: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("nginx interop", () => {
  test("store read through nginx gives identical bytes", async () => {
    const src = await openSource(url + "store/", { mirrors: [], cacheDir: join(dir, "cache") });
    expect(src.size).toBe(img.length);
    const out = new Uint8Array(src.size);
    for (let o = 0; o < src.size; o += 200_000) out.set(await src.read(o, Math.min(200_000, src.size - o)), o);
    expect(same(out, img)).toBe(true);
    await src.close?.();
  });

  test("raw image through nginx with Range requests", async () => {
    const src = await openSource(url + "disk.img", { mirrors: [] });
    expect(src.size).toBe(img.length);
    expect(same(await src.read(0, src.size), img)).toBe(true);
    expect(same(await src.read(12345, 3), img.subarray(12345, 12348))).toBe(true);
  });

  test("behind a redirect (302 for every request): the store and a raw image read identical", async () => {
    const store = await openSource(url + "moved/store/", { mirrors: [] });
    expect(store.size).toBe(img.length);
    expect(same(await store.read(0, store.size), img)).toBe(true);
    await store.close?.();
    const raw = await openSource(url + "moved/disk.img", { mirrors: [] });
    expect(raw.size).toBe(img.length);
    expect(same(await raw.read(0, raw.size), img)).toBe(true); // Range requests follow the redirect
    expect(same(await raw.read(CS * 12 + 7, 5000), img.subarray(CS * 12 + 7, CS * 12 + 5007))).toBe(true);
    const log = readFileSync(join(dir, "logs/access.log"), "utf8");
    expect(log).toMatch(/"GET \/moved\/store\/chunks\/\S+ HTTP\/1\.1" 302 /);
    expect(log).toMatch(/"GET \/moved\/disk\.img HTTP\/1\.1" 302 /);
  });

  test("HTTP Basic: user:password@ in the URL reads the store and a raw image; none or a wrong one is one line at once, without the password", async () => {
    const auth = url.replace("http://", "http://boot:s3cret%3Apw@") + "private/";
    const store = await openSource(auth + "store/", { mirrors: [] });
    expect(same(await store.read(0, store.size), img)).toBe(true);
    await store.close?.();
    const raw = await openSource(auth + "disk.img", { mirrors: [] });
    expect(same(await raw.read(CS * 3 + 1, 100_000), img.subarray(CS * 3 + 1, CS * 3 + 100_001))).toBe(true);
    const info = cli("info", auth + "store/");
    expect(info.code).toBe(0);
    expect(info.out).toContain(`index: ${url}private/store/index`); // shown without the password
    expect(info.out + info.err).not.toContain("s3cret");
    const log = readFileSync(join(dir, "logs/access.log"), "utf8");
    expect(log).toMatch(/ boot \[[^\]]+\] "GET \/private\/store\/chunks\/\S+ HTTP\/1\.1" 200 /); // nginx saw the user
    const t0 = performance.now();
    const none = cli("info", url + "private/store/");
    const wrong = cli("info", url.replace("http://", "http://boot:wrong@") + "private/store/");
    expect(performance.now() - t0).toBeLessThan(10_000); // not retried to the mirror deadline
    expect(none.code).toBe(1);
    expect(none.err.trim()).toBe(`inetboot: cannot fetch store index: ${url}private/store/index: HTTP 401: the server wants a user and password (put USER:PASSWORD@ before the host in the URL)`);
    expect(wrong.code).toBe(1);
    expect(wrong.err.trim()).toBe(`inetboot: cannot fetch store index: ${url}private/store/index: HTTP 401: the server refused the user and password in the URL`);

    // inetboot nbd: the export's description, which every NBD client can list, has no password
    const nbd = await startNbd(auth + "store/", ["--listen", `unix:${join(dir, "auth.sock")}`]);
    try {
      const list = Bun.spawnSync(["nbdinfo", "--list", nbd.uri], { stdout: "pipe", stderr: "pipe" });
      expect(list.exitCode).toBe(0);
      expect(list.stdout.toString()).toContain(`description: inetboot ${url}private/store/`);
      expect(list.stdout.toString() + nbd.err.text).not.toContain("s3cret");
    } finally {
      await nbd.stop();
    }
  });

  test("CLI info and verify over http; a corrupted chunk makes verify exit 1", async () => {
    const info = cli("info", url + "store/");
    expect(info.code).toBe(0);
    expect(info.out).toContain(`image size: ${img.length}`);
    expect(info.out).toContain("chunk size: 65536");
    expect(info.out).toContain("chunks: 41");
    const ok = cli("verify", url + "store/");
    expect(ok.code).toBe(0);
    const d = readdirSync(join(root, "store/chunks"))[0]!;
    const f = readdirSync(join(root, "store/chunks", d))[0]!;
    writeFileSync(join(root, "store/chunks", d, f), Bun.zstdCompressSync(new TextEncoder().encode("tampered")));
    const bad = cli("verify", url + "store/");
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(f.slice(0, 64));
    const notStore = cli("info", url + "nothing/");
    expect(notStore.code).toBe(1);
    expect(notStore.err.trim().split("\n").length).toBe(1);
    expect(notStore.err).toContain("not a store");
  });
});
