// newc cpio codec: byte vectors, round trips (also at an offset / concatenated), and interop with GNU cpio.
import { describe, expect, test } from "bun:test";
import { readFileSync, lstatSync, readlinkSync, rmSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CpioEncoder, concat, decodeArchive, encodeArchive, type CpioEntry } from "../../src/initramfs/cpio.ts";
import { scratch } from "../lib/tmp.ts";

const te = new TextEncoder();
const td = new TextDecoder();

const sample: CpioEntry[] = [
  { path: "bin", kind: "dir", perm: 0o755, mtime: 1700000000 },
  { path: "bin/hello", kind: "file", perm: 0o755, data: te.encode("#!/bin/sh\necho hi\n"), mtime: 1700000000 },
  { path: "bin/sh", kind: "symlink", perm: 0o777, data: te.encode("busybox") },
  { path: "dev", kind: "dir", perm: 0o755 },
  { path: "dev/console", kind: "char", perm: 0o600, major: 5, minor: 1 },
  { path: "dev/null", kind: "char", perm: 0o666, major: 1, minor: 3 },
  { path: "dev/vda", kind: "block", perm: 0o660, major: 254, minor: 0 },
  { path: "empty", kind: "file", perm: 0o644, data: new Uint8Array(0) },
  { path: "odd-name-len", kind: "file", perm: 0o600, data: new Uint8Array([1, 2, 3, 4, 5]) },
  { path: "tmp", kind: "dir", perm: 0o1777 },
];

