// `inetboot iso` and `inetboot usb` interrupted (Ctrl-C, SIGTERM) or failing: a good image already
// at --out is untouched (the new one is built beside it and renamed in only when whole), no
// temporaries stay in $TMPDIR or beside --out, and no tool goes on as an orphan. A slow stand-in for
// grub-mkrescue / mcopy, first on PATH, holds the build where the signal is sent.
import { beforeAll, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../lib/qemu.ts";
import { need } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

let dir: string;
let fake: string;

// As grub-mkrescue: writes half an image to -o and makes its own temp dir in $TMPDIR. Records its
// pid and its child's, then hangs.
const SLOW_TOOL = `#!/bin/sh
if [ "\${0##*/}" = grub-mkrescue ]; then
  while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
  mkdir -p "\${TMPDIR:-/tmp}/grub.stand-in$$"
  printf HALF > "$out"
fi
sleep 60 &
echo "$$ $!" > "$PIDS"
wait
`;

beforeAll(() => {
  for (const [t, p] of [["grub-mkrescue", "grub-common"], ["grub-mkimage", "grub-common"], ["xorriso", "xorriso"], ["mformat", "mtools"]] as const) need(t, p);
  dir = scratch("inetboot-media-int-");
  fake = join(dir, "bin");
  mkdirSync(fake);
  writeFileSync(join(dir, "vmlinuz"), new Uint8Array(65536).fill(1));
  writeFileSync(join(dir, "initrd"), new Uint8Array(65536).fill(2));
});

/** A process still running (a zombie waiting for its reaper is not). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

async function interrupt(cmd: "iso" | "usb", tool: string, signal: "SIGINT" | "SIGTERM") {
  const bin = join(fake, cmd);
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, tool), SLOW_TOOL);
  chmodSync(join(bin, tool), 0o755);
  const tmpdir = join(dir, `tmp-${cmd}`);
  mkdirSync(tmpdir);
  const pids = join(dir, `${cmd}.pids`);
  const out = join(dir, `good-${cmd}.img`);
  writeFileSync(out, "a good image\n");
  const args = [cmd, "--out", out, "--kernel", join(dir, "vmlinuz"), "--initrd", join(dir, "initrd"), ...(cmd === "usb" ? ["--size", "64M"] : [])];
  const p = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), ...args], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmpdir, PIDS: pids },
    stdout: "pipe",
    stderr: "pipe",
  });
  for (let i = 0; !existsSync(pids) || readFileSync(pids, "utf8").split(" ").length < 2; i++) {
    if (i > 400) throw new Error(`${tool} stand-in never started: ${await new Response(p.stderr).text()}`);
    await Bun.sleep(25);
  }
  const tools = readFileSync(pids, "utf8").trim().split(" ").map(Number);
  p.kill(signal);
  const code = await p.exited;
  const err = await new Response(p.stderr).text();
  expect(code, err).toBe(signal === "SIGINT" ? 130 : 143);
  expect(await new Response(p.stdout).text()).toBe("");
  expect(readFileSync(out, "utf8")).toBe("a good image\n");
  expect(readdirSync(dir).filter((n) => n.startsWith(`good-${cmd}.img.`))).toEqual([]); // no half image beside it
  expect(readdirSync(tmpdir)).toEqual([]); // neither our temp dir nor grub-mkrescue's
  for (let i = 0; tools.some(alive) && i < 40; i++) await Bun.sleep(50);
  expect(tools.filter(alive)).toEqual([]);
}

test("iso: SIGINT mid grub-mkrescue keeps the old ISO, ends grub-mkrescue and its children, leaves no temporaries, exits 130", () =>
  interrupt("iso", "grub-mkrescue", "SIGINT"));

test("usb: SIGTERM mid mcopy keeps the old image, ends mcopy, leaves no temporaries, exits 143", () => interrupt("usb", "mcopy", "SIGTERM"));

test("iso and usb: a build that fails keeps the image already there and leaves nothing beside it", () => {
  const bin = join(fake, "fail");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "grub-mkrescue"), "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && printf HALF > \"$2\"; shift; done\necho 'xorriso : FAILURE : out of space' >&2\nexit 1\n");
  chmodSync(join(bin, "grub-mkrescue"), 0o755);
  const out = join(dir, "kept.iso");
  writeFileSync(out, "a good ISO\n");
  const r = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "iso", "--out", out, "--kernel", join(dir, "vmlinuz"), "--initrd", join(dir, "initrd")], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(r.exitCode).toBe(1);
  expect(r.stderr.toString()).toEndWith("inetboot: grub-mkrescue failed (exit 1): xorriso : FAILURE : out of space\n");
  expect(readFileSync(out, "utf8")).toBe("a good ISO\n");
  expect(readdirSync(dir).filter((n) => n.startsWith("kept.iso."))).toEqual([]);
  // --out naming a directory: refused before anything is built
  const d = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "usb", "--out", dir, "--kernel", join(dir, "vmlinuz"), "--initrd", join(dir, "initrd")], { stdout: "pipe", stderr: "pipe" });
  expect(d.exitCode).toBe(1);
  expect(d.stderr.toString()).toBe(`inetboot: --out ${dir}: exists and is not a regular file (a stick? use --device)\n`);
});
