// HTTP(S)_PROXY end to end, through Debian's tinyproxy. A network namespace holds nginx (http and
// https, under a private CA) and two proxies (one open, one wanting a user and password); the host
// and a QEMU guest reach them over a veth pair. nginx logs each request's client address, and that
// is the evidence: a request that came through the proxy comes from the namespace's own address
// (the proxy runs there), one that came directly from the host's end of the veth.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { withGuest } from "../lib/qemu.ts";
import type { BusyboxRoot } from "../lib/roots.ts";
import { BIN, nbdcopySha, stageWww } from "../lib/http-fixtures.ts";
import { sha, startNginx, type Nginx } from "../lib/servers.ts";
import { need } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";
import { makeTestCertificates } from "../lib/tls.ts";
import { createVethNetns, type VethNetns } from "../lib/veth-netns.ts";

const T = 240_000;
const dir = scratch("inetboot-proxy-");
const www = join(dir, "www");
const PROXY_PORT = 8888;
const AUTH_PORT = 8890;
const TLS_PROXY_PORT = 8891;
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
let net: VethNetns;
let http: Nginx;
let https: Nginx;
let ca: string;
let img: Uint8Array;
let root: BusyboxRoot;
let proxy: string;

/** tinyproxy in the namespace on nsIp:port, its log in dir; CONNECT allowed to `connectPort`. */
async function startTinyproxy(port: number, connectPort: number, extra: string[] = []): Promise<Subprocess> {
  const conf = join(dir, `tinyproxy-${port}.conf`);
  writeFileSync(conf, [`Port ${port}`, `Listen ${net.nsIp}`, `Allow ${net.nsIp.replace(/\.\d+$/, ".0")}/24`, "Timeout 60", "MaxClients 64",
    `ConnectPort ${connectPort}`, "LogLevel Info", `LogFile "${join(dir, `tinyproxy-${port}.log`)}"`, `PidFile "${join(dir, `tinyproxy-${port}.pid`)}"`, ...extra, ""].join("\n"));
  const p = Bun.spawn([...net.exec, need("tinyproxy", "tinyproxy-bin"), "-d", "-c", conf], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  net.procs.push(p);
  for (let i = 0; ; i++) {
    if (await Bun.connect({ hostname: net.nsIp, port, socket: { data() {} } }).then((s) => (s.end(), true), () => false)) return p;
    if (p.exitCode !== null || i > 100) throw new Error(`tinyproxy did not start: ${await new Response(p.stderr).text()}`);
    await Bun.sleep(50);
  }
}

/** An https:// proxy: nginx's stream module in the namespace on nsIp:port, ending TLS (the test
 *  CA's server certificate) and passing the bytes on to the tinyproxy on nsIp:to. */
async function startTlsProxy(port: number, to: number, cert: { cert: string; key: string }) {
  if (!existsSync(STREAM_MODULE)) throw new Error(`${STREAM_MODULE} not found: apt-get install libnginx-mod-stream`);
  const w = join(dir, `tls-proxy-${port}`);
  mkdirSync(w, { recursive: true });
  writeFileSync(join(w, "nginx.conf"), `daemon off;\nmaster_process off;\npid ${w}/nginx.pid;\nerror_log ${w}/error.log;\nload_module ${STREAM_MODULE};
events { worker_connections 256; }
stream { server { listen ${net.nsIp}:${port} ssl; ssl_certificate ${cert.cert}; ssl_certificate_key ${cert.key}; proxy_pass ${net.nsIp}:${to}; } }\n`);
  const p = Bun.spawn([...net.exec, "nginx", "-p", w, "-c", join(w, "nginx.conf")], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  net.procs.push(p);
  for (let i = 0; ; i++) {
    if (await Bun.connect({ hostname: net.nsIp, port, socket: { data() {} } }).then((s) => (s.end(), true), () => false)) return;
    if (p.exitCode !== null || i > 100) throw new Error(`nginx (stream) did not start: ${await new Response(p.stderr).text()}`);
    await Bun.sleep(50);
  }
}

/** The compiled CLI with extra environment: exit code, stdout, stderr. */
function cli(env: Record<string, string>, ...args: string[]) {
  const p = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** The client addresses nginx logged since line `from`, each with its count. */
function clients(n: Nginx, from: number): Record<string, number> {
  const seen: Record<string, number> = {};
  for (const l of n.lines().slice(from)) {
    const a = l.split(" ").pop()!;
    seen[a] = (seen[a] ?? 0) + 1;
  }
  return seen;
}

beforeAll(async () => {
  need("nginx", "nginx");
  net = createVethNetns("ibproxy", 214);
  proxy = `http://${net.nsIp}:${PROXY_PORT}`;
  const certs = makeTestCertificates(dir, [net.nsIp]);
  ca = certs.ca;
  ({ img, root } = stageWww(dir));
  const at = { host: net.nsIp, exec: net.exec };
  http = await startNginx(www, join(dir, "nginx-http"), 8080, undefined, at);
  https = await startNginx(www, join(dir, "nginx-https"), 8443, { cert: join(dir, "server.pem"), key: join(dir, "server.key") }, at);
  await startTinyproxy(PROXY_PORT, 8443);
  await startTinyproxy(AUTH_PORT, 8443, ["BasicAuth alice s3cret"]);
  await startTlsProxy(TLS_PROXY_PORT, PROXY_PORT, certs);
}, T);
afterAll(async () => {
  await net?.stop();
});

describe("through a proxy on the host", () => {
  for (const scheme of ["http", "https"] as const) {
    for (const [what, path] of [["store", "store"], ["raw image URL", "disk.img"]] as const) {
      test(`${scheme.toUpperCase()}_PROXY: inetboot nbd serves the ${what} over ${scheme}, nbdcopy's copy is byte-identical, every request came through the proxy`, async () => {
        const server = scheme === "http" ? http : https;
        const from = server.lines().length;
        const env = { [`${scheme.toUpperCase()}_PROXY`]: proxy };
        expect(await nbdcopySha(`${server.url}${path}`, dir, `${scheme}-${path}`, ["--ca", ca], env)).toBe(sha(img));
        const seen = clients(server, from);
        expect(Object.keys(seen)).toEqual([net.nsIp]); // the proxy's address, never the host's
        expect(seen[net.nsIp]!).toBeGreaterThan(2);
      }, T);
    }
  }

  test("info, verify and fetch go through the proxy; NO_PROXY (here an address range) sends them directly", () => {
    for (const server of [http, https]) {
      const env = { HTTP_PROXY: proxy, HTTPS_PROXY: proxy };
      let from = server.lines().length;
      expect(cli(env, "info", `${server.url}store`, "--ca", ca).code).toBe(0);
      expect(cli(env, "verify", `${server.url}store`, "--ca", ca).code).toBe(0);
      const out = join(dir, "fetched.img");
      expect(cli(env, "fetch", `${server.url}disk.img`, "--ca", ca, "--out", out, "--quiet").code).toBe(0);
      expect(sha(readFileSync(out))).toBe(sha(img));
      expect(Object.keys(clients(server, from))).toEqual([net.nsIp]);

      from = server.lines().length;
      expect(cli({ ...env, NO_PROXY: "example.org,10.214.0.0/16" }, "info", `${server.url}store`, "--ca", ca).code).toBe(0);
      expect(Object.keys(clients(server, from))).toEqual([net.hostIp]);
    }
  }, T);

  test("a proxy that is down, refuses the tunnel or wants a password: one line naming the proxy, at once where retrying cannot help", () => {
    const dead = `http://${net.nsIp}:9`;
    const r = cli({ HTTP_PROXY: dead }, "info", `${http.url}store`);
    expect(r.code).not.toBe(0);
    expect(r.err.trim()).toBe(`inetboot: cannot fetch store index: ${http.url}store/index: connection refused by proxy ${net.nsIp}:9 (HTTP_PROXY)`);
    const f = cli({ HTTPS_PROXY: dead }, "fetch", `${https.url}disk.img`, "--ca", ca, "--out", join(dir, "never"));
    expect(f.err.trim()).toBe(`inetboot: fetch ${https.url}disk.img: connection refused by proxy ${net.nsIp}:9 (HTTPS_PROXY)`);

    const auth = `http://${net.nsIp}:${AUTH_PORT}`;
    const t0 = performance.now();
    const plain = cli({ HTTP_PROXY: auth }, "info", `${http.url}store`);
    expect(plain.err.trim()).toBe(`inetboot: cannot fetch store index: ${http.url}store/index: HTTP 407: the proxy ${net.nsIp}:${AUTH_PORT} (HTTP_PROXY) wants a user and password (USER:PASSWORD@ before its host in the variable, or a netrc entry for it)`);
    const tunnel = cli({ HTTPS_PROXY: auth }, "info", `${https.url}store`, "--ca", ca);
    expect(tunnel.err.trim().split("\n")).toHaveLength(1);
    expect(tunnel.err).toContain(`proxy ${net.nsIp}:${AUTH_PORT} (HTTPS_PROXY) refused to open a tunnel: 407`);
    expect(performance.now() - t0).toBeLessThan(5000); // not the 30 s mirror deadline, twice

    // tinyproxy's ConnectPort list leaves out 8080: a CONNECT there is refused with 403
    const refused = cli({ HTTPS_PROXY: proxy }, "info", `https://${net.nsIp}:8080/store`);
    expect(refused.err).toContain(`proxy ${net.nsIp}:${PROXY_PORT} (HTTPS_PROXY) refused to open a tunnel: 403`);
  });

  test("an https:// proxy (TLS to the proxy itself, trusted with --ca): store and raw image, http and https; untrusted, the error names it", async () => {
    const tlsProxy = `https://${net.nsIp}:${TLS_PROXY_PORT}`;
    const env = { HTTP_PROXY: tlsProxy, HTTPS_PROXY: tlsProxy };
    for (const server of [http, https]) {
      const from = server.lines().length;
      expect(await nbdcopySha(`${server.url}store`, dir, `tls-proxy-${server.port}`, ["--ca", ca], env)).toBe(sha(img));
      const out = join(dir, "fetched-tls-proxy.img");
      expect(cli(env, "fetch", `${server.url}disk.img`, "--ca", ca, "--out", out, "--quiet").err).toBe("");
      expect(sha(readFileSync(out))).toBe(sha(img));
      expect(Object.keys(clients(server, from))).toEqual([net.nsIp]);
    }
    // without --ca the proxy's certificate is not trusted: for an http:// URL only the proxy speaks
    // TLS, so the message names it; for https:// either handshake may be the one that failed
    const where = `proxy ${net.nsIp}:${TLS_PROXY_PORT} (HTTP_PROXY)`;
    const f = cli({ HTTP_PROXY: tlsProxy }, "fetch", `${http.url}disk.img`, "--out", join(dir, "never"));
    expect(f.code).not.toBe(0);
    expect(f.err.trim()).toStartWith(`inetboot: fetch ${http.url}disk.img: TLS failure with the ${where}: certificate issuer not trusted`);
    const i = cli({ HTTP_PROXY: tlsProxy }, "info", `${http.url}store`);
    expect(i.err.trim()).toStartWith(`inetboot: cannot fetch store index: ${http.url}store/index: TLS failure with the ${where}: certificate issuer not trusted`);
    const s = cli({ HTTPS_PROXY: tlsProxy }, "info", `${https.url}store`);
    expect(s.err.trim()).toStartWith(`inetboot: cannot fetch store index: ${https.url}store/index: TLS failure with ${net.nsIp} or the proxy ${net.nsIp}:${TLS_PROXY_PORT} (HTTPS_PROXY): certificate issuer not trusted`);
  }, T);

  test("a server on loopback is reached directly whatever the variables say: small and large reads alike", async () => {
    const local = await startNginx(www, join(dir, "nginx-loopback"));
    const env = { HTTP_PROXY: `http://${net.nsIp}:9`, http_proxy: `http://${net.nsIp}:9` }; // a dead proxy
    try {
      // a raw image: nbdcopy's 256 KiB reads and the read-ahead's 1 MiB ranges go through fetch
      expect(await nbdcopySha(`${local.url}disk.img`, dir, "loopback", [], env)).toBe(sha(img));
      const out = join(dir, "fetched-loopback.img");
      expect(cli(env, "fetch", `${local.url}disk.img`, "--out", out, "--quiet").err).toBe("");
      expect(sha(readFileSync(out))).toBe(sha(img));
    } finally {
      await local.stop();
    }
  }, T);

  test("the proxy's user and password, in the variable or a netrc, are used and never printed", async () => {
    const auth = `http://alice:s3cret@${net.nsIp}:${AUTH_PORT}`;
    const ok = cli({ HTTP_PROXY: auth, HTTPS_PROXY: auth }, "info", `${https.url}store`, "--ca", ca);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`image size: ${img.length}`);
    const from = http.lines().length;
    expect(await nbdcopySha(`${http.url}store`, dir, "auth", [], { HTTP_PROXY: auth })).toBe(sha(img));
    expect(Object.keys(clients(http, from))).toEqual([net.nsIp]);
    // or in a netrc entry for the proxy's host, the variable without them (how a boot keeps them
    // off the kernel command line)
    const netrc = join(dir, "proxy-netrc");
    writeFileSync(netrc, `machine ${net.nsIp} login alice password s3cret\n`);
    const plainAuth = `http://${net.nsIp}:${AUTH_PORT}`;
    for (const server of [http, https]) {
      const viaNetrc = cli({ HTTP_PROXY: plainAuth, HTTPS_PROXY: plainAuth }, "info", `${server.url}store`, "--ca", ca, "--netrc", netrc);
      expect(viaNetrc.err).toBe("");
      expect(viaNetrc.out).toContain(`image size: ${img.length}`);
    }
    const wrong = cli({ HTTP_PROXY: `http://alice:WRONG-PW@${net.nsIp}:${AUTH_PORT}` }, "info", `${http.url}store`);
    expect(wrong.code).not.toBe(0);
    expect(wrong.err + ok.err + ok.out).not.toContain("s3cret");
    expect(wrong.err).not.toContain("WRONG-PW");
  }, T);
});

describe("through a proxy in the boot", () => {
  test("HTTP_PROXY on the kernel command line: the agent and its NBD daemon fetch the root through the proxy", async () => {
    const from = http.lines().length;
    await withGuest({ append: `quiet inetboot.root=${http.url}root/ HTTP_PROXY=${proxy}` }, async (g) => {
      // (the event documents the route; the nginx log below proves it)
      expect(await g.waitEvent("net.proxy")).toMatchObject({ http: `${net.nsIp}:${PROXY_PORT} (HTTP_PROXY)`, https: null, noProxy: null });
      await g.waitEvent("switch_root");
      await g.waitText(/ROOT-DONE/, 120_000);
      // the booted system read its data file through NBD, the fetcher and the proxy
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
      expect(await g.exited).toBe(0);
    });
    const seen = clients(http, from);
    expect(Object.keys(seen)).toEqual([net.nsIp]);
    expect(http.lines().slice(from).some((l) => l.includes("GET /root/index"))).toBe(true);
  }, T);
});
