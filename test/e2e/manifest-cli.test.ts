// keygen → manifest → sign → manifest --check as a user runs them, plus interop with OpenSSL's
// Ed25519 in both directions (a signature is plain RFC 8032 over the file's exact bytes).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { scratch } from "../lib/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
let dir = "";

function run(cmd: string[], cwd = dir) {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString(), bytes: new Uint8Array(p.stdout) };
}
const cli = (...args: string[]) => run([process.execPath, join(ROOT, "src/main.ts"), ...args]);
const sha256 = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

function expectFail(r: ReturnType<typeof cli>, re: RegExp) {
  expect(r.code).toBe(1);
  const lines = r.err.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(re);
}

/** Our raw 32-byte public key (from a .pub file) as an SPKI PEM for openssl. */
function pemFromPub(pubFile: string): string {
  const b64 = readFileSync(pubFile, "utf8").trim().split(/\s+/)[1]!;
  const der = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(b64, "base64")]);
  return `-----BEGIN PUBLIC KEY-----\n${der.toString("base64")}\n-----END PUBLIC KEY-----\n`;
}

const KERNEL = new Uint8Array(4099).map((_, i) => (i * 31) & 0xff);
const INITRD = new Uint8Array(70001).map((_, i) => (i * 7 + 3) & 0xff);

