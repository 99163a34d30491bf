// LZ4 legacy-frame encoder (src/initramfs/lz4.ts): round trips through the real `lz4 -dc`, and a
// strict decoder here that also enforces what the kernel relies on: independent blocks of 8 MiB,
// offsets 1..65535 inside the block, the last sequence literals only, the last 5 bytes literals,
// the last match starting at least 12 bytes before the end.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { compressBlock, compressBound, LEGACY_BLOCK_SIZE, lz4LegacyFrame, Lz4LegacyEncoder, LZ4_LEGACY_MAGIC } from "../../src/initramfs/lz4.ts";
import { prng } from "./store-fixtures.ts";

const te = new TextEncoder();

function lz4Tool(args: string[], stdin: Uint8Array): Uint8Array {
  const r = Bun.spawnSync(["lz4", ...args], { stdin, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`lz4 ${args.join(" ")} exited with ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return new Uint8Array(r.stdout);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

/** Decodes one independent block of `n` bytes, throwing on anything a strict decoder may reject. */
function strictDecodeBlock(block: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let ip = 0;
  let op = 0;
  const length = (base: number) => {
    let len = base;
    if (base === 15) {
      let b: number;
      do {
        if (ip >= block.length) throw new Error("length runs past the block");
        b = block[ip++]!;
        len += b;
      } while (b === 255);
    }
    return len;
  };
  for (;;) {
    if (ip >= block.length) throw new Error("block ends without a final literals-only sequence");
    const token = block[ip++]!;
    const lit = length(token >> 4);
    if (ip + lit > block.length || op + lit > n) throw new Error("literals run past the block");
    out.set(block.subarray(ip, ip + lit), op);
    ip += lit;
    op += lit;
    if (ip === block.length) {
      if ((token & 15) !== 0) throw new Error("last sequence has a match length");
      break;
    }
    if (ip + 2 > block.length) throw new Error("offset runs past the block");
    const off = block[ip]! | (block[ip + 1]! << 8);
    ip += 2;
    if (off === 0) throw new Error("offset 0");
    if (off > op) throw new Error(`offset ${off} reaches before the block at ${op}`);
    const ml = length(token & 15) + 4;
    if (op > n - 12) throw new Error(`match at ${op} starts less than 12 bytes before the end (${n})`);
    if (op + ml > n - 5) throw new Error(`match ${op}..${op + ml} covers the last 5 bytes (${n})`);
    for (let i = 0; i < ml; i++) out[op + i] = out[op + i - off]!;
    op += ml;
  }
  if (op !== n) throw new Error(`block decodes to ${op} bytes, expected ${n}`);
  return out;
}

/** Splits a legacy frame, checks every block strictly (8 MiB each but the last), returns the data. */
function strictDecodeFrame(frame: Uint8Array, total: number): Uint8Array {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  expect(dv.getUint32(0, true)).toBe(LZ4_LEGACY_MAGIC);
  const out = new Uint8Array(total);
  let p = 4;
  let o = 0;
  while (p < frame.length) {
    const size = dv.getUint32(p, true);
    p += 4;
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThanOrEqual(compressBound(LEGACY_BLOCK_SIZE));
    const n = Math.min(LEGACY_BLOCK_SIZE, total - o);
    out.set(strictDecodeBlock(frame.subarray(p, p + size), n), o);
    p += size;
    o += n;
  }
  expect(p).toBe(frame.length);
  expect(o).toBe(total);
  return out;
}

/** Our frame, checked both ways: the lz4 tool and the strict decoder give back the input. */
function roundTrip(data: Uint8Array): Uint8Array {
  const frame = lz4LegacyFrame(data);
  expect(same(lz4Tool(["-dc"], frame), data)).toBe(true);
  expect(same(strictDecodeFrame(frame, data.length), data)).toBe(true);
  return frame;
}

const text = te.encode(readFileSync(new URL("../../README.md", import.meta.url), "utf8").repeat(20));
const bash = new Uint8Array(readFileSync("/bin/bash"));

describe("lz4 legacy frame", () => {
  test("random, zeros, text and a real ELF round trip through lz4 -dc", () => {
    const rnd = prng(1 << 20, 7);
    const f = roundTrip(rnd);
    expect(f.length).toBeLessThanOrEqual(4 + 4 + compressBound(rnd.length));
    expect(roundTrip(new Uint8Array(3 << 20)).length).toBeLessThan(20_000);
    expect(roundTrip(text).length).toBeLessThan(text.length / 10); // repeated, so mostly matches
    roundTrip(bash);
  });

  test("within 2% of lz4 -l -9 on /bin/bash, and far better than lz4 -l -1", () => {
    const ours = lz4LegacyFrame(bash).length;
    const hc = lz4Tool(["-l", "-9", "-c"], bash).length;
    const fast = lz4Tool(["-l", "-1", "-c"], bash).length;
    expect(ours).toBeLessThan(hc * 1.02);
    expect(ours).toBeLessThan(fast * 0.95);
  });

  test("block boundaries: 8 MiB blocks, the last one partial", () => {
    // Compressible but not trivial: ELF bytes repeated with a changing byte (matches cross nothing).
    const big = new Uint8Array(2 * LEGACY_BLOCK_SIZE + 1);
    for (let o = 0; o < big.length; o += bash.length) big.set(bash.subarray(0, Math.min(bash.length, big.length - o)), o);
    for (let i = 0; i < big.length; i += 4099) big[i] = i & 0xff;
    for (const n of [LEGACY_BLOCK_SIZE - 1, LEGACY_BLOCK_SIZE, LEGACY_BLOCK_SIZE + 1, 2 * LEGACY_BLOCK_SIZE + 1]) {
      const frame = roundTrip(big.subarray(0, n));
      let blocks = 0;
      for (let p = 4; p < frame.length; p += 4 + new DataView(frame.buffer, frame.byteOffset + p, 4).getUint32(0, true)) blocks++;
      expect([n, blocks]).toEqual([n, Math.ceil(n / LEGACY_BLOCK_SIZE)]);
    }
  }, 60_000);

  test("inputs under 13 bytes are one literal run; 0..40 bytes of all kinds round trip", () => {
    for (let n = 0; n <= 40; n++) {
      for (const fill of ["zero", "same", "random"]) {
        const d = fill === "zero" ? new Uint8Array(n) : fill === "same" ? new Uint8Array(n).fill(0x61) : prng(n, n + 1);
        roundTrip(d);
        const block = compressBlock(d);
        if (n < 13) expect([n, fill, Array.from(block)]).toEqual([n, fill, [n << 4, ...d]]);
      }
    }
    // 13 equal bytes: the smallest block holding a match (1 literal, 7-byte match, 5 literals).
    expect(Array.from(compressBlock(new Uint8Array(13).fill(0x61)))).toEqual([0x13, 0x61, 1, 0, 0x50, 0x61, 0x61, 0x61, 0x61, 0x61]);
  });

  test("empty input is the bare magic, byte for byte what lz4 -l writes", () => {
    const f = lz4LegacyFrame(new Uint8Array(0));
    expect(Array.from(f)).toEqual([0x02, 0x21, 0x4c, 0x18]);
    expect(Array.from(lz4Tool(["-l", "-c"], new Uint8Array(0)))).toEqual(Array.from(f));
    expect(lz4Tool(["-dc"], f).length).toBe(0);
  });

  test("a match near the end of the block stays 12 bytes clear of it", () => {
    // The string that tempts a naive encoder into a match 11 bytes before the end.
    const d = te.encode("Abcdefghijklmnop0000000000000000Abcdefghijk");
    strictDecodeBlock(compressBlock(d), d.length);
    for (let n = 13; n < 64; n++) {
      const z = new Uint8Array(n);
      z.set(te.encode("xyz"), n - 3); // a long run, then a tail
      strictDecodeBlock(compressBlock(z), n);
      roundTrip(z);
    }
  });

  test("the strict decoder rejects blocks breaking the end rules (it can fail)", () => {
    // 1 literal "a", match offset 1 length 8, 4 literals: the match covers the last 5 bytes' position.
    const badTail = new Uint8Array([0x14, 0x61, 1, 0, 0x40, 0x61, 0x61, 0x61, 0x61]);
    expect(() => strictDecodeBlock(badTail, 13)).toThrow(/last 5 bytes/);
    // A block ending with a match: no final literals-only sequence.
    expect(() => strictDecodeBlock(new Uint8Array([0x10, 0x61, 1, 0]), 100)).toThrow(/final literals-only/);
    expect(() => strictDecodeBlock(new Uint8Array([0x10, 0x61, 0, 0, 0x00]), 5)).toThrow(/offset 0/);
  });

  test("streaming in odd pieces writes the same bytes as one piece", () => {
    const d = new Uint8Array(LEGACY_BLOCK_SIZE + 12345);
    for (let o = 0; o < d.length; o += text.length) d.set(text.subarray(0, Math.min(text.length, d.length - o)), o);
    const whole = lz4LegacyFrame(d);
    const enc = new Lz4LegacyEncoder();
    const parts: Uint8Array[] = [];
    for (let i = 0, step = 1; i < d.length; i += step, step = 1 + ((step * 7 + 3) % 900_001)) parts.push(...enc.write(d.subarray(i, i + step)));
    parts.push(...enc.end());
    expect(same(Buffer.concat(parts), whole)).toBe(true);
  }, 30_000);
});
