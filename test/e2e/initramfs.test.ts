// `inetboot initramfs` end to end: run the CLI from source, read the archive back with lz4 or zstd +
// GNU cpio, check determinism and error lines, and boot it with the Debian kernel under QEMU (the
// kernel must unpack the lz4 or zstd archive and run /init, which runs the dynamically linked /inetboot).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { appendPadding } from "../../src/boot/handoff.ts";
import { encodeArchive } from "../../src/initramfs/cpio.ts";
import { scratch } from "../lib/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const BUN = process.execPath;
const KDIR = process.env.INETBOOT_KERNEL_DIR ?? (existsSync(join(ROOT, "build/kernel/lib/modules")) ? join(ROOT, "build/kernel") : "/tmp/k/x");
const KVER = "6.1.0-56-amd64";
const VMLINUZ = join(KDIR, "boot", `vmlinuz-${KVER}`);
const AGENT = "/bin/true"; // a small dynamically linked stand-in for the 110 MB agent

let dir = "";
let init = "";

// The stand-in pre-init: checks what the agent will rely on, runs /inetboot, powers off.
const INIT_C = `
#include <stdio.h>
#include <unistd.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
int main(void) {
  struct stat st;
  int null_ok = stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
  int ld_ok = stat("/lib64/ld-linux-x86-64.so.2", &st) == 0;
  int dep_ok = stat("/lib/modules/${KVER}/modules.dep", &st) == 0;
  int extra = stat("/etc/extra-mark", &st) == 0;
  int status = -1;
  pid_t pid = fork();
  if (pid == 0) { char *argv[] = { "/inetboot", 0 }; execv("/inetboot", argv); _exit(127); }
  waitpid(pid, &status, 0);
  printf("\\nINITRAMFS-MARK null=%d ld=%d dep=%d extra=%d agent_exit=%d\\n", null_ok, ld_ok, dep_ok, extra, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  fflush(stdout);
  reboot(RB_POWER_OFF);
  return 0;
}
`;

