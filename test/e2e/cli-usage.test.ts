// The executable as a user types it: `--help` for every command (exit 0, no ANSI colours when
// piped), and usage mistakes (unknown command, unknown option, missing argument) as one line on
// stderr naming the mistake and where help is, exit 2, nothing started.
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD } from "../lib/qemu.ts";
import { scratch } from "../lib/tmp.ts";
import pkg from "../../package.json" with { type: "json" };

const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-cli-");
// what a user's shell has: none of the variables that turn colours off
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !["CI", "NO_COLOR", "FORCE_COLOR", "TEST", "NODE_ENV"].includes(k)));
const sh = (...args: string[]) => {
  const r = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", env, timeout: 20_000 }); // a command that should have refused must not hang the suite
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};
const COMMANDS = ["initramfs", "fetch", "cmdline", "pack", "verify", "info", "nbd", "serve", "iso", "usb", "cache", "keygen", "sign", "manifest", "profile"];

test("--help: every command's usage page, exit 0, plain text when piped", () => {
  const top = sh("--help");
  expect(top.code).toBe(0);
  for (const c of COMMANDS) expect(top.out).toContain(c);
  for (const args of [...COMMANDS.map((c) => [c]), ["cache", "verify"], ["profile", "pack"]]) {
    const r = sh(...args, "--help");
    expect(r.code, args.join(" ")).toBe(0);
    expect(r.out, args.join(" ")).toContain(`USAGE inetboot ${args.join(" ")}`);
    expect(r.out + r.err, args.join(" ")).not.toContain("\x1b[");
  }
  expect(sh("--version")).toMatchObject({ code: 0, out: `${pkg.version}\n` });
});

test("usage mistakes: one line on stderr, exit 2, nothing done", () => {
  const sock = join(tmp, "nbd.sock");
  for (const [args, line] of [
    [["nosuch"], "inetboot: unknown command nosuch (see 'inetboot --help')"],
    [["cache", "nosuch"], "inetboot: unknown command nosuch (see 'inetboot cache --help')"],
    [["pack"], "inetboot: missing required positional argument: IMAGE (see 'inetboot pack --help')"],
    [["nbd", tmp, "--listen", `unix:${sock}`, "--cach", tmp], "inetboot: unknown option --cach (see 'inetboot nbd --help')"],
    [["serve", tmp, "-z"], "inetboot: unknown option -z (see 'inetboot serve --help')"],
    [["profile", "pack", tmp, "--bogus=1"], "inetboot: unknown option --bogus (see 'inetboot profile pack --help')"],
  ] as const) {
    const r = sh(...args);
    expect(r.code, args.join(" ")).toBe(2);
    expect(r.err, args.join(" ")).toBe(`${line}\n`);
    expect(r.out, args.join(" ")).toBe("");
  }
  expect(existsSync(sock)).toBe(false); // the mistyped nbd never listened
});

test("nbd: an address a server already listens on is one line, and that server keeps its clients; a stale socket file is reused", async () => {
  const img = join(tmp, "disk.img");
  await Bun.write(img, new Uint8Array(1 << 20).fill(7));
  const sock = join(tmp, "busy.sock");
  const first = Bun.spawn([BIN, "nbd", img, "--listen", `unix:${sock}`], { stdout: "ignore", stderr: "pipe", env });
  try {
    for (let i = 0; !existsSync(sock); i++) {
      if (i > 100) throw new Error("first server did not start");
      await Bun.sleep(50);
    }
    const second = sh("nbd", img, "--listen", `unix:${sock}`);
    expect(second.code).toBe(1);
    expect(second.err).toBe(`inetboot: listen(unix:${sock}): address already in use (a server is listening there)\n`);
    // the first server still answers at its path
    const info = Bun.spawnSync(["nbdinfo", "--size", `nbd+unix:///?socket=${sock}`], { stdout: "pipe", stderr: "pipe" });
    expect(info.stdout.toString().trim()).toBe(String(1 << 20));
    // a TCP port in use: the same words
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const tcp = sh("nbd", img, "--listen", `tcp:127.0.0.1:${l.port}`);
    l.stop(true);
    expect(tcp.code).toBe(1);
    expect(tcp.err).toBe(`inetboot: listen(tcp:127.0.0.1:${l.port}): address already in use\n`);
  } finally {
    first.kill("SIGKILL"); // leaves the socket file behind, as a crash would
    await first.exited;
  }
  expect(existsSync(sock)).toBe(true);
  const again = Bun.spawn([BIN, "nbd", img, "--listen", `unix:${sock}`], { stdout: "ignore", stderr: "ignore", env });
  try {
    let size = "";
    for (let i = 0; i < 100 && size === "" && again.exitCode === null; i++) {
      await Bun.sleep(50);
      size = Bun.spawnSync(["nbdinfo", "--size", `nbd+unix:///?socket=${sock}`], { stdout: "pipe", stderr: "ignore" }).stdout.toString().trim();
    }
    expect(size).toBe(String(1 << 20));
  } finally {
    again.kill();
    await again.exited;
  }
});