beforeAll(() => {
  dir = scratch("ib-manifest-cli-");
  writeFileSync(join(dir, "vmlinuz"), KERNEL);
  writeFileSync(join(dir, "initrd.img"), INITRD);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("manifest CLI", () => {
  test("keygen writes a 0600 private key and a public key, and never overwrites", () => {
    const r = cli("keygen", "--out", "release");
    expect(r.code).toBe(0);
    const id = /^key id: ([0-9a-f]{16})$/m.exec(r.out)![1]!;
    expect(statSync(join(dir, "release.key")).mode & 0o777).toBe(0o600);
    const pub = readFileSync(join(dir, "release.pub"), "utf8");
    const [tag, b64, pid] = pub.trim().split(" ");
    expect(tag).toBe("inetboot-ed25519-public");
    expect(pid).toBe(id);
    expect(sha256(Buffer.from(b64!, "base64")).slice(0, 16)).toBe(id);
    const before = readFileSync(join(dir, "release.key"));
    expectFail(cli("keygen", "--out", "release"), /release\.key already exists; not overwriting/);
    // no name, only a directory: it would write the hidden files .key and .pub
    for (const bad of ["", "sub/", "."]) expectFail(cli("keygen", "--out", bad), /^inetboot: bad --out "[^"]*": name the key pair \(e\.g\. --out \S*release\)$/);
    expect(existsSync(join(dir, ".key")) || existsSync(join(dir, "..key"))).toBe(false);
    expect(readFileSync(join(dir, "release.key")).equals(before)).toBe(true);
    expect(cli("keygen", "--out", "other").code).toBe(0);
  });

  test("manifest computes sizes and digests; sign; --check prints the verified entries", () => {
    const b = cli("manifest", "--name", "demo", "--version", "4", "--kernel", "vmlinuz", "--initrd", "initrd.img", "--cmdline", "console=ttyS0 quiet",
      "--title", "Demo OS", "--entry-name", "demo", "--root", "store/", "--rootfstype", "squashfs", "--expires", "2099-01-01T00:00:00Z",
      "--mirror", "https://m1.example/boot/", "--out", "boot.json");
    expect(b.code).toBe(0);
    expect(b.out).toBe("boot.json\n");
    const doc = JSON.parse(readFileSync(join(dir, "boot.json"), "utf8"));
    expect(doc.entries[0].kernel).toEqual({ url: "vmlinuz", size: KERNEL.length, sha256: sha256(KERNEL) });
    expect(doc.entries[0].initrd).toEqual({ url: "initrd.img", size: INITRD.length, sha256: sha256(INITRD) });
    expect(doc).toMatchObject({ format: 1, name: "demo", version: 4, expires: "2099-01-01T00:00:00Z", mirrors: ["https://m1.example/boot/"] });

    const add = cli("manifest", "--add-to", "boot.json", "--entry-name", "rescue", "--kernel", "vmlinuz", "--cmdline", "single", "--default");
    expect(add.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "boot.json"), "utf8")).entries.map((e: any) => e.name)).toEqual(["demo", "rescue"]);

    const s = cli("sign", "boot.json", "--key", "release.key");
    expect(s.code).toBe(0);
    expect(s.out).toBe("boot.sig\n");
    const id = readFileSync(join(dir, "release.pub"), "utf8").trim().split(" ")[2];
    expect(readFileSync(join(dir, "boot.sig"), "utf8")).toMatch(new RegExp(`^inetboot-ed25519-signature ${id} \\S{88}\\n$`));

    const c = cli("manifest", "--check", "boot.json", "--trust", "other.pub", "--trust", "release.pub");
    expect(c.code).toBe(0);
    expect(c.out).toContain(`verified: demo version 4, signed by key ${id}, expires 2099-01-01T00:00:00Z`);
    expect(c.out).toContain("entry demo: Demo OS\n");
    expect(c.out).toContain(`  kernel: vmlinuz (${KERNEL.length} bytes, sha256 ${sha256(KERNEL)})\n`);
    expect(c.out).toContain("  root: store/ fstype=squashfs\n");
    expect(c.out).toContain("entry rescue (default): rescue\n");
    const j = cli("manifest", "--check", "boot.json", "--trust", "release.pub", "--json");
    expect(JSON.parse(j.out).manifest.entries[1].cmdline).toBe("single");
  });

  test("--check refusals: one line naming the reason, exit 1", () => {
    const manifest = readFileSync(join(dir, "boot.json"));
    const otherId = readFileSync(join(dir, "other.pub"), "utf8").trim().split(" ")[2];
    const releaseId = readFileSync(join(dir, "release.pub"), "utf8").trim().split(" ")[2];
    expectFail(cli("manifest", "--check", "boot.json", "--trust", "other.pub"), new RegExp(`refused \\(unknown-key\\): .*unknown key ${releaseId} \\(trusted keys: ${otherId}\\)`));
    expectFail(cli("manifest", "--check", "boot.json", "--trust", "release.pub", "--min-version", "5"), /refused \(rollback\): .*version 4 is lower than version 5/);
    expectFail(cli("manifest", "--check", "boot.json", "--trust", "release.pub", "--now", "2099-01-01T00:00:01Z"), /refused \(expired\): .*expired at 2099-01-01T00:00:00Z/);
    // One changed byte (version 4 → 5): the signature no longer matches.
    writeFileSync(join(dir, "tampered.json"), manifest.toString().replace('"version": 4', '"version": 5'));
    writeFileSync(join(dir, "tampered.sig"), readFileSync(join(dir, "boot.sig")));
    expectFail(cli("manifest", "--check", "tampered.json", "--trust", "release.pub"), /refused \(bad-signature\): .*bad signature by trusted key/);
    writeFileSync(join(dir, "unsigned.json"), manifest);
    expectFail(cli("manifest", "--check", "unsigned.json", "--trust", "release.pub"), /refused \(no-signature\)/);
    expect(cli("manifest", "--check", "unsigned.json", "--allow-unsigned").out).toContain("UNSIGNED");
  });

  test("sign and build refuse bad input with one line", () => {
    writeFileSync(join(dir, "broken.json"), '{"format": 1, "name": "x", "version": 1, "expires": "2099-01-01T00:00:00Z", "entries": [{"name": "a", "kernel": {"url": "k", "size": 1}}]}');
    expectFail(cli("sign", "broken.json", "--key", "release.key"), /bad manifest: missing field entries\[0\]\.kernel\.sha256/);
    expect(existsSync(join(dir, "broken.sig"))).toBe(false);
    expectFail(cli("sign", "boot.json", "--key", "release.pub"), /release\.pub: not an inetboot-ed25519-private key file \(this is a public key\)/);
    expectFail(cli("manifest", "--name", "x", "--version", "1", "--kernel", "missing"), /file not found: .*missing/);
    expectFail(cli("manifest", "--name", "x y", "--version", "1", "--kernel", "vmlinuz"), /name: bad name "x y"/);
    expectFail(cli("manifest", "--name", "x", "--version", "-1", "--kernel", "vmlinuz"), /bad --version/);
    expectFail(cli("manifest", "--add-to", "boot.json", "--entry-name", "demo", "--kernel", "vmlinuz"), /already has an entry named "demo"/);
    // --raw signs any file (a boot script) without reading it as a manifest.
    writeFileSync(join(dir, "boot.sh"), "echo hi\n");
    const r = cli("sign", "--raw", "boot.sh", "--key", "release.key");
    expect(r.code).toBe(0);
    expect(r.out).toBe("boot.sh.sig\n");
  });

  test("sign --append keeps other keys' signatures (key rotation)", () => {
    writeFileSync(join(dir, "rot.json"), readFileSync(join(dir, "boot.json")));
    expect(cli("sign", "rot.json", "--key", "release.key").code).toBe(0);
    expect(cli("sign", "rot.json", "--key", "other.key", "--append").code).toBe(0);
    expect(cli("sign", "rot.json", "--key", "other.key", "--append").code).toBe(0); // replaces its own line
    expect(readFileSync(join(dir, "rot.sig"), "utf8").trim().split("\n")).toHaveLength(2);
    expect(cli("manifest", "--check", "rot.json", "--trust", "release.pub").code).toBe(0);
    expect(cli("manifest", "--check", "rot.json", "--trust", "other.pub").code).toBe(0);
    expect(cli("sign", "rot.json", "--key", "other.key").code).toBe(0); // without --append: replaced
    expectFail(cli("manifest", "--check", "rot.json", "--trust", "release.pub"), /unknown-key/);
  });

  test("OpenSSL verifies our signatures, and we verify OpenSSL's", () => {
    writeFileSync(join(dir, "release.pem"), pemFromPub(join(dir, "release.pub")));
    const sigLine = readFileSync(join(dir, "boot.sig"), "utf8").trim().split(" ");
    writeFileSync(join(dir, "boot.sig.bin"), Buffer.from(sigLine[2]!, "base64"));
    const v = run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "release.pem", "-rawin", "-in", "boot.json", "-sigfile", "boot.sig.bin"]);
    expect(v.code).toBe(0);
    const bad = run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "release.pem", "-rawin", "-in", "tampered.json", "-sigfile", "boot.sig.bin"]);
    expect(bad.code).not.toBe(0);

    // An OpenSSL-made key and signature, written in our file formats.
    expect(run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", "ossl.pem"]).code).toBe(0);
    const der = run(["openssl", "pkey", "-in", "ossl.pem", "-pubout", "-outform", "DER"]).bytes;
    const raw = der.subarray(der.length - 32);
    const id = sha256(raw).slice(0, 16);
    writeFileSync(join(dir, "ossl.pub"), `inetboot-ed25519-public ${Buffer.from(raw).toString("base64")} ${id}\n`);
    const s = run(["openssl", "pkeyutl", "-sign", "-inkey", "ossl.pem", "-rawin", "-in", "boot.json"]);
    expect(s.code).toBe(0);
    expect(s.bytes.length).toBe(64);
    writeFileSync(join(dir, "ossl.sig"), `inetboot-ed25519-signature ${id} ${Buffer.from(s.bytes).toString("base64")}\n`);
    const c = cli("manifest", "--check", "boot.json", "--sig", "ossl.sig", "--trust", "ossl.pub");
    expect(c.code).toBe(0);
    expect(c.out).toContain(`signed by key ${id}`);
  });

  test("--check over HTTP fetches MANIFEST.sig beside MANIFEST.json", async () => {
    const files: Record<string, Uint8Array> = { "/os/boot.json": readFileSync(join(dir, "boot.json")), "/os/boot.sig": readFileSync(join(dir, "boot.sig")) };
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => {
      const b = files[new URL(req.url).pathname];
      return b ? new Response(b) : new Response("no", { status: 404 });
    } });
    try {
      const url = `http://127.0.0.1:${server.port}/os/boot.json`;
      const p = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), "manifest", "--check", url, "--trust", "release.pub"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
      expect(code).toBe(0);
      expect(out).toContain("verified: demo version 4");
      delete files["/os/boot.sig"];
      const q = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), "manifest", "--check", url, "--trust", "release.pub"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      const [err, code2] = await Promise.all([new Response(q.stderr).text(), q.exited]);
      expect(code2).toBe(1);
      expect(err).toMatch(/refused \(no-signature\)/);
    } finally {
      server.stop(true);
    }
  });
});

