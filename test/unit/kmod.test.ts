// Kernel module tables: names, modules.dep codec and closures, fnmatch/modalias matching, and the
// .modinfo-derived tables compared with depmod's output on the real Debian kernel tree.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AliasIndex, fnmatch, literalPrefix, parseModulesAlias } from "../../src/kmod/modalias.ts";
import { applySoftdeps, formatModulesDep, loadOrder, moduleName, parseModulesDep } from "../../src/kmod/modules-dep.ts";
import { deriveModuleTable, detectKernelVersion, loadKernelModules, readModinfo } from "../../src/kmod/tree.ts";
import { scratch } from "../lib/tmp.ts";

const KDIR = process.env.INETBOOT_KERNEL_DIR ?? (existsSync("build/kernel/lib/modules") ? "build/kernel" : "/tmp/k/x");
const KVER = "6.1.0-56-amd64";
const MODDIR = join(KDIR, "lib/modules", KVER);

describe("module names and modules.dep", () => {
  test("normalisation", () => {
    expect(moduleName("kernel/drivers/net/virtio_net.ko")).toBe("virtio_net");
    expect(moduleName("kernel/drivers/gpu/drm/virtio/virtio-gpu.ko.xz")).toBe("virtio_gpu");
    expect(moduleName("kernel/arch/x86/crypto/crc32c-intel.ko.zst")).toBe("crc32c_intel");
    expect(moduleName("snd-hda-intel")).toBe("snd_hda_intel");
    expect(moduleName("a.ko.gz")).toBe("a");
  });

  const dep = [
    "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko",
    "kernel/net/core/failover.ko:",
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_ring.ko:",
    "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
    "kernel/lib/crc16.ko:",
    "kernel/fs/mbcache.ko:",
    "kernel/fs/jbd2/jbd2.ko:",
    "kernel/crypto/crc32c_generic.ko:",
    "",
  ].join("\n");

  test("closure in load order: every module after its dependencies", () => {
    const t = parseModulesDep(dep);
    const order = loadOrder(t, ["virtio-net"]);
    expect(new Set(order)).toEqual(new Set(["virtio_net", "net_failover", "failover", "virtio", "virtio_ring"]));
    expect(order[order.length - 1]).toBe("virtio_net");
    expect(order.indexOf("failover")).toBeLessThan(order.indexOf("net_failover"));
    expect(order.indexOf("virtio_ring")).toBeLessThan(order.indexOf("virtio"));
    const both = loadOrder(t, ["ext4", "virtio_net", "ext4"]);
    expect(both.length).toBe(9);
    expect(both.slice(0, 4)).toEqual(["crc16", "mbcache", "jbd2", "ext4"]);
  });

  test("softdeps: pre before, post after, aliases resolved, unknown ones ignored", () => {
    const t = parseModulesDep(dep);
    applySoftdeps(t, "softdep ext4 pre: crypto-crc32c nosuchmod post: virtio\n");
    const order = loadOrder(t, ["ext4"], { resolveSoft: (w) => (w === "crypto-crc32c" ? ["crc32c_generic"] : []) });
    expect(order).toEqual(["crc32c_generic", "crc16", "mbcache", "jbd2", "ext4", "virtio_ring", "virtio"]);
  });

  test("unknown module and missing dependency are errors; builtin ones are not", () => {
    const t = parseModulesDep(dep + "kernel/x.ko: kernel/gone.ko\n");
    expect(() => loadOrder(t, ["nope"])).toThrow("unknown module nope");
    expect(() => loadOrder(t, ["x"])).toThrow("module x depends on gone, which is missing");
    expect(loadOrder(t, ["x"], { builtin: new Set(["gone"]) })).toEqual(["x"]);
  });

  test("formatModulesDep round-trips and lists full closures in depmod order", () => {
    const t = parseModulesDep(dep);
    const again = parseModulesDep(formatModulesDep(t));
    for (const [n, r] of t) expect(new Set(again.get(n)!.depends)).toEqual(new Set(r.depends));
    const line = formatModulesDep(t, ["virtio_net"]).trim();
    const deps = line.split(": ")[1]!.split(" ").map(moduleName);
    // Loading from the end backwards must satisfy each module (what modprobe does).
    const loadSeq = [...deps].reverse();
    expect(loadSeq.indexOf("virtio_ring")).toBeLessThan(loadSeq.indexOf("virtio"));
    expect(loadSeq.indexOf("failover")).toBeLessThan(loadSeq.indexOf("net_failover"));
  });
});