// Refusals that must come before anything is served: a short timeout, so the old behaviour (serving
// on, until killed) fails the test quickly instead of hanging it.
const refused = (...args: string[]) => {
  const r = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", env, timeout: 5_000 });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

test("nbd --cow-file: an existing file is refused and kept byte for byte; a new one is created; --cache naming a file is refused", async () => {
  const img = join(tmp, "cow-base.img");
  await Bun.write(img, new Uint8Array(1 << 20).fill(3));
  const precious = join(tmp, "precious.dat");
  await Bun.write(precious, "the user's data\n");
  const sock = join(tmp, "cow.sock");
  const r = refused("nbd", img, "--listen", `unix:${sock}`, "--cow-file", precious);
  expect(r.code).toBe(1);
  expect(r.err).toBe(`inetboot: --cow-file ${precious}: exists; remove it or name a new file (its contents would be replaced)\n`);
  expect(await Bun.file(precious).text()).toBe("the user's data\n");
  expect(existsSync(sock)).toBe(false);

  const cacheFile = join(tmp, "not-a-dir");
  await Bun.write(cacheFile, "x");
  const c = refused("nbd", "http://127.0.0.1:9/store/", "--listen", `unix:${sock}`, "--cache", cacheFile);
  expect(c.code).toBe(1);
  expect(c.err).toBe(`inetboot: --cache ${cacheFile}: not a directory (the cache is a folder of chunks; name a new or existing folder)\n`);
  expect(await Bun.file(cacheFile).text()).toBe("x");

  // a new overlay file: created, the server starts
  const fresh = join(tmp, "fresh.cow");
  const p = Bun.spawn([BIN, "nbd", img, "--listen", `unix:${sock}`, "--cow-file", fresh], { stdout: "ignore", stderr: "pipe", env });
  try {
    for (let i = 0; !existsSync(sock); i++) {
      if (i > 100) throw new Error("nbd with a new --cow-file did not start");
      await Bun.sleep(50);
    }
    expect(existsSync(fresh)).toBe(true);
  } finally {
    p.kill();
    await p.exited;
  }
});

test("extra positional arguments: a usage error naming the first, exit 2, nothing done", () => {
  const img = join(tmp, "extra.img");
  writeFileSync(img, new Uint8Array(65536).fill(1));
  const store = join(tmp, "extra-store");
  for (const [args, word, path] of [
    [["info", tmp, "extra"], "extra", "info "],
    [["pack", img, store, "extra"], "extra", "pack "],
    [["keygen", "--out", join(tmp, "k"), "extra"], "extra", "keygen "],
    [["cache", "stats", tmp, "a", "b"], "a", "cache stats "],
    [["verify", tmp, "--parallel", "2", "--", "x y"], '"x y"', "verify "],
  ] as const) {
    const r = sh(...args);
    expect(r.code, args.join(" ")).toBe(2);
    expect(r.err, args.join(" ")).toBe(`inetboot: unexpected argument ${word} (see 'inetboot ${path}--help')\n`);
    expect(r.out, args.join(" ")).toBe("");
  }
  expect(existsSync(store)).toBe(false);
  expect(existsSync(join(tmp, "k.key"))).toBe(false);
});

test("cmdline: several words are one command line, nothing dropped", () => {
  const r = sh("cmdline", "ip=dhcp", "inetboot.root=http://h/store/", "inetboot.shell");
  expect(r.code).toBe(0);
  expect(JSON.parse(r.out)).toMatchObject({ ip: "dhcp", root: "http://h/store/", shell: true });
  // one quoted argument, as before
  expect(JSON.parse(sh("cmdline", "ip=dhcp inetboot.root=http://h/store/").out)).toMatchObject({ ip: "dhcp", root: "http://h/store/" });
});

test("cmdline: no URL password in the plan or the warnings, whatever the scheme", () => {
  const r = sh("cmdline", "inetboot.root=http://u:topsecret@h/store/", "inetboot.mirror=ftp://u:topsecret@x/,https://v:topsecret@m/s/");
  expect(r.code).toBe(0);
  expect(r.out + r.err).not.toContain("topsecret");
  expect(JSON.parse(r.out)).toMatchObject({ root: "http://h/store/", mirrors: ["https://m/s/"] });
  expect(r.err).toBe("warning: inetboot.mirror=ftp://x/: not an http(s) URL\n");
});

test("a reader that went away (| head): the command ends quietly with 141, as a tool SIGPIPE ends", () => {
  const img = join(tmp, "pipe.img");
  writeFileSync(img, new Uint8Array(1 << 20).fill(5));
  const store = join(tmp, "pipe-store");
  expect(sh("pack", img, store).code).toBe(0);
  // the reader (`true`) is gone before the command writes: every write is EPIPE, no race
  for (const args of [["info", store], ["cache", "stats", store], ["cmdline", "ip=dhcp"]]) {
    const p = Bun.spawnSync(["sh", "-c", '{ sleep 0.3; "$@"; echo "exit $?" >&2; } | true', "sh", BIN, ...args], { stdout: "pipe", stderr: "pipe", env, timeout: 20_000 });
    expect(p.stderr.toString(), args.join(" ")).toBe("exit 141\n");
  }
});

test("initramfs --file onto a path the builder writes (/inetboot, /init, /bin/sh): refused, nothing written", () => {
  const extra = join(tmp, "extra-file");
  writeFileSync(extra, "not an agent\n");
  const out = join(tmp, "refused.cpio");
  for (const [dest, line] of [
    ["/inetboot", "the builder writes /inetboot itself (the agent; choose it with --agent PATH)"],
    ["//init", "the builder writes /init itself (the pre-init; choose it with --init PATH)"],
    ["/bin/sh", "the builder writes /bin/sh itself (pick another destination)"],
  ] as const) {
    const r = sh("initramfs", "--out", out, "--init", "/bin/true", "--agent", "/bin/true", "--with-busybox", "--file", `${extra}:${dest}`);
    expect(r.code, dest).toBe(1);
    expect(r.err, dest).toBe(`inetboot: bad --file ${extra}:${dest}: ${line}\n`);
  }
  expect(existsSync(out)).toBe(false);
  // elsewhere is fine
  expect(sh("initramfs", "--out", out, "--init", "/bin/true", "--agent", "/bin/true", "--file", `${extra}:/etc/extra`).code).toBe(0);
});

test("initramfs --out: a directory is refused before the build; SIGINT/SIGTERM leave no OUT.tmp-PID and the old file", async () => {
  const d = join(tmp, "out-dir");
  mkdirSync(d);
  const r = sh("initramfs", "--out", d, "--init", "/bin/true", "--agent", BIN);
  expect(r.code).toBe(1);
  expect(r.err).toBe(`inetboot: --out ${d}: is a directory (name the file to write, e.g. ${d}/initramfs.cpio.zst)\n`);
  expect(readdirSync(tmp).filter((n) => n.startsWith("out-dir.tmp-"))).toEqual([]);
  expect(readdirSync(d)).toEqual([]);

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const out = join(tmp, `initrd-${signal}`);
    writeFileSync(out, "the old initramfs\n");
    // this executable as the agent: ~110 MB, seconds of lz4, time to interrupt it mid-write
    const p = Bun.spawn([BIN, "initramfs", "--out", out, "--init", "/bin/true", "--agent", BIN], { stdout: "pipe", stderr: "pipe", env });
    const part = join(tmp, `initrd-${signal}.tmp-${p.pid}`);
    for (let i = 0; !existsSync(part) || statSync(part).size < 1 << 20; i++) {
      if (i > 400) throw new Error(`no ${part} growing`);
      await Bun.sleep(25);
    }
    p.kill(signal);
    expect(await p.exited, signal).toBe(code);
    expect(existsSync(part), signal).toBe(false);
    expect(readFileSync(out, "utf8")).toBe("the old initramfs\n");
  }
});
