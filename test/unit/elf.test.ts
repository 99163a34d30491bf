// ELF reader (synthetic byte vector + real binaries), shared-library closure vs ldd, host symlink mirroring.
import { describe, expect, test } from "bun:test";
import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { bytesReader, parseElf, parseModinfo, readSection, readSections, withFileReader } from "../../src/initramfs/elf.ts";
import { hostPathChain, mirrorHostPath, sharedLibClosure } from "../../src/initramfs/libs.ts";
import { ArchiveTree } from "../../src/initramfs/tree.ts";

const KDIR = process.env.INETBOOT_KERNEL_DIR ?? (existsSync("build/kernel/lib/modules") ? "build/kernel" : "/tmp/k/x");
const KVER = "6.1.0-56-amd64";

/** A tiny ET_DYN image whose string table sits at a virtual address != its file offset. */
function syntheticElf(): Uint8Array {
  const b = new Uint8Array(0x400);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  v.setUint16(16, 3, true); // ET_DYN
  v.setUint16(18, 62, true); // x86-64
  v.setBigUint64(32, 64n, true); // e_phoff
  v.setUint16(54, 56, true);
  v.setUint16(56, 3, true);
  const ph = (i: number, type: number, off: number, vaddr: number, size: number) => {
    const o = 64 + i * 56;
    v.setUint32(o, type, true);
    v.setBigUint64(o + 8, BigInt(off), true);
    v.setBigUint64(o + 16, BigInt(vaddr), true);
    v.setBigUint64(o + 32, BigInt(size), true);
    v.setBigUint64(o + 40, BigInt(size), true);
  };
  const interp = "/lib/ld-test.so.1\0";
  const strtab = "\0libfoo.so.1\0libbar.so\0$ORIGIN/../lib:/opt/x\0libself.so\0";
  ph(0, 3, 0x200, 0x400200, interp.length); // PT_INTERP
  ph(1, 1, 0x200, 0x400200, 0x180); // PT_LOAD: file 0x200.. ↔ vaddr 0x400200..
  ph(2, 2, 0x300, 0x400300, 16 * 7); // PT_DYNAMIC
  b.set(new TextEncoder().encode(interp), 0x200);
  b.set(new TextEncoder().encode(strtab), 0x280);
  const dyn: Array<[number, number]> = [
    [1, 1], // NEEDED libfoo.so.1
    [1, 13], // NEEDED libbar.so
    [29, 23], // RUNPATH
    [14, 45], // SONAME
    [5, 0x400280], // STRTAB (an address)
    [10, strtab.length],
    [0, 0],
  ];
  dyn.forEach(([t, val], i) => {
    v.setBigInt64(0x300 + i * 16, BigInt(t), true);
    v.setBigUint64(0x300 + i * 16 + 8, BigInt(val), true);
  });
  return b;
}