test("a payload outside the manifest's directory gets a warning (its ../ URL would point outside what is served); a time already past is refused", () => {
  const out = join(dir, "www", "outside.json");
  mkdirSync(join(dir, "www"), { recursive: true });
  const r = cli("manifest", "--name", "demo", "--version", "1", "--kernel", "vmlinuz", "--initrd", "initrd.img", "--cmdline", "quiet", "--out", out);
  expect(r.code).toBe(0);
  expect(r.err).toContain(`warning: kernel URL "../vmlinuz" leaves the manifest's directory: put the file beside the manifest, or use --base-url`);
  expect(r.err).toContain(`warning: initrd URL "../initrd.img" leaves`);
  const beside = cli("manifest", "--name", "demo", "--version", "1", "--kernel", "vmlinuz", "--cmdline", "quiet", "--out", join(dir, "beside.json"));
  expect(beside.err).not.toContain("warning");
  expectFail(cli("manifest", "--name", "demo", "--version", "1", "--kernel", "vmlinuz", "--cmdline", "quiet", "--expires", "2020-01-01T00:00:00Z"), /^inetboot: bad --expires "2020-01-01T00:00:00Z": that time has passed \(now \S+\)$/);
});

test("--check takes no build option (it would be ignored) and needs a value", () => {
  expectFail(cli("manifest", "--check", "boot.json", "--kernel", "vmlinuz", "--out", "x.json"), /^inetboot: --check verifies a manifest; it does not take --kernel, --out$/);
  expectFail(cli("manifest", "--check", ""), /^inetboot: --check needs a manifest file or URL$/);
});

