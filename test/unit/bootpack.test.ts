// Boot pack: the codec (round trip at an offset, streamed in pieces of any size, bad input), the
// layer that serves chunks from it (checked, falling through to the store), and the pump (a pack
// for another index, a stream cut short, a stall).
import { describe, expect, test } from "bun:test";
import {
  BOOTPACK_HEADER, BootPackError, BootPackParser, bootPackEntryLength, decodeBootPackHeader, encodeBootPackEntry, encodeBootPackHeader,
  type BootPackEntry,
} from "../../src/store/bootpack.ts";
import { pumpBootPack } from "../../src/store/bootpack-stream.ts";
import { sha256Hex } from "../../src/store/chunk-name.ts";
import type { ChunkRef } from "../../src/store/chunk.ts";
import { PackLayer } from "../../src/store/fetcher/packlayer.ts";
import { DIGEST_LEN, type StoreIndex } from "../../src/store/format.ts";
import { fromHex, indexDigest } from "../../src/store/profile.ts";

function noise(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return b;
}

/** n chunks of 4 KiB (some compressible), their refs, stored forms, and an index naming them. */
function chunks(n: number) {
  const plain = Array.from({ length: n }, (_, i) => (i % 2 ? noise(4096, i + 1) : new Uint8Array(4096).fill(i + 1)));
  const refs: ChunkRef[] = plain.map((p) => ({ hex: sha256Hex(p), size: p.length }));
  const packed = plain.map((p) => Bun.zstdCompressSync(p));
  const digests = new Uint8Array(n * DIGEST_LEN);
  refs.forEach((r, i) => digests.set(fromHex(r.hex), i * DIGEST_LEN));
  const index: StoreIndex = { version: 1, imageSize: n * 65536, chunkSize: 65536, digests }; // only named (indexDigest), never read
  return { plain, refs, packed, index };
}

function packBytes(c: ReturnType<typeof chunks>, digest = indexDigest(c.index), count = c.refs.length): Uint8Array {
  const parts = [encodeBootPackHeader({ count, indexDigest: digest })];
  c.refs.forEach((r, i) => parts.push(encodeBootPackEntry(fromHex(r.hex), c.packed[i]!)));
  return Buffer.concat(parts);
}

describe("codec", () => {
  test("header and entry round trip at an offset", () => {
    const d = noise(32, 9);
    const buf = new Uint8Array(7 + BOOTPACK_HEADER).fill(0xee);
    encodeBootPackHeader({ count: 12345, indexDigest: d }, buf, 7);
    expect(buf.subarray(0, 7).every((b) => b === 0xee)).toBe(true);
    expect(decodeBootPackHeader(buf, 7)).toEqual({ count: 12345, indexDigest: d });
    const packed = noise(100, 3);
    const eb = new Uint8Array(5 + bootPackEntryLength(packed));
    encodeBootPackEntry(d, packed, eb, 5);
    expect(Array.from(eb.subarray(5, 37))).toEqual(Array.from(d));
    expect(new DataView(eb.buffer, 37, 4).getUint32(0, true)).toBe(100);
    expect(Array.from(eb.subarray(41))).toEqual(Array.from(packed));
  });

  test("the parser gives every entry once, whatever the pieces the stream arrives in", () => {
    const c = chunks(9);
    const bytes = packBytes(c);
    for (const seed of [1, 2, 3, 4]) {
      const got: BootPackEntry[] = [];
      const p = new BootPackParser((e) => got.push(e));
      let r = seed;
      for (let pos = 0; pos < bytes.length; ) {
        r = (r * 1103515245 + 12345) >>> 0;
        const n = 1 + (r % (seed === 1 ? 3 : 900));
        p.feed(bytes.subarray(pos, pos + n));
        pos += n;
      }
      expect(p.done).toBe(true);
      expect(got.map((e) => sha256Hex(Bun.zstdDecompressSync(e.packed)))).toEqual(c.refs.map((r) => r.hex));
      expect(got.map((e) => Buffer.from(e.digest).toString("hex"))).toEqual(c.refs.map((r) => r.hex));
      expect(() => p.feed(new Uint8Array(1))).toThrow(/after the last entry/);
    }
  });

  test("bad input is a BootPackError naming what is wrong", () => {
    const c = chunks(2);
    const good = packBytes(c);
    const feed = (b: Uint8Array) => new BootPackParser(() => {}).feed(b);
    const bad = (f: (b: Uint8Array) => void) => {
      const b = Uint8Array.from(good); // (Buffer#slice would be a view)
      f(b);
      return b;
    };
    expect(() => feed(bad((b) => (b[0] = 0)))).toThrow(/bad magic/);
    expect(() => feed(bad((b) => (b[8] = 9)))).toThrow(/version 9/);
    expect(() => feed(bad((b) => (b[10] = 1)))).toThrow(/flags 0x1 unknown/);
    expect(() => feed(bad((b) => new DataView(b.buffer).setUint32(BOOTPACK_HEADER + 32, 0x7fffffff, true)))).toThrow(/entry 0: stored chunk of \d+ bytes/);
    expect(() => feed(good.subarray(0, 20))).not.toThrow(); // just not there yet
    expect(() => decodeBootPackHeader(good.subarray(0, 20))).toThrow(BootPackError);
    // onHeader refuses: no entry is handed out
    const got: unknown[] = [];
    const p = new BootPackParser((e) => got.push(e), () => {
      throw new BootPackError("not this index");
    });
    expect(() => p.feed(good)).toThrow(/not this index/);
    expect(got).toEqual([]);
  });
});

