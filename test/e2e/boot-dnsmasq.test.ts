// End to end: DHCP from Debian's dnsmasq on a tap device in a network namespace the test creates;
// QEMU runs inside the namespace. The lease file and busybox's view prove the result.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, withGuest } from "../lib/qemu.ts";
import { createTapNet, leasesText, serveInNetns, type TapNet } from "../lib/netns.ts";
import { scratch } from "../lib/tmp.ts";
import { buildBusyboxRoot, type BusyboxRoot } from "../lib/roots.ts";
import { run } from "../lib/sh.ts";
import { expectRescueShell } from "../lib/rescue.ts";

const MAC = "52:54:00:12:34:77";
let net: TapNet;
let base: string;
let root: BusyboxRoot;
/** QEMU's NIC on the namespace's tap device, with the MAC dnsmasq knows */
const nic = () => ["-netdev", `tap,id=n0,ifname=${net.tap},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=n0,mac=${MAC}`];
const payload = randomBytes(512 * 1024);
const digest = createHash("sha256").update(payload).digest("hex");

beforeAll(async () => {
  net = await createTapNet({ mac: MAC, fixedIp: "10.99.0.57", hostname: "ibguest", dns: { "store.inetboot.test": "10.99.0.1" } });
  const dir = scratch("inetboot-www-");
  writeFileSync(join(dir, "file.bin"), payload);
  root = buildBusyboxRoot({ fstype: "squashfs" });
  run([join(ROOT, "build/inetboot"), "pack", root.image, join(dir, "root")]);
  base = await serveInNetns(net, dir);
});
afterAll(async () => {
  await net?.stop();
});

test(
  "DHCP lease from dnsmasq on a tap in a namespace; fetch from a server there",
  async () => {
    await withGuest(
      {
        append: "inetboot.shell",
        wrap: net.exec,
        net: nic(),
      },
      async (g) => {
        const up = await g.waitEvent("net.up");
        expect(up.address).toBe("10.99.0.57");
        await g.waitEvent("shell.ready");
        await g.waitText(/inetboot# $/m);
        expect(leasesText(net)).toContain("10.99.0.57");
        expect(leasesText(net).toLowerCase()).toContain(MAC);
        const view = await g.shell("sh -c 'ip -4 addr show eth0; ip route; cat /etc/resolv.conf /etc/hosts'");
        expect(view).toMatch(/inet 10\.99\.0\.57\/24/);
        expect(view).toMatch(/default via 10\.99\.0\.1/);
        expect(view).toMatch(/nameserver 10\.99\.0\.1/);
        expect(view).toMatch(/search inetboot\.test/);
        expect(view).toMatch(/ibguest/);
        // by name: the agent's resolv.conf and the resolver work in the initramfs
        await g.shell(`fetch ${base.replace("10.99.0.1", "store.inetboot.test")}/file.bin /tmp/f.bin --sha256 ${digest}`, 120_000);
        expect(await g.shell("sh -c 'sha256sum /tmp/f.bin'")).toContain(digest);
        g.send("poweroff");
        expect(await g.exited).toBe(0);
      },
    );
  },
  240_000,
);

test(
  "a root store named by host name: DHCP and DNS from dnsmasq, the NBD daemon resolves it too",
  async () => {
    await withGuest(
      {
        append: "quiet inetboot.root=http://store.inetboot.test:8080/root/",
        wrap: net.exec,
        net: nic(),
      },
      async (g) => {
        await g.waitEvent("switch_root");
        await g.waitText(/ROOT-DONE/, 120_000);
        expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
        expect(await g.exited).toBe(0);
      },
    );
  },
  240_000,
);

test(
  "a store name that does not exist: the agent says so at once and offers the rescue shell",
  async () => {
    await withGuest({ append: "quiet inetboot.root=http://nosuch.inetboot.test:8080/root/", wrap: net.exec, net: nic() }, async (g) => {
      await g.waitEvent("net.up");
      const t0 = performance.now();
      await expectRescueShell(g, /DNS lookup failed for nosuch\.inetboot\.test/);
      expect(performance.now() - t0).toBeLessThan(15_000); // not the 21 s mirror deadline of a boot
    });
  },
  240_000,
);