test("--root pins the store's index (read beside the manifest): root.sha256; without an index there, a warning", () => {
  const www = join(dir, "pinned");
  mkdirSync(www, { recursive: true });
  writeFileSync(join(dir, "root.img"), new Uint8Array(200_000).map((_, i) => (i * 13) & 0xff));
  expect(cli("pack", join(dir, "root.img"), join(www, "store")).code).toBe(0);
  const out = join(www, "boot.json");
  const r = cli("manifest", "--name", "demo", "--version", "1", "--kernel", "vmlinuz", "--cmdline", "quiet", "--root", "store/", "--out", out);
  expect(r.code).toBe(0);
  const root = JSON.parse(readFileSync(out, "utf8")).entries[0].root;
  expect(root).toEqual({ url: "store/", sha256: sha256(readFileSync(join(www, "store/index"))) });
  const missing = cli("manifest", "--name", "demo", "--version", "1", "--kernel", "vmlinuz", "--cmdline", "quiet", "--root", "nostore/", "--out", join(www, "b2.json"));
  expect(missing.code).toBe(0);
  expect(missing.err).toContain(`warning: root nostore/: no store index at ${join(www, "nostore/index")} (ENOENT): the signature does not cover the root`);
  expect(JSON.parse(readFileSync(join(www, "b2.json"), "utf8")).entries[0].root).toEqual({ url: "nostore/" });
  expectFail(cli("manifest", "--name", "demo", "--version", "1", "--kernel", "vmlinuz", "--root", "store/", "--root-sha256", "xyz"), /^inetboot: bad --root-sha256 "xyz": expected 64 hex digits$/);
});