describe("fnmatch and modalias", () => {
  test("fnmatch vectors", () => {
    const cases: Array<[string, string, boolean]> = [
      ["abc", "abc", true],
      ["abc", "abd", false],
      ["a*c", "abbbc", true],
      ["a*c", "ab", false],
      ["*", "", true],
      ["a?c", "abc", true],
      ["a?c", "ac", false],
      ["[abc]x", "bx", true],
      ["[!abc]x", "bx", false],
      ["[!abc]x", "dx", true],
      ["[^abc]x", "dx", true],
      ["[a-f]1", "e1", true],
      ["[a-f]1", "g1", false],
      ["[]]", "]", true],
      ["a\\*b", "a*b", true],
      ["a\\*b", "axb", false],
      ["[ab", "[ab", true],
      ["*a*b*c*", "xxaxxbxxcxx", true],
      ["*a*b*c", "xxaxxbxxcxx", false],
      ["pci:v00008086d0000100Esv*sd*bc*sc*i*", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", true],
      ["pci:v00008086d0000100Esv*sd*bc*sc*i*", "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00", false],
      ["usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", true],
      ["dmi*:svn*Dell*:pn*", "dmi:bvnSeaBIOS:svnDell Inc.:pnOptiPlex:", true],
      ["acpi*:PNP0A0[38]:*", "acpi:PNP0A08:PNP0A03:", true],
    ];
    for (const [p, s, want] of cases) expect([p, s, fnmatch(p, s)]).toEqual([p, s, want]);
    expect(literalPrefix("pci:v00001AF4d*sv*")).toBe("pci:v00001AF4d");
  });

  test("real aliases of the Debian kernel pick the right drivers for QEMU's devices", () => {
    const k = loadKernelModules(KDIR, KVER);
    const q = (m: string) => k.aliases.lookup(m);
    expect(q("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")).toEqual(["virtio_pci"]); // virtio-net-pci
    expect(q("virtio:d00000001v00001AF4")).toEqual(["virtio_net"]);
    expect(q("virtio:d00000002v00001AF4")).toEqual(["virtio_blk"]);
    expect(q("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00")).toEqual(["e1000"]); // QEMU -net nic,model=e1000
    expect(q("crypto-crc32c")).toEqual(expect.arrayContaining(["crc32c_generic", "crc32c_intel"]));
    expect(q("fs-ext4")).toEqual(["ext4"]);
    expect(q("block-major-7-0")).toEqual(["loop"]);
    expect(q("pci:v0000FFFFd0000FFFFsv0sd0bc77sc00i00")).toEqual([]);
  });

  test("mayMatchBus: only buses some alias can match are read by coldplug", () => {
    const idx = new AliasIndex(parseModulesAlias("alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000001v* virtio_net\nalias fs-ext4 ext4\n"));
    expect(idx.mayMatchBus("pci")).toBe(true);
    expect(idx.mayMatchBus("virtio")).toBe(true);
    expect(idx.mayMatchBus("acpi")).toBe(false);
    expect(idx.mayMatchBus("platform")).toBe(false);
    expect(idx.mayMatchBus("usb")).toBe(false);
    // a pattern whose literal part stops before the ':' may match any bus starting with it
    expect(new AliasIndex(parseModulesAlias("alias us* usb_storage\n")).mayMatchBus("usb")).toBe(true);
    // a pattern starting with a wildcard may match anything
    expect(new AliasIndex(parseModulesAlias("alias *:foo bar\n")).mayMatchBus("acpi")).toBe(true);
    // the full Debian table matches the buses a QEMU guest has
    const full = new AliasIndex(parseModulesAlias(readFileSync(join(depmodDir(), "modules.alias"), "utf8")));
    for (const bus of ["pci", "usb", "virtio", "acpi", "platform", "scsi"]) expect(full.mayMatchBus(bus)).toBe(true);
  });

  test("~26k aliases against 100 devices is fast and agrees with brute force", () => {
    const text = readFileSync(join(depmodDir(), "modules.alias"), "utf8");
    const aliases = parseModulesAlias(text);
    expect(aliases.length).toBeGreaterThan(20000);
    const idx = new AliasIndex(aliases);
    const devices: string[] = [];
    for (let i = 0; i < 100; i++) {
      const a = aliases[(i * 7919) % aliases.length]!.pattern;
      devices.push(a.replace(/\*/g, "0").replace(/\?/g, "1").replace(/\[!?\^?([^\]])[^\]]*\]/g, "$1"));
    }
    const t0 = performance.now();
    const got = devices.map((d) => idx.lookup(d));
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(1000);
    for (let i = 0; i < 10; i++) {
      const brute = [...new Set(aliases.filter((a) => fnmatch(a.pattern, devices[i]!)).map((a) => a.module))];
      expect(got[i]).toEqual(brute);
    }
  });
});

// Two hard-linked copies of the kernel tree (the original is never written): one as Debian ships it
// (no depmod output, even if someone ran depmod on the original), one on which depmod has run.
let shippedRoot = "";
let depmodRoot = "";
function depmodDir(): string {
  return join(depmodRoot, "lib/modules", KVER);
}
const shippedDir = () => join(shippedRoot, "lib/modules", KVER);

