// ip= parsing (kernel nfsroot syntax) and nodhcp handling.
import { describe, expect, test } from "bun:test";
import { formatIpParam, parseIpParam } from "../../src/net/ipconfig.ts";
import { UserError } from "../../src/sys/errors.ts";

describe("parseIpParam", () => {
  test.each([
    ["dhcp", { mode: "dhcp" }],
    ["on", { mode: "dhcp" }],
    ["any", { mode: "dhcp" }],
    ["DHCP", { mode: "dhcp" }],
    ["off", { mode: "off" }],
    ["none", { mode: "off" }],
    ["::::box:eth1:dhcp", { mode: "dhcp", device: "eth1", hostname: "box" }],
    [":::::eth0:off", { mode: "off" }],
    [":::::eth0", { mode: "dhcp", device: "eth0" }], // autoconf defaults to any
    ["eth0:dhcp", { mode: "dhcp", device: "eth0" }], // dracut short form
  ] as const)("%s", (v, want) => {
    expect(parseIpParam(v)).toEqual(want as never);
  });

  test("full static form with dns and ntp", () => {
    expect(parseIpParam("10.0.2.15:10.0.2.2:10.0.2.2:255.255.255.0:guest:eth0:off:10.0.2.3:1.1.1.1:10.0.2.4")).toEqual({
      mode: "static", address: "10.0.2.15", server: "10.0.2.2", gateway: "10.0.2.2", prefix: 24, hostname: "guest", device: "eth0",
      dns: ["10.0.2.3", "1.1.1.1"], ntp: ["10.0.2.4"],
    });
  });

  test("the DESIGN form ip=<client>::<gw>:<netmask>:<host>:<dev>:off", () => {
    expect(parseIpParam("192.168.7.2::192.168.7.1:255.255.255.128:h:ens3:off")).toEqual({
      mode: "static", address: "192.168.7.2", gateway: "192.168.7.1", prefix: 25, hostname: "h", device: "ens3", dns: [], ntp: [],
    });
  });

  test("a client address means static even with autoconf dhcp (as the kernel does)", () => {
    expect(parseIpParam("10.1.2.3::::::dhcp")).toMatchObject({ mode: "static", address: "10.1.2.3", prefix: 8 });
  });

  test("netmask omitted: classful prefix", () => {
    expect(parseIpParam("172.16.0.9:::::eth0:off")).toMatchObject({ prefix: 16 });
    expect(parseIpParam("192.0.2.9")).toMatchObject({ mode: "static", prefix: 24 });
  });

  test.each([
    ["10.0.2.15::10.0.2.2:255.0.300.0::eth0:off", "ip=: bad netmask '255.0.300.0'"],
    ["10.0.2.15::10.0.2.2:255.0.255.0::eth0:off", "ip=: bad netmask '255.0.255.0'"],
    ["10.0.2.256::::::off", "ip=: bad client address '10.0.2.256'"],
    ["10.0.2.1::gw:::::", "ip=: bad gateway 'gw'"],
    ["10.0.2.1:::::eth0:off:8.8.8", "ip=: bad dns0 address '8.8.8'"],
    ["10.0.2.1::::-bad-:eth0:off", "ip=: bad hostname '-bad-'"],
    ["10.0.2.1:::::averyveryverylongname:off", "ip=: bad device 'averyveryverylongname'"],
    ["10.0.2.1::::::maybe", "ip=: bad autoconf 'maybe'"],
    ["rarp", "ip=: autoconf 'rarp' is not supported (use dhcp or a static address)"],
    ["yes", "ip=: bad value 'yes'"],
    ["", "ip=: empty value (use ip=dhcp, ip=off or the static form)"],
    ["1:2:3:4:5:6:7:8:9:10:11", "ip=: too many fields (11, at most 10)"],
  ])("rejects %s", (v, msg) => {
    let err: unknown;
    try {
      parseIpParam(v);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(msg);
  });

  test("formatIpParam round trips", () => {
    for (const v of ["dhcp", "off", "::::box:eth1:dhcp", "10.0.2.15::10.0.2.2:255.255.255.0:guest:eth0:off:10.0.2.3"]) {
      expect(parseIpParam(formatIpParam(parseIpParam(v)))).toEqual(parseIpParam(v));
    }
  });
});
