// Pure parts of interface/route configuration: address math, struct rtentry bytes,
// /proc/net/route parsing, /sys/class/net reading, resolv.conf/hosts files.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { read } from "bun:ffi";
import { broadcastOf, classfulPrefix, maskToPrefix, networkOf, parseIPv4, parseMac, prefixToMask } from "../../src/net/addr.ts";
import { formatAddresses, listInterfaces, readCarrier, readMac, setSysNetDir } from "../../src/net/iface.ts";
import { formatRoutes, parseProcRoute, rtentry } from "../../src/net/route.ts";
import { writeHosts, writeResolvConf } from "../../src/net/resolv.ts";
import { cstr, ptr } from "../../src/sys/ffi.ts";
import { scratch } from "../lib/tmp.ts";

const tmp = scratch("inetboot-net-");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("addresses", () => {
  test("parse and masks", () => {
    expect(parseIPv4("10.0.2.15")).toBe(0x0a00020f);
    for (const bad of ["1.2.3", "1.2.3.4.5", "256.1.1.1", "a.b.c.d", "1..2.3", " 1.2.3.4", "01234.1.1.1"]) expect(parseIPv4(bad)).toBeNull();
    expect(prefixToMask(0)).toBe("0.0.0.0");
    expect(prefixToMask(25)).toBe("255.255.255.128");
    expect(prefixToMask(32)).toBe("255.255.255.255");
    expect(maskToPrefix("255.255.240.0")).toBe(20);
    expect(maskToPrefix("0.0.0.0")).toBe(0);
    expect(maskToPrefix("255.0.255.0")).toBeNull();
    expect(networkOf("10.1.2.3", 16)).toBe("10.1.0.0");
    expect(broadcastOf("192.0.2.60", 24)).toBe("192.0.2.255");
    expect([classfulPrefix("10.1.1.1"), classfulPrefix("172.16.1.1"), classfulPrefix("192.0.2.1")]).toEqual([8, 16, 24]);
    expect(Array.from(parseMac("52:54:00:12:34:56")!)).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(parseMac("52:54:0g:12:34:56")).toBeNull();
  });
});

describe("struct rtentry (x86-64)", () => {
  test("default route via a gateway", () => {
    const dev = cstr("eth0");
    const b = rtentry({ dest: "0.0.0.0", prefix: 0, gateway: "10.0.2.2", dev: "eth0" }, dev);
    expect(b.length).toBe(120);
    const dv = new DataView(b.buffer);
    expect(dv.getBigUint64(0, true)).toBe(0n); // rt_pad1
    expect(Array.from(b.subarray(8, 16))).toEqual([2, 0, 0, 0, 0, 0, 0, 0]); // rt_dst AF_INET 0.0.0.0
    expect(Array.from(b.subarray(24, 32))).toEqual([2, 0, 0, 0, 10, 0, 2, 2]); // rt_gateway
    expect(Array.from(b.subarray(40, 48))).toEqual([2, 0, 0, 0, 0, 0, 0, 0]); // rt_genmask
    expect(dv.getUint16(56, true)).toBe(0x3); // RTF_UP | RTF_GATEWAY
    expect(dv.getInt16(80, true)).toBe(0); // rt_metric
    const p = Number(dv.getBigUint64(88, true)); // rt_dev → "eth0\0"
    expect(p).toBe(ptr(dev));
    expect([0, 1, 2, 3, 4].map((i) => read.u8(p as never, i))).toEqual([0x65, 0x74, 0x68, 0x30, 0]);
  });
  test("on-link host route clears host bits and sets RTF_HOST", () => {
    const b = rtentry({ dest: "198.51.100.7", prefix: 32, dev: "eth0" }, cstr("eth0"));
    expect(Array.from(b.subarray(12, 16))).toEqual([198, 51, 100, 7]);
    expect(Array.from(b.subarray(44, 48))).toEqual([255, 255, 255, 255]);
    expect(new DataView(b.buffer).getUint16(56, true)).toBe(0x5); // RTF_UP | RTF_HOST
    const n = rtentry({ dest: "198.51.100.7", prefix: 24, gateway: "0.0.0.0", dev: "eth0", metric: 5 }, cstr("eth0"));
    expect(Array.from(n.subarray(12, 16))).toEqual([198, 51, 100, 0]);
    expect(new DataView(n.buffer).getInt16(80, true)).toBe(6); // kernel stores rt_metric - 1
  });
});

