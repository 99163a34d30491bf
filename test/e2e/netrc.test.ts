// A store behind nginx's HTTP Basic authentication, its password in a netrc file instead of the
// URL: `--netrc FILE` / INETBOOT_NETRC on the host, /etc/inetboot/netrc in a boot's initramfs (so
// the password is not on the kernel command line, which the booted system can read). nginx logs
// the user of every request: that, and the bytes, are the evidence.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withGuest } from "../lib/qemu.ts";
import { expectRescueShell } from "../lib/rescue.ts";
import type { BusyboxRoot } from "../lib/roots.ts";
import { BIN, buildRootInitrd, nbdcopySha, stageWww } from "../lib/http-fixtures.ts";
import { sha, startNginx, type Nginx } from "../lib/servers.ts";
import { run } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

const T = 240_000;
const dir = scratch("inetboot-netrc-");
const www = join(dir, "www");
const PASSWORD = "s3cret pw"; // a space: the netrc quotes it
const netrc = join(dir, "netrc");
let nginx: Nginx;
let img: Uint8Array;
let root: BusyboxRoot;

function cli(env: Record<string, string>, ...args: string[]) {
  const p = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** The users nginx logged since line `from` (its log lines end in "$remote_user $remote_addr"). */
const users = (from: number) => [...new Set(nginx.lines().slice(from).map((l) => l.split(" ").at(-2)))];

beforeAll(async () => {
  ({ img, root } = stageWww(dir));
  const hash = run(["openssl", "passwd", "-apr1", PASSWORD]).trim();
  writeFileSync(join(dir, "htpasswd"), `boot:${hash}\n`);
  nginx = await startNginx(www, join(dir, "nginx"), undefined, undefined, { server: `auth_basic "inetboot"; auth_basic_user_file ${dir}/htpasswd;` });
  // the host reaches nginx at 127.0.0.1, a QEMU guest at 10.0.2.2
  writeFileSync(netrc, `# test store\nmachine 127.0.0.1 login boot password "${PASSWORD}"\nmachine 10.0.2.2\n  login boot\n  password "${PASSWORD}"\n`);
}, T);
afterAll(async () => {
  await nginx?.stop();
});

describe("netrc on the host", () => {
  test("--netrc and INETBOOT_NETRC: info, verify, fetch and nbd read the store and the raw image as the netrc's user", async () => {
    const from = nginx.lines().length;
    for (const [env, extra] of [[{}, ["--netrc", netrc]], [{ INETBOOT_NETRC: netrc }, []]] as const) {
      const info = cli(env, "info", `${nginx.url}store`, ...extra);
      expect(info.code).toBe(0);
      expect(info.out).toContain(`image size: ${img.length}`);
      expect(cli(env, "verify", `${nginx.url}store`, ...extra).code).toBe(0);
      const out = join(dir, "fetched.img");
      expect(cli(env, "fetch", `${nginx.url}disk.img`, "--out", out, "--quiet", ...extra).code).toBe(0);
      expect(sha(readFileSync(out))).toBe(sha(img));
      expect(info.out + info.err).not.toContain("s3cret");
    }
    for (const path of ["store", "disk.img"]) {
      expect(await nbdcopySha(`${nginx.url}${path}`, dir, `${path}`, ["--netrc", netrc])).toBe(sha(img));
    }
    expect(users(from)).toEqual(["boot"]); // every request, the chunk GETs and Range reads included
  }, T);

  test("no netrc, a wrong password in it, a malformed or missing file: one line each, at once", () => {
    const t0 = performance.now();
    const none = cli({}, "info", `${nginx.url}store`);
    expect(none.err.trim()).toBe(`inetboot: cannot fetch store index: ${nginx.url}store/index: HTTP 401: the server wants a user and password (put USER:PASSWORD@ before the host in the URL)`);
    const wrongFile = join(dir, "netrc-wrong");
    writeFileSync(wrongFile, "machine 127.0.0.1 login boot password nope\n");
    const wrong = cli({}, "info", `${nginx.url}store`, "--netrc", wrongFile);
    expect(wrong.code).toBe(1);
    expect(wrong.err.trim()).toBe(`inetboot: cannot fetch store index: ${nginx.url}store/index: HTTP 401: the server refused the user and password for 127.0.0.1 in ${wrongFile}`);
    expect(performance.now() - t0).toBeLessThan(10_000); // not retried to the mirror deadline
    const badFile = join(dir, "netrc-bad");
    writeFileSync(badFile, "machine 127.0.0.1 username boot\n");
    for (const args of [["info", `${nginx.url}store`], ["fetch", `${nginx.url}disk.img`, "--out", join(dir, "never")], ["nbd", `${nginx.url}store`, "--listen", `unix:${dir}/never.sock`],
      ["initramfs", "--out", join(dir, "never.cpio")]]) {
      const bad = cli({}, ...args, "--netrc", badFile);
      expect(bad.code).toBe(1);
      expect(bad.err.trim()).toBe(`inetboot: netrc file ${badFile}: unknown word "username" (expected machine, default, login, password, account or macdef)`);
      const missing = cli({}, ...args, "--netrc", join(dir, "nope"));
      expect(missing.err.trim()).toBe(`inetboot: netrc file ${join(dir, "nope")}: no such file`);
    }
  });
});

describe("netrc in the boot", () => {
  const initrd = join(dir, "initrd-netrc.cpio.zst");
  const guestUrl = () => `${nginx.url.replace("127.0.0.1", "10.0.2.2")}root/`;

  test("initramfs --netrc puts it at /etc/inetboot/netrc: the root's URL carries no password and the boot reads it as the netrc's user", async () => {
    buildRootInitrd(initrd, "--netrc", netrc);
    const from = nginx.lines().length;
    await withGuest({ initrd, append: `quiet inetboot.root=${guestUrl()}` }, async (g) => {
      await g.waitEvent("switch_root");
      await g.waitText(/ROOT-DONE/, 120_000);
      // the booted system read its data file through the NBD daemon, which had the netrc too
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
      // the passwords are gone from the initramfs the booted system can reach (the daemon's root)
      expect(g.output).toContain("NBD-DAEMON-NETRC absent");
      expect(await g.exited).toBe(0);
      expect(g.output).not.toContain("s3cret");
    });
    expect(users(from)).toEqual(["boot"]);
    expect(nginx.lines().slice(from).filter((l) => l.includes("/root/chunks/")).length).toBeGreaterThan(3);
  }, T);

  test("without it the agent names the 401 and offers the rescue shell", async () => {
    await withGuest({ append: `quiet inetboot.root=${guestUrl()}` }, (g) => expectRescueShell(g, /HTTP 401/));
  }, T);
});