function lddSet(path: string): string[] {
  const r = Bun.spawnSync(["ldd", path], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  const out = new Set<string>();
  for (const line of r.stdout.toString().split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.add(realpathSync(m[1]!));
  }
  return [...out].sort();
}

describe("ELF parser", () => {
  test("synthetic image: interpreter, DT_NEEDED through PT_LOAD mapping, RUNPATH, SONAME", () => {
    const info = parseElf(bytesReader(syntheticElf()));
    expect(info.type).toBe(3);
    expect(info.machine).toBe(62);
    expect(info.interp).toBe("/lib/ld-test.so.1");
    expect(info.needed).toEqual(["libfoo.so.1", "libbar.so"]);
    expect(info.runpath).toEqual(["$ORIGIN/../lib", "/opt/x"]);
    expect(info.soname).toBe("libself.so");
  });

  test("rejects non-ELF and 32-bit input with a reason", () => {
    expect(() => parseElf(bytesReader(new TextEncoder().encode("#!/bin/sh\n".padEnd(64))), "x")).toThrow("x: not an ELF file");
    const e32 = syntheticElf();
    e32[4] = 1;
    expect(() => parseElf(bytesReader(e32), "y")).toThrow("y: not a 64-bit ELF file");
  });

  test("/bin/ls: interpreter and DT_NEEDED match readelf", () => {
    const info = withFileReader("/bin/ls", (r) => parseElf(r));
    const re = Bun.spawnSync(["readelf", "-dl", "/bin/ls"]).stdout.toString();
    const needed = [...re.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(re)?.[1];
    expect(needed.length).toBeGreaterThan(0);
    expect(info.needed).toEqual(needed as string[]);
    expect(info.interp).toBe(interp!);
  });

  test("a static binary has no interpreter and no DT_NEEDED", () => {
    const info = withFileReader("/bin/busybox", (r) => parseElf(r));
    expect(info.interp).toBeUndefined();
    expect(info.needed).toEqual([]);
    expect(sharedLibClosure("/bin/busybox")).toEqual([]);
  });

  test("kernel module .modinfo matches kmod's modinfo", () => {
    const ko = join(KDIR, "lib/modules", KVER, "kernel/drivers/net/virtio_net.ko");
    const info = withFileReader(ko, (r) => {
      expect(readSections(r).some((s) => s.name === ".modinfo")).toBe(true);
      return parseModinfo(readSection(r, ".modinfo")!);
    });
    const field = (f: string) => Bun.spawnSync(["modinfo", "-F", f, ko]).stdout.toString().trim().split("\n").filter(Boolean);
    expect(info.filter(([k]) => k === "alias").map(([, v]) => v).sort()).toEqual(field("alias").sort());
    // direct dependencies only (failover comes in through net_failover)
    expect(info.find(([k]) => k === "depends")![1].split(",").sort()).toEqual(["net_failover", "virtio", "virtio_ring"]);
    expect(info.find(([k]) => k === "depends")![1]).toBe(field("depends")[0]!);
    expect(info.find(([k]) => k === "name")![1]).toBe("virtio_net");
  });
});

describe("shared-library closure", () => {
  for (const exe of ["/bin/ls", "/usr/bin/qemu-img"]) {
    test(`${exe} matches the ldd-derived set`, () => {
      const mine = sharedLibClosure(exe);
      // The same file may be reached by two names (PT_INTERP /lib64/ld-linux-x86-64.so.2 and
      // libc's DT_NEEDED ld-linux-x86-64.so.2 found in /lib/x86_64-linux-gnu): compare real files.
      expect([...new Set(mine.map((p) => realpathSync(p)))].sort()).toEqual(lddSet(exe));
      expect(mine).toContain("/lib64/ld-linux-x86-64.so.2");
    });
  }

  test("hostPathChain records every symlink on the way (merged /usr)", () => {
    const chain = hostPathChain("/lib64/ld-linux-x86-64.so.2");
    const last = chain[chain.length - 1]!;
    expect(last.kind).toBe("file");
    expect(last.path).toBe(realpathSync("/lib64/ld-linux-x86-64.so.2"));
    expect(chain.filter((l) => l.kind === "symlink").length).toBeGreaterThan(0);
  });

  test("mirrored libraries resolve inside the archive tree like on the host", () => {
    const tree = new ArchiveTree();
    for (const l of sharedLibClosure("/bin/ls")) mirrorHostPath(tree, l);
    // Follow the archive's own symlinks from each host path: it must end at a file node
    // holding the host's real file.
    for (const l of sharedLibClosure("/bin/ls")) {
      const at = tree.resolve(l, true);
      const node = tree.get(at)!;
      expect(node.kind).toBe("file");
      if (node.kind === "file") expect(node.source).toBe(realpathSync(l));
    }
    // A later file under /lib lands behind the symlink, not beside it.
    const placed = tree.addFile("lib/modules/x/modules.dep", new Uint8Array(0), 0);
    expect(placed).toBe(realpathSync("/lib").slice(1) + "/modules/x/modules.dep");
  });
});