describe("/proc/net/route", () => {
  const text =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
    "eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
    "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
    "eth0\t006433C6\tFE02000A\t0003\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
  test("parse and format", () => {
    expect(parseProcRoute(text)).toEqual([
      { dev: "eth0", dest: "0.0.0.0", prefix: 0, gateway: "10.0.2.2", flags: 3, metric: 0 },
      { dev: "eth0", dest: "10.0.2.0", prefix: 24, gateway: null, flags: 1, metric: 0 },
      { dev: "eth0", dest: "198.51.100.0", prefix: 24, gateway: "10.0.2.254", flags: 3, metric: 100 },
    ]);
    expect(formatRoutes(parseProcRoute(text))).toEqual([
      "default via 10.0.2.2 dev eth0",
      "10.0.2.0/24 dev eth0 scope link",
      "198.51.100.0/24 via 10.0.2.254 dev eth0 metric 100",
    ]);
  });
  test("this machine's table parses", () => {
    expect(() => parseProcRoute(readFileSync("/proc/net/route", "utf8"))).not.toThrow();
  });
});

describe("/sys/class/net", () => {
  test("lists Ethernet interfaces (no lo, no tunnels), reads MAC and carrier", () => {
    const sys = join(tmp, "sys");
    const mk = (n: string, type: string, files: Record<string, string> = {}) => {
      mkdirSync(join(sys, n), { recursive: true });
      writeFileSync(join(sys, n, "type"), `${type}\n`);
      for (const [k, v] of Object.entries(files)) writeFileSync(join(sys, n, k), v);
    };
    mk("lo", "772");
    mk("eth10", "1");
    mk("eth2", "1", { address: "52:54:00:aa:bb:cc\n", carrier: "1\n" });
    mk("sit0", "776");
    mk("ens3", "1");
    setSysNetDir(sys);
    try {
      expect(listInterfaces()).toEqual(["ens3", "eth2", "eth10"]);
      expect(listInterfaces({ all: true })).toEqual(["ens3", "eth2", "eth10", "lo", "sit0"]);
      expect(Array.from(readMac("eth2"))).toEqual([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
      expect(readCarrier("eth2")).toBe(true);
      expect(readCarrier("ens3")).toBe(false);
      expect(() => readMac("ens3")).toThrow("ens3: no Ethernet address");
    } finally {
      setSysNetDir("/sys/class/net");
    }
  });
  test("formatAddresses", () => {
    expect(
      formatAddresses([
        { name: "eth0", flags: 0x1003, mac: "52:54:00:12:34:56", mtu: 1500, operstate: "up", carrier: true, address: "10.0.2.15", prefix: 24 },
      ]),
    ).toEqual(["eth0: <BROADCAST,UP,LOWER_UP> mtu 1500 state UP", "    link 52:54:00:12:34:56", "    inet 10.0.2.15/24"]);
  });
});

describe("resolv.conf and hosts", () => {
  test("written under a root dir", () => {
    const root = join(tmp, "root");
    writeResolvConf(root, ["10.0.2.3", "1.1.1.1", "8.8.8.8", "9.9.9.9"], "example.test");
    expect(readFileSync(join(root, "etc/resolv.conf"), "utf8")).toBe(
      "# written by inetboot\nsearch example.test\nnameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n",
    );
    writeHosts(root, "guest", "10.0.2.15", "example.test");
    expect(readFileSync(join(root, "etc/hosts"), "utf8")).toBe(
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.2.15\tguest.example.test guest\n",
    );
  });
});

test("resolv.conf and hosts take DNS names only: a DHCP server's newline cannot add lines", async () => {
  const { resolvConfText, hostsText } = await import("../../src/net/resolv.ts");
  expect(resolvConfText(["10.0.2.3"], "lab.example")).toBe("# written by inetboot\nsearch lab.example\nnameserver 10.0.2.3\n");
  expect(resolvConfText(["10.0.2.3"], "x\nnameserver 6.6.6.6")).toBe("# written by inetboot\nnameserver 10.0.2.3\n");
  expect(hostsText("box\n1.2.3.4 evil", "10.0.2.15")).not.toContain("evil");
  expect(hostsText("box", "10.0.2.15", "lab.example")).toContain("10.0.2.15\tbox.lab.example box");
});
