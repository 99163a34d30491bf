// `make demo`: boots a real Debian (systemd) over HTTP with inetboot and says how it went.
//   1. builds the demo root (mmdebstrap → squashfs, cached in build/demo/; see test/lib/demo-root.ts)
//      and checks its files on the host,
//   2. packs it with `build/inetboot pack` into build/demo/store/ (skipped when already packed),
//   3. serves build/demo with `build/inetboot serve` on 127.0.0.1 (a free port),
//   4. boots QEMU with our kernel + initramfs and inetboot.root=http://10.0.2.2:PORT/store/.
// Default: waits for INETBOOT-DEMO-MARKER and the login prompt, prints a summary and PASS, powers off.
// Options:
//   --interactive  leave the serial console to you (QEMU in the foreground; Ctrl-A X quits)
//   --direct       boot the same squashfs from a local virtio disk without inetboot (reference)
//   --prepare-only build and pack the store, then stop (for `make serve-demo`)
//   --rebuild      rebuild the root even when the cached one matches the recipe
//   --port N       HTTP port (default: a free one)
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { buildDemoRoot, checkDemoImage, packDemoStore, DEMO_DIR, DEMO_MARKER, DEMO_HOSTNAME, DEMO_STORE as STORE } from "./lib/demo-root.ts";
import { directGuest } from "./lib/direct-boot.ts";
import { BUILD, Guest, initrdPath, kernelPath } from "./lib/qemu.ts";

const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const opt = (f: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1] : undefined;
};
const INTERACTIVE = flag("--interactive");
const DIRECT = flag("--direct");
const MARKER_TIMEOUT_MS = Number(process.env.INETBOOT_DEMO_TIMEOUT ?? 300) * 1000;
const INETBOOT = join(BUILD, "inetboot");

const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

class DemoFailure extends Error {}
/** Throws: the finally blocks stop QEMU and the server, then the top level prints FAIL and exits 1. */
function fail(msg: string): never {
  throw new DemoFailure(msg);
}

interface Served {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  port: number;
  requests: number;
  bytes: number;
}

/** Runs `inetboot serve` and counts requests and body bytes from its access log. */
async function serve(): Promise<Served> {
  const port = opt("--port") ?? "0";
  const proc = Bun.spawn([INETBOOT, "serve", DEMO_DIR, "--port", port], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const s: Served = { proc, port: 0, requests: 0, bytes: 0 };
  let ready!: (p: number) => void;
  const portP = new Promise<number>((r) => (ready = r));
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stderr) {
      buf += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const up = line.match(/^serving .* at http:\/\/[^:]+:(\d+)\//);
        if (up) ready(Number(up[1]));
        // access log: ip "METHOD /path" status bytes [range=...] ms
        const log = line.match(/^\S+ "(?:GET|HEAD) \S+" \d{3} (\d+)/);
        if (log) {
          s.requests++;
          s.bytes += Number(log[1]);
        } else if (!up && line.trim()) process.stderr.write(`serve: ${line}\n`);
      }
    }
  })();
  const got = await Promise.race([portP, proc.exited.then(() => 0), Bun.sleep(10_000).then(() => -1)]);
  if (got <= 0) {
    proc.kill();
    fail(`inetboot serve did not start (${got === 0 ? "exited" : "no 'serving' line in 10 s"})`);
  }
  s.port = got;
  return s;
}

function qemuArgs(append: string, serial: string): string[] {
  return [
    "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1", "-no-reboot",
    "-display", "none", "-serial", serial, "-monitor", "none",
    "-kernel", kernelPath(), "-initrd", initrdPath(), "-append", `console=ttyS0 panic=-1 ${append}`,
    "-nic", "user,model=virtio-net-pci",
  ];
}