function sh(cmd: string[], opts: { cwd?: string; stdin?: Uint8Array; env?: Record<string, string> } = {}) {
  const r = Bun.spawnSync(cmd, { cwd: opts.cwd, stdin: opts.stdin, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString(), bytes: new Uint8Array(r.stdout) };
}

function cli(args: string[], env: Record<string, string> = {}) {
  return sh([BUN, join(ROOT, "src/main.ts"), "initramfs", ...args], { cwd: dir, env });
}

function sha256(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

/** Resolve a path inside an extracted root, following its symlinks (absolute targets stay inside). */
function inRoot(root: string, path: string): string {
  let pending = path.split("/").filter(Boolean);
  const cur: string[] = [];
  for (let hops = 0; pending.length; ) {
    const c = pending.shift()!;
    if (c === "..") {
      cur.pop();
      continue;
    }
    if (c === ".") continue;
    const p = join(root, ...cur, c);
    if (existsSync(p) || lstatSync(p, { throwIfNoEntry: false })) {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) {
        if (++hops > 40) throw new Error("loop");
        const t = readlinkSync(p);
        if (t.startsWith("/")) cur.length = 0;
        pending = [...t.split("/").filter(Boolean), ...pending];
        continue;
      }
    }
    cur.push(c);
  }
  return join(root, ...cur);
}

const LZ4_LEGACY_MAGIC = "02214c18";
const ZSTD_MAGIC = "28b52ffd";

function magic(img: string): string {
  return readFileSync(img).subarray(0, 4).toString("hex");
}

/** The cpio inside an image, decompressed by the tool its magic names (lz4 legacy, zstd) or as is. */
function plainCpio(img: string): Uint8Array {
  const tool = { [LZ4_LEGACY_MAGIC]: "lz4", [ZSTD_MAGIC]: "zstd" }[magic(img)];
  if (!tool) return new Uint8Array(readFileSync(img));
  const r = sh([tool, "-dc", img]);
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  return r.bytes;
}

function unpack(img: string, into: string): void {
  mkdirSync(into, { recursive: true });
  const x = sh(["cpio", "-idm", "--no-absolute-filenames", "--quiet"], { cwd: into, stdin: plainCpio(img) });
  expect(x.err).toBe("");
  expect(x.code).toBe(0);
}

beforeAll(() => {
  dir = scratch("initramfs-e2e-");
  writeFileSync(join(dir, "init.c"), INIT_C);
  init = join(dir, "init");
  const cc = sh(["musl-gcc", "-static", "-O2", "-o", init, join(dir, "init.c")]);
  expect(cc.err).toBe("");
  expect(cc.code).toBe(0);
  writeFileSync(join(dir, "trusted.pub"), "ed25519 test key\n");
  mkdirSync(join(dir, "ca/sub"), { recursive: true });
  writeFileSync(join(dir, "ca/root.pem"), "-----BEGIN CERTIFICATE-----\nx\n");
  writeFileSync(join(dir, "ca/sub/inner.pem"), "inner\n");
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("inetboot initramfs", () => {
  test("archive holds init, agent, its libraries, base dirs, device nodes, modules, extra files, busybox", () => {
    const out = join(dir, "full.img");
    const r = cli([
      "--out", out, "--agent", AGENT, "--init", init, "--kernel", KDIR, "--modules", "virtio_net,ext4",
      "--file", `${join(dir, "trusted.pub")}:/etc/inetboot/trusted.pub`, "--file", `${join(dir, "ca")}:/etc/ssl/inetboot`, "--with-busybox",
    ]);
    expect(r.err).not.toContain("inetboot: "); // no error line
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${out}\n`);

    expect(magic(out)).toBe(LZ4_LEGACY_MAGIC); // the default
    const list = sh(["cpio", "-itv", "--quiet"], { stdin: plainCpio(out) });
    expect(list.code).toBe(0);
    const lines = list.out.trim().split("\n");
    const entry = (name: string) => lines.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `));
    expect(entry("dev/console")).toMatch(/^crw------- +1 root +root +5, +1 /);
    expect(entry("dev/null")).toMatch(/^crw-rw-rw- +1 root +root +1, +3 /);
    expect(entry("dev/tty")).toMatch(/^crw-rw-rw- +1 root +root +5, +0 /);
    expect(entry("tmp")).toMatch(/^drwxrwxrwt /);
    expect(entry("init")).toMatch(/^-rwxr-xr-x /);
    expect(entry("inetboot")).toMatch(/^-rwxr-xr-x /);
    expect(entry("bin/sh")).toMatch(/-> busybox$/);
    // sorted, so every parent comes before its children
    const names = lines.map((l) => l.replace(/ -> .*$/, "").split(/\s+/).pop()!);
    expect(names).toEqual([...names].sort());

    const root = join(dir, "full");
    unpack(out, root);
    for (const d of ["proc", "sys", "dev", "run", "tmp", "etc", "mnt", "sysroot", "root"]) expect(statSync(join(root, d)).isDirectory()).toBe(true);
    expect(readFileSync(join(root, "init")).equals(readFileSync(init))).toBe(true);
    expect(readFileSync(join(root, "inetboot")).equals(readFileSync(AGENT))).toBe(true);
    expect(readFileSync(join(root, "bin/busybox")).equals(readFileSync("/bin/busybox"))).toBe(true);
    expect(readFileSync(join(root, "etc/inetboot/trusted.pub"), "utf8")).toBe("ed25519 test key\n");
    expect(readFileSync(join(root, "etc/ssl/inetboot/sub/inner.pem"), "utf8")).toBe("inner\n");

    // Every library ldd names for the agent resolves inside the archive to the same bytes.
    const ldd = sh(["ldd", AGENT]).out;
    const wanted = [...ldd.matchAll(/(?:=>\s+)?(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
    expect(wanted).toContain("/lib64/ld-linux-x86-64.so.2");
    for (const lib of wanted) {
      const p = inRoot(root, lib);
      expect(statSync(p).isFile()).toBe(true);
      expect(readFileSync(p).equals(readFileSync(lib))).toBe(true);
    }

    // Modules: the closure, byte-identical, plus index files restricted to it.
    const mdir = inRoot(root, `/lib/modules/${KVER}`);
    const dep = readFileSync(join(mdir, "modules.dep"), "utf8");
    const depNames = dep.trim().split("\n").map((l) => posix.basename(l.split(":")[0]!, ".ko").replace(/-/g, "_")).sort();
    for (const m of ["virtio_net", "net_failover", "failover", "virtio", "virtio_ring", "ext4", "jbd2", "mbcache", "crc16", "crc32c_generic"]) expect(depNames).toContain(m);
    expect(depNames).not.toContain("e1000");
    for (const line of dep.trim().split("\n")) {
      for (const rel of line.replace(":", "").split(" ")) {
        expect(readFileSync(join(mdir, rel)).equals(readFileSync(join(KDIR, "lib/modules", KVER, rel)))).toBe(true);
      }
    }
    const alias = readFileSync(join(mdir, "modules.alias"), "utf8");
    expect(alias).toContain("alias virtio:d00000001v* virtio_net\n");
    expect(alias).toContain("alias fs-ext4 ext4\n");
    expect(alias).not.toContain(" e1000\n");
    expect(readFileSync(join(mdir, "modules.softdep"), "utf8")).toContain("softdep ext4 pre: ");
  });

  test("deterministic: same inputs give the same bytes; SOURCE_DATE_EPOCH sets every mtime", () => {
    const args = (o: string) => ["--out", join(dir, o), "--agent", AGENT, "--init", init, "--kernel", KDIR, "--modules", "virtio_pci", "--with-busybox"];
    expect(cli(args("d1.img")).code).toBe(0);
    expect(cli(args("d2.img")).code).toBe(0);
    expect(sha256(join(dir, "d1.img"))).toBe(sha256(join(dir, "d2.img")));
    expect(cli(args("d3.img"), { SOURCE_DATE_EPOCH: "1700000000" }).code).toBe(0);
    expect(sha256(join(dir, "d3.img"))).not.toBe(sha256(join(dir, "d1.img")));
    const root = join(dir, "d3");
    unpack(join(dir, "d3.img"), root);
    for (const p of ["init", "inetboot", `usr/lib/modules/${KVER}/modules.dep`, "bin/busybox"]) {
      expect(statSync(inRoot(root, p)).mtimeMs).toBe(1700000000 * 1000);
    }
    // --compress none writes the same archive lz4 and zstd wrap
    expect(cli([...args("d4.cpio"), "--compress", "none"]).code).toBe(0);
    expect(cli([...args("d5.zst"), "--compress", "zstd"]).code).toBe(0);
    const plain = readFileSync(join(dir, "d4.cpio"));
    expect(magic(join(dir, "d4.cpio"))).toBe(Buffer.from("0707").toString("hex"));
    expect(magic(join(dir, "d5.zst"))).toBe(ZSTD_MAGIC);
    expect(plain.equals(plainCpio(join(dir, "d1.img")))).toBe(true);
    expect(plain.equals(plainCpio(join(dir, "d5.zst")))).toBe(true);
    // zstd frame the kernel can take: plain frame, 8 MiB window at most.
    const info = sh(["zstd", "-lv", join(dir, "d5.zst")]);
    expect(info.code).toBe(0);
    const win = /Window Size:.*\((\d+) B\)/.exec(info.out + info.err);
    expect(Number(win?.[1])).toBeLessThanOrEqual(8 << 20);
  });

  test("clear one-line errors, non-zero exit, no output file", () => {
    const out = join(dir, "bad.img");
    const cases: Array<[string[], RegExp]> = [
      [["--agent", join(dir, "nope"), "--init", init], /agent executable not found: .*nope/],
      [["--agent", AGENT, "--init", join(dir, "noinit")], /pre-init not found: .*noinit/],
      [["--agent", AGENT, "--init", init, "--kernel", KDIR, "--modules", "virtio_net,no_such_mod"], new RegExp(`unknown module no_such_mod: not in ${KDIR}/lib/modules/${KVER}`)],
      [["--agent", AGENT, "--init", init, "--file", "no-colon"], /bad --file "no-colon": expected SRC:DEST/],
      [["--agent", AGENT, "--init", init, "--file", `${join(dir, "missing")}:/etc/x`], /bad --file .*missing:\/etc\/x: .*missing does not exist/],
      [["--agent", join(dir, "trusted.pub"), "--init", init], /agent executable is not an ELF executable/],
      [["--agent", AGENT, "--init", init, "--compress", "zstd", "--level", "25"], /bad zstd level 25/],
      [["--agent", AGENT, "--init", init, "--level", "3"], /--level is for --compress zstd only \(lz4 has no levels\)/],
      [["--agent", AGENT, "--init", init, "--compress", "gzip"], /bad --compress gzip: use lz4, zstd, none/],
    ];
    for (const [args, re] of cases) {
      const r = cli(["--out", out, ...args]);
      expect([args.join(" "), r.code]).toEqual([args.join(" "), 1]);
      expect(r.out).toBe("");
      const errLines = r.err.trim().split("\n");
      expect(errLines.length).toBe(1);
      expect(errLines[0]).toMatch(re);
      expect(existsSync(out)).toBe(false);
    }
  });

  // lz4 (the default) with an archive appended as the agent appends its kexec handoff, and zstd -19.
  const boots: Array<[string, string[], boolean]> = [
    ["lz4, then an appended archive", [], true],
    ["zstd -19", ["--compress", "zstd", "--level", "19"], false],
  ];
  for (const [name, extraArgs, append] of boots) {
    test(`the Debian kernel unpacks it (${name}) and runs /init, which runs the agent with its libraries`, async () => {
      const out = join(dir, `boot-${extraArgs.length ? "zstd" : "lz4"}.img`);
      const r = cli(["--out", out, "--agent", AGENT, "--init", init, "--kernel", KDIR, "--modules", "virtio_net", ...extraArgs]);
      expect(r.code).toBe(0);
      if (append) {
        // The lz4 frame has no end mark: the kernel must stop at the zero word appendPadding adds.
        writeFileSync(out, appendPadding(statSync(out).size), { flag: "a" });
        const mark = encodeArchive([
          { path: "etc", kind: "dir", perm: 0o755 },
          { path: "etc/extra-mark", kind: "file", perm: 0o644, data: new TextEncoder().encode("x") },
        ]);
        writeFileSync(out, mark, { flag: "a" });
      }
      const q = Bun.spawn(
        ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "256", "-nographic", "-no-reboot", "-kernel", VMLINUZ, "-initrd", out,
          "-append", "console=ttyS0 panic=-1 quiet"],
        { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      const timer = setTimeout(() => q.kill(), 90_000);
      const console_ = await new Response(q.stdout).text();
      clearTimeout(timer);
      await q.exited;
      expect(console_).not.toContain("Initramfs unpacking failed");
      expect(console_).toContain(`INITRAMFS-MARK null=1 ld=1 dep=1 extra=${append ? 1 : 0} agent_exit=0`);
    }, 120_000);
  }
});
