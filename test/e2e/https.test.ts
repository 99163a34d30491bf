// HTTPS end to end: a store and a raw image behind Debian's nginx with TLS, its certificate issued
// by a private CA made here with openssl. On the host, the commands that read URLs refuse the
// server until `--ca` names the CA (a one-line error, at once: no waiting out the mirror deadline),
// then nbdcopy reads the export byte-identical. In QEMU, an initramfs carrying the CA as
// /etc/inetboot/ca.pem boots the root over https://, and one without it stops in the rescue shell.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { withGuest } from "../lib/qemu.ts";
import { expectRescueShell } from "../lib/rescue.ts";
import type { BusyboxRoot } from "../lib/roots.ts";
import { BIN, buildRootInitrd, nbdcopySha, stageWww } from "../lib/http-fixtures.ts";
import { sha, startNbd, startNginx, startServe, type Nginx } from "../lib/servers.ts";
import { run } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";
import { makeTestCertificates, type TestCertificates } from "../lib/tls.ts";

const T = 240_000;
const dir = scratch("inetboot-https-");
const www = join(dir, "www");
let tls: TestCertificates;
const ca = join(dir, "ca.pem");
let nginx: Nginx;
let img: Uint8Array;
let root: BusyboxRoot;

/** The compiled CLI: exit code, stdout, stderr. */
function cli(...args: string[]) {
  const p = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

beforeAll(async () => {
  tls = makeTestCertificates(dir, ["127.0.0.1", "10.0.2.2"]); // the host's and the guest's address of nginx
  ({ img, root } = stageWww(dir));
  nginx = await startNginx(www, join(dir, "nginx"), undefined, { cert: tls.cert, key: tls.key });
}, T);
afterAll(async () => {
  await nginx?.stop();
});

describe("https on the host", () => {
  test("a server whose CA is not trusted: one line that says how to trust it, at once; a bad --ca file is named", () => {
    const t0 = performance.now();
    const r = cli("info", `${nginx.url}store`);
    expect(performance.now() - t0).toBeLessThan(5000); // not the 30 s mirror deadline
    expect(r.code).not.toBe(0);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("TLS failure with 127.0.0.1: certificate issuer not trusted");
    expect(r.err).toContain("--ca FILE");
    for (const args of [["nbd", `${nginx.url}store`, "--listen", `unix:${dir}/never.sock`], ["fetch", `${nginx.url}store/index`, "--out", join(dir, "never")]]) {
      const x = cli(...args);
      expect(x.code).not.toBe(0);
      expect(x.err).toContain("certificate issuer not trusted");
    }
    const missing = cli("info", `${nginx.url}store`, "--ca", join(dir, "no-such.pem"));
    expect(missing.code).not.toBe(0);
    expect(missing.err.trim()).toBe(`inetboot: CA file ${join(dir, "no-such.pem")}: no such file`);
    const notPem = cli("verify", `${nginx.url}store`, "--ca", join(dir, "san.ext"));
    expect(notPem.err.trim()).toBe(`inetboot: CA file ${join(dir, "san.ext")}: no PEM certificate in it`);
  });

  test("with --ca: info, verify and fetch read the store over https", () => {
    const info = cli("info", `${nginx.url}store`, "--ca", ca);
    expect(info.code).toBe(0);
    expect(info.out).toContain(`image size: ${img.length}`);
    const verify = cli("verify", `${nginx.url}store`, "--ca", ca);
    expect(verify.code).toBe(0);
    const out = join(dir, "fetched.img");
    const f = cli("fetch", `${nginx.url}disk.img`, "--ca", ca, "--out", out, "--quiet");
    expect(f.code).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(img));
  });

  for (const [what, path] of [["store", "store"], ["raw image URL", "disk.img"]] as const) {
    test(`inetboot nbd --ca serves the ${what} over https: nbdcopy's copy is byte-identical`, async () => {
      const n = await startNbd(`${nginx.url}${path}`, ["--listen", `unix:${dir}/${path}.sock`, "--ca", ca]);
      try {
        expect(run(["nbdinfo", "--size", n.uri]).trim()).toBe(String(img.length));
        const copy = join(dir, `copy-${path}.img`);
        run(["nbdcopy", n.uri, copy]);
        expect(sha(readFileSync(copy))).toBe(sha(img));
      } finally {
        await n.stop();
      }
      // every byte came through nginx's TLS server
      expect(nginx.lines().some((l) => l.includes(`GET /${path}`))).toBe(true);
    }, T);
  }
});

describe("inetboot serve --cert --key", () => {
  test("serves https: info, and nbdcopy through inetboot nbd, byte-identical for the store and the raw image", async () => {
    const srv = await startServe(www, 0, ["--cert", tls.cert, "--key", tls.key]);
    try {
      expect(srv.url).toStartWith("https://127.0.0.1:");
      expect(cli("info", `${srv.url}store`).err).toContain("certificate issuer not trusted");
      expect(cli("info", `${srv.url}store`, "--ca", ca).out).toContain(`image size: ${img.length}`);
      for (const path of ["store", "disk.img"]) {
        expect(await nbdcopySha(`${srv.url}${path}`, dir, `serve-${path}`, ["--ca", ca])).toBe(sha(img));
      }
      expect(srv.lines().some((l) => l.includes('"GET /disk.img"'))).toBe(true);
    } finally {
      await srv.stop();
    }
  }, T);

  test("a missing half, a file that is not PEM, a key of another certificate: one line each", () => {
    const serve = (...a: string[]) => cli("serve", www, "--port", "0", ...a);
    expect(serve("--cert", tls.cert).err.trim()).toBe("inetboot: --cert and --key go together (the certificate chain and its private key, PEM)");
    expect(serve("--cert", tls.cert, "--key", ca).err.trim()).toBe(`inetboot: key file ${ca}: no PEM key in it`);
    expect(serve("--cert", join(dir, "san.ext"), "--key", tls.key).err.trim()).toBe(`inetboot: certificate file ${join(dir, "san.ext")}: no PEM certificate in it`);
    const other = makeTestCertificates(scratch("inetboot-https-other-"), ["127.0.0.1"]);
    const r = serve("--cert", tls.cert, "--key", other.key);
    expect(r.code).toBe(1);
    expect(r.err.trim()).toBe("inetboot: serve: the key does not belong to the certificate (--key, --cert)");
  });
});

describe("https in the boot", () => {
  const initrd = join(dir, "initrd-ca.cpio.zst");
  const guestUrl = () => `${nginx.url.replace("127.0.0.1", "10.0.2.2")}root/`;

  test("an initramfs with the CA (--ca: /etc/inetboot/ca.pem) boots the root from https://", async () => {
    buildRootInitrd(initrd, "--ca", ca);
    await withGuest({ initrd, append: `quiet inetboot.root=${guestUrl()}` }, async (g) => {
      await g.waitEvent("switch_root");
      await g.waitText(/ROOT-DONE/, 120_000);
      // the booted system read its data file through NBD, the fetcher and TLS
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
      expect(await g.exited).toBe(0);
      expect(g.output).not.toMatch(/I\/O error|Kernel panic/);
    });
    expect(nginx.lines().some((l) => l.includes("GET /root/index"))).toBe(true);
  }, T);

  test("without the CA the agent names the TLS failure and offers the rescue shell", async () => {
    await withGuest({ append: `quiet inetboot.root=${guestUrl()}` }, (g) => expectRescueShell(g, /certificate issuer not trusted/));
  }, T);
});
