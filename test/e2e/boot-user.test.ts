// End to end: the Debian kernel boots our initramfs in QEMU (TCG) with user networking.
// Checks read what the guest shows: events, busybox's view of the network, sha256sum of a file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { withGuest } from "../lib/qemu.ts";
import { expectRescueShell } from "../lib/rescue.ts";

const payload = randomBytes(3 * 1024 * 1024 + 17);
const digest = createHash("sha256").update(payload).digest("hex");
let server: ReturnType<typeof Bun.serve>;
const requests: string[] = [];

beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const u = new URL(req.url);
      requests.push(u.pathname);
      if (u.pathname === "/payload.bin") return new Response(payload);
      return new Response("not here", { status: 404 });
    },
  });
});
afterAll(() => server.stop(true));

const T = 240_000;

describe("boot in QEMU with user networking", () => {
  test(
    "coldplug loads virtio_net, DHCP configures eth0, shell fetch downloads and verifies, poweroff",
    async () => {
      await withGuest({ append: "inetboot.shell nbd.nbds_max=3" }, async (g) => {
        const start = await g.waitEvent("agent.start");
        expect(start.pid).toBe(1);
        const mods = await g.waitEvent("modules.loaded");
        expect(mods.loaded as string[]).toContain("virtio_net");
        const up = await g.waitEvent("net.up");
        expect(up.address).toBe("10.0.2.15");
        await g.waitEvent("shell.ready");
        await g.waitText(/inetboot# $/m);
        // The kernel's own view through busybox, not our report.
        const addr = await g.shell("sh -c 'ip -4 addr show; ip route'");
        expect(addr).toMatch(/inet 10\.0\.2\.15\/24/);
        expect(addr).toMatch(/default via 10\.0\.2\.2/);
        expect(await g.shell("sh -c 'cat /etc/resolv.conf'")).toMatch(/nameserver 10\.0\.2\.3/);
        const url = `http://10.0.2.2:${server.port}/payload.bin`;
        await g.shell(`fetch ${url} /tmp/p.bin --sha256 ${digest}`, 120_000);
        expect(requests).toContain("/payload.bin");
        expect(await g.shell("sh -c 'sha256sum /tmp/p.bin'")).toContain(digest);
        // A wrong digest: a one-line error, no file left behind, the shell survives.
        const bad = await g.shell(`fetch ${url} /tmp/bad.bin --sha256 ${"0".repeat(64)}`, 120_000);
        expect(bad).toMatch(/sha256 mismatch/);
        expect(await g.shell("sh -c 'ls /tmp/bad.bin || echo GONE'")).toContain("GONE");
        expect(await g.shell("frobnicate")).toContain("unknown command");
        expect(await g.shell("cat /nonexistent")).toMatch(/ENOENT|no such file/i);
        expect(await g.shell("lsmod")).toMatch(/^virtio_net /m);
        // /init gave the agent (PID 1) its JIT setting: the kernel's record of its environment.
        const jsc = await g.shell(`sh -c 'tr "\\\\000" "\\\\n" < /proc/1/environ'`);
        expect(jsc).toContain("BUN_JSC_useDFGJIT=0");
        expect(jsc).toContain("BUN_JSC_useConcurrentJIT=0");
        // Module parameters from the kernel command line (as modprobe applies them), and the
        // agent's own default for usb_storage: the kernel's view in /sys/module.
        await g.shell("modprobe nbd");
        await g.shell("modprobe usb_storage");
        expect(await g.shell("sh -c 'cat /sys/module/nbd/parameters/nbds_max /sys/module/usb_storage/parameters/delay_use'")).toMatch(/^3\s+0\s*$/m);
        g.send("poweroff");
        expect(await g.exited).toBe(0);
      });
    },
    T,
  );

  test(
    "static ip= configures the interface without DHCP",
    async () => {
      await withGuest({ append: "inetboot.shell ip=10.0.2.44::10.0.2.2:255.255.255.0:static-box:eth0:off:10.0.2.3" }, async (g) => {
        const up = await g.waitEvent("net.up");
        expect(up.via).toBe("static");
        await g.waitEvent("shell.ready");
        await g.waitText(/inetboot# $/m);
        expect(g.events().some((e) => e.ev.startsWith("dhcp."))).toBe(false);
        const addr = await g.shell("sh -c 'ip -4 addr show eth0; ip route; hostname'");
        expect(addr).toMatch(/inet 10\.0\.2\.44\/24/);
        expect(addr).toMatch(/default via 10\.0\.2\.2/);
        const url = `http://10.0.2.2:${server.port}/payload.bin`;
        await g.shell(`fetch ${url} /tmp/p.bin`, 120_000);
        expect(await g.shell("sh -c 'sha256sum /tmp/p.bin'")).toContain(digest);
        g.send("poweroff");
        expect(await g.exited).toBe(0);
      });
    },
    T,
  );

  test(
    "a boot source that fails gives an error event and the rescue shell, not a panic",
    async () => {
      await withGuest({ append: `inetboot.root=http://10.0.2.2:1/nothing/ inetboot.bogus=1` }, async (g) => {
        const warn = await g.waitEvent("warning");
        expect(String(warn.message)).toContain("inetboot.bogus");
        await expectRescueShell(g, /http:\/\/10\.0\.2\.2:1\/nothing\/.*(connect|refused)/i, { command: "help", says: "modprobe", timeoutMs: 120_000 });
      });
    },
    T,
  );
});
