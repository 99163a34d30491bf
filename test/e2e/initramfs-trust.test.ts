// `inetboot initramfs --trust KEY.pub --allow-unsigned`: the keys land at /etc/inetboot/trusted/<id>.pub
// (read back with GNU cpio) and load with loadTrustedKeys, as the agent will read them.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadTrustedKeys, readPublicKeyFile, unsignedAllowed } from "../../src/manifest/keys.ts";
import { scratch } from "../lib/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const dir = scratch("ib-initramfs-trust-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

// /bin/true stands in for both the pre-init and the agent: any ELF will do for the layout.
const base = ["initramfs", "--agent", "/bin/true", "--init", "/bin/true", "--compress", "none"];

describe("initramfs trust", () => {
  test("--trust (repeatable) and --allow-unsigned place the files the agent reads", () => {
    expect(cli("keygen", "--out", "a").code).toBe(0);
    expect(cli("keygen", "--out", "b").code).toBe(0);
    const r = cli(...base, "--out", "t.cpio", "--trust", "a.pub", "--trust=b.pub", "--allow-unsigned");
    expect(r.code).toBe(0);
    const x = join(dir, "x");
    mkdirSync(x);
    const cp = Bun.spawnSync(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], { cwd: x, stdin: readFileSync(join(dir, "t.cpio")), stderr: "pipe" });
    expect(cp.stderr.toString()).toBe("");
    expect(cp.exitCode).toBe(0);
    const a = readPublicKeyFile(join(dir, "a.pub"));
    const b = readPublicKeyFile(join(dir, "b.pub"));
    const trusted = join(x, "etc/inetboot/trusted");
    expect(readdirSync(trusted).sort()).toEqual([`${a.id}.pub`, `${b.id}.pub`].sort());
    expect(readFileSync(join(trusted, `${a.id}.pub`), "utf8")).toBe(readFileSync(join(dir, "a.pub"), "utf8"));
    expect(statSync(join(trusted, `${a.id}.pub`)).mode & 0o777).toBe(0o644);
    expect(loadTrustedKeys(trusted).map((k) => k.id).sort()).toEqual([a.id, b.id].sort());
    expect(unsignedAllowed(join(x, "etc/inetboot/allow-unsigned"))).toBe(true);

    const plain = cli(...base, "--out", "p.cpio");
    expect(plain.code).toBe(0);
    const list = Bun.spawnSync(["cpio", "-it", "--quiet"], { stdin: readFileSync(join(dir, "p.cpio")), stdout: "pipe" }).stdout.toString().split("\n");
    expect(list.filter((l) => l.includes("inetboot/"))).toEqual([]);
  });

  test("a private key or a damaged key is refused with one line, and nothing is written", () => {
    for (const [arg, re] of [
      ["a.key", /bad --trust a\.key: not an inetboot-ed25519-public key file \(this is a private key\)/],
      ["nope.pub", /bad --trust nope\.pub: cannot read public key nope\.pub: no such file/],
    ] as const) {
      const r = cli(...base, "--out", "bad.cpio", "--trust", arg);
      expect(r.code).toBe(1);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(re);
      expect(existsSync(join(dir, "bad.cpio"))).toBe(false);
    }
  });
});