/** A chunk layer below the pack layer that counts what fell through to it. */
function store(c: ReturnType<typeof chunks>) {
  const asked: string[] = [];
  return {
    asked,
    layer: {
      async get(ref: ChunkRef) {
        asked.push(ref.hex);
        return c.plain[c.refs.findIndex((r) => r.hex === ref.hex)]!;
      },
    },
  };
}

describe("PackLayer", () => {
  test("serves announced chunks from the pack, checked; a read that comes first waits for its entry", async () => {
    const c = chunks(4);
    const s = store(c);
    const pack = new PackLayer(s.layer);
    pack.expect(c.refs);
    const early = pack.get(c.refs[2]!); // before the stream got there
    c.refs.forEach((r, i) => pack.deliver(r.hex, c.packed[i]!));
    expect(await early).toEqual(c.plain[2]!);
    for (const i of [0, 1, 3]) expect(await pack.get(c.refs[i]!)).toEqual(c.plain[i]!);
    pack.end();
    expect(s.asked).toEqual([]);
    expect(pack.stats).toMatchObject({ expected: 4, served: 4, bad: 0, dropped: 0 });
    // read once: a second read of the same chunk goes to the store
    expect(await pack.get(c.refs[0]!)).toEqual(c.plain[0]!);
    expect(s.asked).toEqual([c.refs[0]!.hex]);
  });

  test("an entry that fails its check, one the stream never delivered, and one never announced come from the store", async () => {
    const c = chunks(4);
    const s = store(c);
    const lines: string[] = [];
    const pack = new PackLayer(s.layer, (l) => lines.push(l));
    pack.expect(c.refs.slice(0, 3));
    pack.deliver(c.refs[0]!.hex, c.packed[1]!); // someone else's bytes
    pack.deliver(c.refs[1]!.hex, c.packed[1]!);
    const waiting = pack.get(c.refs[2]!);
    pack.end("stream cut");
    expect(await pack.get(c.refs[0]!)).toEqual(c.plain[0]!);
    expect(await pack.get(c.refs[1]!)).toEqual(c.plain[1]!); // delivered before the end: still served
    expect(await waiting).toEqual(c.plain[2]!);
    expect(await pack.get(c.refs[3]!)).toEqual(c.plain[3]!);
    expect(s.asked.sort()).toEqual([c.refs[0]!.hex, c.refs[2]!.hex, c.refs[3]!.hex].sort());
    expect(pack.stats).toMatchObject({ expected: 3, served: 1, bad: 1, dropped: 0 });
    expect(lines.join("\n")).toMatch(/stream cut; fetching the rest chunk by chunk/);
    expect(lines.join("\n")).toMatch(/boot pack: chunk [0-9a-f]{16}… .*fetching it from the store/);
  });

  test("a read far ahead of the stream (past PACK_WAIT_BYTES) does not wait for it: fetched alone, its entry dropped", async () => {
    const c = chunks(4);
    const s = store(c);
    const pack = new PackLayer(s.layer);
    // as if every chunk were 600 kB: the third starts 1.2 MB into the pack
    pack.expect(c.refs.map((r) => ({ ...r, size: 600_000 })));
    expect(await pack.get(c.refs[2]!)).toEqual(c.plain[2]!);
    expect(s.asked).toEqual([c.refs[2]!.hex]);
    const near = pack.get(c.refs[1]!); // 600 kB ahead: waits for the stream
    await Bun.sleep(5);
    expect(s.asked).toHaveLength(1);
    c.refs.forEach((r, i) => pack.deliver(r.hex, c.packed[i]!));
    expect(await near).toEqual(c.plain[1]!);
    expect(s.asked).toHaveLength(1);
  });
});

