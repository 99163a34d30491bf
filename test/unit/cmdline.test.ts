import { describe, expect, test } from "bun:test";
import { parsePlan, tokenize } from "../../src/boot/cmdline.ts";

describe("tokenize (kernel quoting rules)", () => {
  test("plain words and name=value", () => {
    expect(tokenize("console=ttyS0 quiet  ro\n")).toEqual([
      { name: "console", value: "ttyS0" },
      { name: "quiet", value: undefined },
      { name: "ro", value: undefined },
    ]);
  });
  test("double quotes group spaces and are stripped", () => {
    expect(tokenize('a="b c" "d=e f" g=h"i j"')).toEqual([
      { name: "a", value: "b c" },
      { name: "d", value: "e f" },
      { name: "g", value: "hi j" },
    ]);
  });
  test("first '=' splits; later ones belong to the value", () => {
    expect(tokenize("inetboot.url=http://h/x?a=b")).toEqual([{ name: "inetboot.url", value: "http://h/x?a=b" }]);
  });
  test("empty", () => expect(tokenize("   ")).toEqual([]));
});

describe("parsePlan", () => {
  test("defaults", () => {
    const p = parsePlan("console=ttyS0");
    expect(p.ip).toBeUndefined();
    expect(p.nodhcp).toBe(false);
    expect(p.cache).toEqual({ kind: "auto" });
    expect(p.shell).toBe(false);
    expect(p.warnings).toEqual([]);
  });
  test("every documented parameter", () => {
    const p = parsePlan(
      "ip=10.0.2.15::10.0.2.2:255.255.255.0:box:eth0:off inetboot.url=https://h/m.json inetboot.root=http://h/store/ " +
        "inetboot.rootfstype=squashfs inetboot.rootpath=/KNOPPIX/KNOPPIX inetboot.script=http://h/s.js " +
        "inetboot.mirror=http://a/,http://b/ inetboot.cache=LABEL=STICK inetboot.entry=debian inetboot.shell " +
        "inetboot.log=json inetboot.modules=e1000,nbd init=/sbin/init2",
    );
    expect(p.ip).toBe("10.0.2.15::10.0.2.2:255.255.255.0:box:eth0:off");
    expect(p.url).toBe("https://h/m.json");
    expect(p.root).toBe("http://h/store/");
    expect(p.rootfstype).toBe("squashfs");
    expect(p.rootpath).toBe("/KNOPPIX/KNOPPIX");
    expect(p.script).toBe("http://h/s.js");
    expect(p.mirrors).toEqual(["http://a/", "http://b/"]);
    expect(p.cache).toEqual({ kind: "label", value: "STICK" });
    expect(p.entry).toBe("debian");
    expect(p.shell).toBe(true);
    expect(p.logJson).toBe(true);
    expect(p.modules).toEqual(["e1000", "nbd"]);
    expect(p.init).toBe("/sbin/init2");
    expect(p.warnings).toEqual([]);
  });
  test("the seed's aliases", () => {
    const p = parsePlan("httpfuse=http://h/knx/ iscript=http://h/i.js nodhcp");
    expect(p.root).toBe("http://h/knx/");
    expect(p.script).toBe("http://h/i.js");
    expect(p.nodhcp).toBe(true);
  });
  test("cache forms", () => {
    expect(parsePlan("inetboot.cache=off").cache).toEqual({ kind: "off" });
    expect(parsePlan("inetboot.cache=UUID=1234-ABCD").cache).toEqual({ kind: "uuid", value: "1234-ABCD" });
    expect(parsePlan("inetboot.cache=/dev/sdb1").cache).toEqual({ kind: "device", value: "/dev/sdb1" });
    const bad = parsePlan("inetboot.cache=floppy");
    expect(bad.cache).toEqual({ kind: "auto" });
    expect(bad.warnings[0]).toContain("inetboot.cache=floppy");
  });
  test("inetboot.rootsha256 pins the root's index; a malformed one is a warning and a pin nothing matches", () => {
    const h = "AB".repeat(32);
    expect(parsePlan(`inetboot.root=http://h/s/ inetboot.rootsha256=${h}`).rootSha256).toBe(h.toLowerCase());
    const bad = parsePlan("inetboot.root=http://h/s/ inetboot.rootsha256=xyz");
    expect(bad.rootSha256).toBe("invalid"); // never booted unpinned: no index has this digest
    expect(bad.warnings).toEqual(["inetboot.rootsha256=xyz: expected 64 hex digits (the SHA-256 of the root store's index)"]);
  });
  test("a malformed ip= is reported where the line is checked (the boot would refuse it)", () => {
    expect(parsePlan("ip=garbage").warnings).toEqual(["ip=: bad value 'garbage'"]);
    expect(parsePlan("ip=1.2.3").warnings).toEqual(["ip=: bad value '1.2.3'"]);
    expect(parsePlan("ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off").warnings).toEqual([]);
    expect(parsePlan("ip=dhcp").warnings).toEqual([]);
  });
  test("unknown inetboot.* parameters are reported, others ignored", () => {
    const p = parsePlan("inetboot.rooot=http://x/ foo.bar=1");
    expect(p.warnings).toHaveLength(1);
    expect(p.warnings[0]).toContain("unknown parameter inetboot.rooot");
  });
  test("bad URLs are reported and not used", () => {
    const p = parsePlan("inetboot.root=ftp://h/x inetboot.url");
    expect(p.root).toBeUndefined();
    expect(p.url).toBeUndefined();
    expect(p.warnings).toHaveLength(2);
  });
  test("arguments after -- go to init", () => {
    const p = parsePlan("quiet -- single foo=bar");
    expect(p.initArgs).toEqual(["single", "foo=bar"]);
  });
  test("inetboot.record: bare, with a window in seconds, off, or a bad value", () => {
    expect([parsePlan("inetboot.record").record, parsePlan("inetboot.record").recordSeconds]).toEqual([true, undefined]);
    expect([parsePlan("inetboot.record=40").record, parsePlan("inetboot.record=40").recordSeconds]).toEqual([true, 40]);
    expect(parsePlan("inetboot.record=0").record).toBe(false);
    const bad = parsePlan("inetboot.record=soon");
    expect([bad.record, bad.warnings]).toEqual([false, ["inetboot.record=soon: expected a number of seconds (or no value); not recording"]]);
  });

  test("inetboot.fill: on unless turned off; a bad value keeps it on with a warning", () => {
    expect(parsePlan("").fill).toBe(true);
    expect(parsePlan("inetboot.fill").fill).toBe(true);
    expect(parsePlan("inetboot.fill=off").fill).toBe(false);
    expect(parsePlan("inetboot.fill=0").fill).toBe(false);
    const bad = parsePlan("inetboot.fill=maybe");
    expect([bad.fill, bad.warnings]).toEqual([true, ["inetboot.fill=maybe: expected on or off; filling the cache"]]);
  });

  test("inetboot.cachesize: a size with K, M or G; no value or a bad one means no cap, with a warning", () => {
    expect(parsePlan("").cacheSize).toBeUndefined();
    expect(parsePlan("inetboot.cachesize=512M").cacheSize).toBe(512 * 1024 ** 2);
    expect(parsePlan("inetboot.cachesize=4g").cacheSize).toBe(4 * 1024 ** 3);
    expect(parsePlan("inetboot.cachesize=1000000").cacheSize).toBe(1e6);
    for (const v of ["", "=lots", "=0", "=-5M", "=1.5G"]) {
      const p = parsePlan(`inetboot.cachesize${v}`);
      expect(p.cacheSize).toBeUndefined();
      expect(p.warnings).toEqual([`inetboot.cachesize=${v.slice(1)}: expected a size such as 512M or 4G; no cap`]);
    }
  });

  test("inetboot.shell=0 turns it off", () => {
    expect(parsePlan("inetboot.shell=0").shell).toBe(false);
  });
});

test("on/off values in any case; a bare inetboot.log names no 'undefined'", () => {
  expect(parsePlan("inetboot.shell=No").shell).toBe(false);
  expect(parsePlan("inetboot.shell=OFF").shell).toBe(false);
  expect(parsePlan("inetboot.fill=OFF").fill).toBe(false);
  expect(parsePlan("inetboot.fill=OFF").warnings).toEqual([]);
  expect(parsePlan("inetboot.log").warnings).toEqual(["inetboot.log: only inetboot.log=json is known"]);
});