function linkCopy(): string {
  const root = scratch("kmods-");
  mkdirSync(join(root, "lib/modules"), { recursive: true });
  if (Bun.spawnSync(["cp", "-al", MODDIR, join(root, "lib/modules/")]).exitCode !== 0) {
    // different filesystem: a real copy
    expect(Bun.spawnSync(["cp", "-a", MODDIR, join(root, "lib/modules/")]).exitCode).toBe(0);
  }
  const dir = join(root, "lib/modules", KVER);
  for (const f of readdirSync(dir)) if (/^modules\.(dep|alias|softdep|symbols|devname)|\.bin$/.test(f)) rmSync(join(dir, f));
  return root;
}

beforeAll(() => {
  shippedRoot = linkCopy();
  depmodRoot = linkCopy();
  const r = Bun.spawnSync(["depmod", "-b", depmodRoot, KVER], { stderr: "pipe" });
  expect(r.exitCode).toBe(0);
});

afterAll(() => {
  for (const r of [shippedRoot, depmodRoot]) if (r) rmSync(r, { recursive: true, force: true });
});

describe("derived from .modinfo vs depmod", () => {
  test("the shipped tree has no modules.dep (so deriving is needed)", () => {
    expect(existsSync(join(shippedDir(), "modules.dep"))).toBe(false);
    expect(existsSync(join(shippedDir(), "modules.builtin"))).toBe(true);
    expect(detectKernelVersion(shippedRoot)).toBe(KVER);
  });

  test("derived modules.dep equals depmod's for every module", () => {
    const mine = parseModulesDep(formatModulesDep(deriveModuleTable(shippedDir())));
    const theirs = parseModulesDep(readFileSync(join(depmodDir(), "modules.dep"), "utf8"));
    expect(mine.size).toBe(theirs.size);
    const diffs: string[] = [];
    for (const [n, r] of theirs) {
      const m = mine.get(n);
      if (!m || m.path !== r.path || [...m.depends].sort().join() !== [...r.depends].sort().join()) diffs.push(n);
    }
    expect(diffs).toEqual([]);
  });

  test("derived aliases equal depmod's modules.alias", () => {
    const t = deriveModuleTable(shippedDir());
    const mine = [...t.values()].flatMap((r) => r.aliases.map((a) => `${a} ${r.name}`)).sort();
    const theirs = parseModulesAlias(readFileSync(join(depmodDir(), "modules.alias"), "utf8")).map((a) => `${a.pattern} ${a.module}`).sort();
    expect(mine).toEqual(theirs);
  });

  test("real closures (derived tree and depmod tree agree)", () => {
    const derived = loadKernelModules(shippedRoot, KVER);
    const viaDepmod = loadKernelModules(depmodRoot, KVER);
    expect(derived.source).toBe("modinfo");
    expect(viaDepmod.source).toBe("modules.dep");
    for (const k of [derived, viaDepmod]) {
      const opts = { builtin: k.builtin, resolveSoft: (w: string) => k.aliases.lookup(w) };
      const vn = loadOrder(k.table, ["virtio_net"], opts);
      expect(new Set(vn)).toEqual(new Set(["virtio_ring", "virtio", "failover", "net_failover", "virtio_net"]));
      expect(vn[vn.length - 1]).toBe("virtio_net");
      expect(vn.indexOf("virtio_ring")).toBeLessThan(vn.indexOf("virtio"));
      expect(vn.indexOf("failover")).toBeLessThan(vn.indexOf("net_failover"));
      expect(new Set(loadOrder(k.table, ["virtio_pci"], opts))).toEqual(new Set(["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci"]));
      const e4 = loadOrder(k.table, ["ext4"], opts);
      for (const d of ["crc16", "mbcache", "jbd2", "crc32c_generic"]) expect(e4.indexOf(d)).toBeLessThan(e4.indexOf("ext4"));
      for (const m of ["nbd", "squashfs", "overlay", "loop"]) expect(loadOrder(k.table, [m], opts)).toEqual([m]);
    }
    expect(readModinfo(join(MODDIR, "kernel/fs/ext4/ext4.ko")).find(([key]) => key === "softdep")?.[1]).toBe("pre: crypto-crc32c");
  });
});

describe("module parameters from the kernel command line", () => {
  test("module.param=value words apply to that module, over the agent's defaults", async () => {
    const { moduleParams } = await import("../../src/agent/coldplug.ts");
    expect(moduleParams("usb_storage", "console=ttyS0 quiet")).toBe("delay_use=0");
    expect(moduleParams("usb_storage", "usb-storage.delay_use=2 usb_storage.quirks=abcd:1234:u")).toBe("delay_use=2 quirks=abcd:1234:u");
    expect(moduleParams("nbd", "nbd.nbds_max=4 nbd.max_part=0 loop.max_loop=8")).toBe("nbds_max=4 max_part=0");
    expect(moduleParams("nbd", "nbd=1 .x=1 nbd.flag")).toBe("");
    expect(moduleParams("foo", 'foo.name="a b"')).toBe('name="a b"');
    expect(moduleParams("virtio_net", "")).toBe("");
  });
});