/** A stream reader over pieces, optionally stalling forever after them. `taken()`: bytes handed
 *  out so far (what a server would have sent). */
function reader(pieces: Uint8Array[], stall = false) {
  let i = 0;
  let cancelled = false;
  let wake: (() => void) | null = null;
  let given = 0;
  const r = {
    taken: () => given,
    async read(): Promise<{ done: boolean; value?: Uint8Array }> {
      if (i < pieces.length) return (given += pieces[i]!.length), { done: false, value: pieces[i++]! };
      if (stall && !cancelled) await new Promise<void>((res) => (wake = res));
      return { done: true };
    },
    async cancel() {
      cancelled = true;
      wake?.();
    },
  };
  return r as unknown as ReadableStreamDefaultReader<Uint8Array> & { taken(): number };
}

describe("pumpBootPack", () => {
  const split = (b: Uint8Array, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

  test("a whole pack: every entry served, nothing from the store", async () => {
    const c = chunks(5);
    const s = store(c);
    const pack = new PackLayer(s.layer);
    pack.expect(c.refs);
    const t = await pumpBootPack({ url: "u", reader: reader(split(packBytes(c), 1000)) }, pack, c.index);
    expect(t).toMatchObject({ entries: 5, error: null });
    for (const [i, r] of c.refs.entries()) expect(await pack.get(r)).toEqual(c.plain[i]!);
    expect(s.asked).toEqual([]);
  });

  test("a whole pack made for an earlier profile: its chunks served, the profile's others from the store, one warning saying so", async () => {
    const c = chunks(5);
    const s = store(c);
    const lines: string[] = [];
    const pack = new PackLayer(s.layer, (l) => lines.push(l));
    pack.expect(c.refs); // the profile now lists 5 chunks
    const older = { ...c, refs: c.refs.slice(0, 3), packed: c.packed.slice(0, 3) }; // the pack still holds 3
    const t = await pumpBootPack({ url: "u", reader: reader(split(packBytes(older), 700)) }, pack, c.index);
    expect(t).toMatchObject({ entries: 3, error: null });
    for (const [i, r] of c.refs.entries()) expect(await pack.get(r)).toEqual(c.plain[i]!);
    expect(s.asked).toEqual([c.refs[3]!.hex, c.refs[4]!.hex]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/boot pack lacks 2 of the profile's 5 chunks .*inetboot profile pack/);
    pack.drop(); // the prefetch's end: no second warning
    expect(lines).toHaveLength(1);
  });

  test("a pack built for another index is refused before any entry; a cut or stalled stream leaves the rest to the store", async () => {
    const c = chunks(5);
    const other = new Uint8Array(32).fill(7);
    for (const [what, pieces, stall, want] of [
      ["another index", split(packBytes(c, other), 1000), false, /built for index 0707070707070707…, not this one/],
      ["cut short", [packBytes(c).subarray(0, BOOTPACK_HEADER + 2 * (36 + c.packed[0]!.length) + 10)], false, /ended after [12] of 5 entries/],
      ["stalled", [packBytes(c).subarray(0, 100)], true, /no data for 0.05 s/],
    ] as const) {
      const s = store(c);
      const pack = new PackLayer(s.layer);
      pack.expect(c.refs);
      const t = await pumpBootPack({ url: "u", reader: reader([...pieces], stall) }, pack, c.index, { idleMs: 50 });
      expect(t.error, what).toMatch(want);
      for (const [i, r] of c.refs.entries()) expect(await pack.get(r)).toEqual(c.plain[i]!);
      expect(s.asked.length, what).toBe(5 - pack.stats.served);
      expect(s.asked.length, what).toBeGreaterThanOrEqual(3);
    }
  });
});

describe("pumpBootPack: memory held for unread entries", () => {
  const byEntry = (c: ReturnType<typeof chunks>) => {
    // one piece per entry (the header with the first), so "bytes taken" counts whole entries
    const b = packBytes(c);
    const out: Uint8Array[] = [];
    let pos = 0;
    c.packed.forEach((p, i) => {
      const end = pos + (i === 0 ? BOOTPACK_HEADER : 0) + 36 + p.length;
      out.push(b.subarray(pos, end));
      pos = end;
    });
    return out;
  };
  /** 40 entries streamed into a layer that may hold 4 of them */
  const setup = (idleMs?: number) => {
    const c = chunks(40);
    const s = store(c);
    const pack = new PackLayer(s.layer, () => {}, 4 * Math.max(...c.packed.map((p) => p.length)));
    pack.expect(c.refs);
    const rd = reader(byEntry(c));
    const t = pumpBootPack({ url: "u", reader: rd }, pack, c.index, { idleMs });
    return { c, s, pack, rd, t };
  };

  test("with no reader the stream stops once holdBytes are held; a reader in the pack's order lets it go on, every entry from the pack", async () => {
    const { c, s, pack, rd, t } = setup(50);
    await Bun.sleep(100); // longer than idleMs: waiting for our readers is no stall of the server's
    const whole = packBytes(c).length;
    expect(rd.taken()).toBeLessThan(whole / 4); // about 5 of 40 entries, not the pack
    expect(rd.taken()).toBeGreaterThan(pack.holdBytes);
    for (const [i, r] of c.refs.entries()) {
      expect(await pack.get(r)).toEqual(c.plain[i]!);
      if (i % 3 === 0) await Bun.sleep(1); // a slow reader
    }
    expect(await t).toMatchObject({ entries: 40, error: null });
    expect(s.asked).toEqual([]);
    expect(pack.stats).toMatchObject({ served: 40, dropped: 0 });
  });

  test("entries the readers went past are dropped, not waited for; release() lets the rest of the stream go by unkept", async () => {
    const { c, s, pack, rd, t } = setup();
    // entries 0-9 read; 10-19 skipped (as if the caches above had them); 20-29 read
    for (const i of [...Array(10).keys(), ...Array.from({ length: 10 }, (_, k) => 20 + k)]) expect(await pack.get(c.refs[i]!)).toEqual(c.plain[i]!);
    expect(s.asked).toEqual([]); // the skipped ones did not hold the stream up
    expect(pack.stats.dropped).toBeGreaterThan(0);
    // the prefetch is over: the stream runs to its end, keeping nothing
    pack.release();
    expect(await t).toMatchObject({ entries: 40, error: null });
    expect(rd.taken()).toBe(packBytes(c).length);
    expect(await pack.get(c.refs[35]!)).toEqual(c.plain[35]!);
    expect(await pack.get(c.refs[12]!)).toEqual(c.plain[12]!);
    expect(s.asked.sort()).toEqual([c.refs[35]!.hex, c.refs[12]!.hex].sort()); // both from the store: not kept
  });
});