function run(cmd: string[], opts: { cwd?: string; stdin?: Uint8Array } = {}) {
  const r = Bun.spawnSync(cmd, { cwd: opts.cwd, stdin: opts.stdin, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString(), bytes: r.stdout };
}

describe("cpio encoder", () => {
  test("exact bytes of a one-file archive", () => {
    const a = encodeArchive([{ path: "a", kind: "file", perm: 0o644, data: te.encode("hi"), mtime: 0x10 }]);
    const hdr =
      "070701" +
      ["00000001", "000081a4", "00000000", "00000000", "00000001", "00000010", "00000002", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000"].join("");
    // 110-byte header + "a\0" = 112 (aligned), "hi" + 2 pad, then at 116 the trailer: 116+110+11 = 237 → pad 3.
    const trailer = "070701" + ["00000000", "00000000", "00000000", "00000000", "00000001", "00000000", "00000000", "00000000", "00000000", "00000000", "00000000", "0000000b", "00000000"].join("");
    const expected = concat([te.encode(hdr), te.encode("a\0"), te.encode("hi"), new Uint8Array(2), te.encode(trailer), te.encode("TRAILER!!!\0"), new Uint8Array(3)]);
    expect(a.length % 4).toBe(0);
    expect(Buffer.from(a).toString("latin1")).toBe(Buffer.from(expected).toString("latin1"));
  });

  test("round trip keeps kinds, modes, device numbers, data; inodes numbered in order", () => {
    const a = encodeArchive(sample);
    const { entries, end } = decodeArchive(a);
    expect(end).toBe(a.length);
    expect(entries.map((e) => e.path)).toEqual(sample.map((e) => e.path));
    entries.forEach((e, i) => {
      const s = sample[i]!;
      expect(e.kind).toBe(s.kind);
      expect(e.perm).toBe(s.perm);
      expect(e.ino).toBe(i + 1);
      expect(e.mtime).toBe(s.mtime ?? 0);
      expect(e.uid).toBe(0);
      expect(e.gid).toBe(0);
      if (s.kind === "char" || s.kind === "block") expect([e.major, e.minor]).toEqual([s.major, s.minor]);
      if (s.data) expect(Buffer.from(e.data!).equals(Buffer.from(s.data))).toBe(true);
      expect(e.nlink).toBe(s.kind === "dir" ? 2 : 1);
    });
  });

  test("every header starts 4-byte aligned", () => {
    const a = encodeArchive(sample);
    const text = Buffer.from(a).toString("latin1");
    let count = 0;
    for (let i = text.indexOf("070701"); i >= 0; i = text.indexOf("070701", i + 1)) {
      expect(i % 4).toBe(0);
      count++;
    }
    expect(count).toBe(sample.length + 1);
  });

  test("streaming (header, data handed through, padding) gives the same bytes as whole-entry encoding", () => {
    const e = new CpioEncoder();
    const chunks: Uint8Array[] = [];
    for (const s of sample) {
      const data = s.data ?? new Uint8Array(0);
      chunks.push(e.header({ ...s, size: data.length }));
      // hand the data through in odd-sized pieces, as a file stream would
      for (let o = 0; o < data.length; o += 3) {
        const piece = data.subarray(o, o + 3);
        chunks.push(piece);
        e.data(piece.length);
      }
      chunks.push(e.dataPadding());
    }
    chunks.push(e.trailer());
    expect(Buffer.from(concat(chunks)).equals(Buffer.from(encodeArchive(sample)))).toBe(true);
    expect(e.position).toBe(concat(chunks).length);
  });

  test("decode at an offset and concatenated archives (early-microcode style prefix)", () => {
    const first = encodeArchive([{ path: "kernel/x86/microcode/GenuineIntel.bin", kind: "file", perm: 0o644, data: new Uint8Array(13).fill(7) }]);
    const second = encodeArchive(sample);
    for (const gap of [0, 3, 512 - (first.length % 512)]) {
      const buf = concat([new Uint8Array(5), first, new Uint8Array(gap), second]);
      const a = decodeArchive(buf, 5);
      expect(a.entries.map((e) => e.path)).toEqual(["kernel/x86/microcode/GenuineIntel.bin"]);
      expect(a.end).toBe(5 + first.length);
      const b = decodeArchive(buf, a.end + gap);
      expect(b.entries.length).toBe(sample.length);
      expect(td.decode(b.entries[1]!.data!)).toBe("#!/bin/sh\necho hi\n");
      expect(b.end).toBe(buf.length);
    }
  });

  test("rejects bad magic and truncation", () => {
    const a = encodeArchive(sample);
    const bad = a.slice();
    bad[5] = 0x32; // 070702
    expect(() => decodeArchive(bad)).toThrow(/bad magic/);
    expect(() => decodeArchive(a.subarray(0, 200))).toThrow(/truncated/);
  });
});

describe("GNU cpio interop", () => {
  test("cpio -itv lists our entries with the right types, modes and device numbers", () => {
    const a = encodeArchive(sample);
    const r = run(["cpio", "-itv", "--quiet"], { stdin: a });
    expect(r.code).toBe(0);
    const lines = r.out.trim().split("\n");
    expect(lines.length).toBe(sample.length);
    const byName = new Map(lines.map((l) => [l.split(/\s+/).slice(-1)[0]!.replace(/ -> .*/, ""), l]));
    expect(lines.find((l) => l.endsWith("bin/sh -> busybox"))).toMatch(/^lrwxrwxrwx /);
    expect(byName.get("dev/null")).toMatch(/^crw-rw-rw- +1 root +root +1, +3 /);
    expect(byName.get("dev/console")).toMatch(/^crw------- +1 root +root +5, +1 /);
    expect(byName.get("dev/vda")).toMatch(/^brw-rw---- +1 root +root +254, +0 /);
    expect(byName.get("tmp")).toMatch(/^drwxrwxrwt /);
    expect(byName.get("bin/hello")).toMatch(/^-rwxr-xr-x +1 root +root +18 /);
  });

  test("cpio -idm extracts identical files, links and modes", () => {
    const dir = scratch("cpio-x-");
    try {
      const r = run(["cpio", "-idm", "--no-absolute-filenames", "--quiet"], { cwd: dir, stdin: encodeArchive(sample) });
      expect(r.code).toBe(0);
      expect(readFileSync(join(dir, "bin/hello"), "utf8")).toBe("#!/bin/sh\necho hi\n");
      expect(statSync(join(dir, "bin/hello")).mode & 0o7777).toBe(0o755);
      expect(statSync(join(dir, "bin/hello")).mtimeMs).toBe(1700000000 * 1000);
      expect(readlinkSync(join(dir, "bin/sh"))).toBe("busybox");
      expect([...readFileSync(join(dir, "odd-name-len"))]).toEqual([1, 2, 3, 4, 5]);
      expect(statSync(join(dir, "odd-name-len")).mode & 0o7777).toBe(0o600);
      expect(statSync(join(dir, "empty")).size).toBe(0);
      expect(statSync(join(dir, "tmp")).mode & 0o7777).toBe(0o1777);
      if (process.getuid?.() === 0) {
        // Only root can mknod; the listing test above covers device entries for everyone.
        const st = lstatSync(join(dir, "dev/null"));
        expect(st.isCharacterDevice()).toBe(true);
        expect(st.rdev).toBe((1 << 8) | 3);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("we decode an archive GNU cpio wrote (-o -H newc)", () => {
    const dir = scratch("cpio-o-");
    try {
      writeFileSync(join(dir, "f1"), "one");
      writeFileSync(join(dir, "f22"), "twenty-two!");
      const r = run(["cpio", "-o", "-H", "newc", "--quiet"], { cwd: dir, stdin: te.encode("f1\nf22\n") });
      expect(r.code).toBe(0);
      const { entries } = decodeArchive(new Uint8Array(r.bytes));
      expect(entries.map((e) => [e.path, e.kind, td.decode(e.data!)])).toEqual([
        ["f1", "file", "one"],
        ["f22", "file", "twenty-two!"],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
