// The executable as a user types it: `--help` for every command (exit 0, no ANSI colours when
// piped), and usage mistakes (unknown command, unknown option, missing argument) as one line on
// stderr naming the mistake and where help is, exit 2, nothing started.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
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