/** Waits for the marker and the autologin, then powers off from the shell. Returns timings. */
async function drive(g: Guest, t0: number) {
  const m = await g.waitText(new RegExp(`${DEMO_MARKER}.*uptime=[\\d.]+\\s`), MARKER_TIMEOUT_MS);
  const tMarker = Date.now() - t0;
  const uptime = m[0].match(/uptime=([\d.]+)/)?.[1];
  await g.waitText(new RegExp(`${DEMO_HOSTNAME} login:`), 120_000);
  await g.waitText(/root@inetboot-demo:~# /, 60_000);
  const tLogin = Date.now() - t0;
  g.send("systemctl is-system-running; findmnt -n -o SOURCE,FSTYPE /; poweroff");
  const exited = await Promise.race([g.exited.then(() => true), Bun.sleep(120_000).then(() => false)]);
  return { marker: m[0].trim(), tMarker, tLogin, uptime, poweredOff: exited };
}

async function main() {
  if (!existsSync(INETBOOT)) fail(`${INETBOOT} missing: run 'make'`);
  const root = buildDemoRoot({ force: flag("--rebuild"), log: say });
  say(`root ${root.squashfs} (${mib(root.bytes)}${root.cached ? ", cached" : ""})`);
  const problems = checkDemoImage(root.squashfs);
  if (problems.length) fail(`demo image ${root.squashfs}: ${problems.join("; ")}`);

  if (DIRECT) {
    say("booting the squashfs from a local virtio disk, without inetboot (reference)");
    const t0 = Date.now();
    const g = directGuest({ image: root.squashfs, fstype: "squashfs", echo: true });
    try {
      const r = await drive(g, t0);
      say(`marker after ${secs(r.tMarker)} (guest uptime ${r.uptime} s), shell after ${secs(r.tLogin)}`);
      process.stderr.write("demo: PASS (direct)\n");
    } finally {
      g.kill();
      await g.exited;
    }
    return;
  }

  const t0 = Date.now();
  if (packDemoStore(root, INETBOOT, say)) say(`packed in ${secs(Date.now() - t0)}`);
  else say(`store ${STORE} is up to date`);
  if (flag("--prepare-only")) return; // `make serve-demo` only needs the store
  const srv = await serve();
  const url = `http://10.0.2.2:${srv.port}/store/`;
  const append = `inetboot.root=${url} inetboot.rootfstype=squashfs`;
  say(`serving ${DEMO_DIR} on 127.0.0.1:${srv.port}; kernel append: ${append}`);
  try {
    if (INTERACTIVE) {
      say("console is yours: log in is automatic on ttyS0; 'poweroff' or Ctrl-A X ends QEMU");
      const q = Bun.spawn(qemuArgs(append, "mon:stdio"), { stdin: "inherit", stdout: "inherit", stderr: "inherit" });
      const code = await q.exited;
      say(`QEMU exited (${code}); ${srv.requests} HTTP requests, ${mib(srv.bytes)} served`);
      return;
    }
    const t0 = Date.now();
    const g = new Guest({ append, echo: true }) // Guest adds console=ttyS0 inetboot.log=json;
    try {
      const r = await drive(g, t0);
      const ev = (n: string) => g.event(n)?.t;
      const lines = [
        "",
        "=== inetboot demo summary ===",
        `root image      ${mib(root.bytes)} squashfs (zstd), ${root.squashfs}`,
        `marker          ${r.marker}`,
        `time to marker  ${secs(r.tMarker)} from QEMU start (guest uptime ${r.uptime} s)`,
        `time to shell   ${secs(r.tLogin)}`,
        `agent events    root.mounted t=${ev("root.mounted") ?? "?"} s, switch_root t=${ev("switch_root") ?? "?"} s`,
        `HTTP served     ${srv.requests} requests, ${mib(srv.bytes)} (${((100 * srv.bytes) / root.bytes).toFixed(0)}% of the image, compressed chunks)`,
        `powered off     ${r.poweredOff ? "yes" : "no (killed)"}`,
        "",
      ];
      process.stderr.write(lines.join("\n") + "\n");
      process.stderr.write("demo: PASS\n");
    } finally {
      g.kill();
      await g.exited;
    }
  } finally {
    srv.proc.kill();
    await srv.proc.exited;
  }
}

try {
  await main();
} catch (e) {
  // A wait that timed out carries the console tail; the console was echoed already, so one line.
  process.stderr.write(`demo: FAIL: ${(e as Error).message.split("\n")[0]}\n`);
  process.exit(1);
}
