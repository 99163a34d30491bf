// Boot profile codec, console extraction and the recorder: byte vectors, round trips, rejects.
import { describe, expect, test } from "bun:test";
import { encodeIndex, type StoreIndex } from "../../src/store/format.ts";
import { chunksEvent, extractProfile } from "../../src/store/profile-console.ts";
import { ProfileRecorder, RecordingSource } from "../../src/store/profile-record.ts";
import { decodeProfile, encodeProfile, indexDigest, ProfileError, profileUntil, toHex, type BootProfile, type ProfileEntry } from "../../src/store/profile.ts";
import type { BlockSource } from "../../src/store/source.ts";

const digest = new Uint8Array(32).map((_, i) => i + 1);
const entries: ProfileEntry[] = [{ chunk: 0, ms: 0 }, { chunk: 7, ms: 12 }, { chunk: 3, ms: 4000 }];

describe("profile codec", () => {
  test("layout: magic, version, count, index digest, 8-byte entries, trailing sha256", () => {
    const b = encodeProfile({ indexDigest: digest, entries });
    expect(b.length).toBe(48 + 3 * 8 + 32);
    expect(Buffer.from(b.subarray(0, 16)).toString("hex")).toBe("4942505230464c00".replace("30", "4f") + "0100" + "0000" + "03000000");
    expect(b.subarray(16, 48)).toEqual(digest);
    // entry 1: chunk 7 at 12 ms
    expect(Buffer.from(b.subarray(56, 64)).toString("hex")).toBe("070000000c000000");
    const h = new Bun.CryptoHasher("sha256").update(b.subarray(0, b.length - 32)).digest("hex");
    expect(Buffer.from(b.subarray(b.length - 32)).toString("hex")).toBe(h);
  });

  test("round trip", () => {
    const p = decodeProfile(encodeProfile({ indexDigest: digest, entries }));
    expect(p.entries).toEqual(entries);
    expect(p.indexDigest).toEqual(digest);
  });

  test("rejects bad magic, version, flags, length, checksum, duplicates", () => {
    const good = encodeProfile({ indexDigest: digest, entries });
    const bad = (f: (b: Uint8Array) => void) => {
      const b = good.slice();
      f(b);
      return () => decodeProfile(b);
    };
    expect(bad((b) => (b[0] = 0))).toThrow(/bad magic/);
    expect(bad((b) => (b[8] = 2))).toThrow(/version 2/);
    expect(bad((b) => (b[10] = 1))).toThrow(/flags/);
    expect(bad((b) => (b[12] = 4))).toThrow(/does not match 4 entries/);
    expect(bad((b) => (b[50] ^= 1))).toThrow(/checksum mismatch/);
    expect(() => decodeProfile(good.subarray(0, 40))).toThrow(ProfileError);
    expect(() => encodeProfile({ indexDigest: digest, entries: [{ chunk: 1, ms: 0 }, { chunk: 1, ms: 5 }] })).toThrow(/twice/);
  });

  test("indexDigest is the index file's trailing checksum", () => {
    const idx: StoreIndex = { version: 1, imageSize: 3 << 16, chunkSize: 1 << 16, digests: new Uint8Array(96).fill(9) };
    expect(indexDigest(idx)).toEqual(encodeIndex(idx).slice(-32));
  });
});

describe("profileUntil (--until SECONDS)", () => {
  test("keeps the entry read exactly at the cut, whatever floating point makes of seconds × 1000", () => {
    const p: BootProfile = { indexDigest: new Uint8Array(32), entries: [1000, 2017, 2018, 2019].map((ms, chunk) => ({ chunk, ms })) };
    expect(profileUntil(p, 2.018).entries.map((e) => e.ms)).toEqual([1000, 2017, 2018]);
    expect(profileUntil(p, 1).entries.map((e) => e.ms)).toEqual([1000]);
  });
});

describe("console extraction", () => {
  const hex = toHex(digest);
  const line = (ev: string, f: object) => `@inetboot ${JSON.stringify({ t: 1, ev, ...f })}`;
  const start = line("profile.start", { index: hex, chunkSize: 65536, chunks: 100 });

  test("joins batches in seq order, ignores other output, dedups", () => {
    const log = [
      "[    1.0] some kernel line",
      start,
      line("profile.chunks", chunksEvent([{ chunk: 5, ms: 1 }, { chunk: 6, ms: 2 }], 0)),
      "noise",
      line("profile.chunks", chunksEvent([{ chunk: 1, ms: 9 }, { chunk: 5, ms: 9 }], 1)) + "\r",
      line("profile.recorded", { index: hex, count: 3, final: false }),
    ].join("\n");
    const x = extractProfile(log);
    expect(x.profile.entries).toEqual([{ chunk: 5, ms: 1 }, { chunk: 6, ms: 2 }, { chunk: 1, ms: 9 }]);
    expect(toHex(x.profile.indexDigest)).toBe(hex);
    expect(x.warnings).toEqual([]);
  });

  test("a garbled batch line is reported, the rest kept; the last recording wins", () => {
    const old = [line("profile.start", { index: "ab".repeat(32), chunkSize: 65536, chunks: 10 }), line("profile.chunks", chunksEvent([{ chunk: 9, ms: 0 }], 0))];
    const log = [...old, start, line("profile.chunks", chunksEvent([{ chunk: 2, ms: 0 }], 0)),
      line("profile.chunks", chunksEvent([{ chunk: 3, ms: 0 }], 1)).slice(0, 40) + "[ 2.1] usb 1-1: new device",
      line("profile.chunks", chunksEvent([{ chunk: 4, ms: 5 }, { chunk: 100, ms: 5 }], 2))].join("\n");
    const x = extractProfile(log);
    expect(x.profile.entries.map((e) => e.chunk)).toEqual([2, 4]);
    expect(x.warnings.join(" ")).toMatch(/batches 1 are missing/);
    expect(x.warnings.join(" ")).toMatch(/malformed/); // chunk 100 of 100
    expect(x.warnings.join(" ")).toMatch(/no profile.recorded/);
  });

  test("no recording → ProfileError", () => {
    expect(() => extractProfile("just a boot\n")).toThrow(/inetboot.record/);
  });
});

describe("recorder", () => {
  test("first reads in order, once each, batched, then the full list after a quiet spell", async () => {
    const batches: [number, number[]][] = [];
    const quiet: [number[], boolean][] = [];
    let now = 1000;
    const rec = new ProfileRecorder({
      chunkSize: 100, chunkCount: 50, batchMs: 20, batchMax: 3, idleMs: 60, now: () => now,
      onBatch: (e, seq) => batches.push([seq, e.map((x) => x.chunk)]),
      onQuiet: (all, final) => quiet.push([all.map((x) => x.chunk), final]),
    });
    const inner: BlockSource = { size: 5000, readOnly: true, blockSize: 100, read: async (_o, l) => new Uint8Array(l) };
    const src = new RecordingSource(inner, rec);
    await src.read(250, 10); // chunk 2
    now = 1005;
    await src.read(250, 300); // chunks 2..5: 3, 4, 5 new → batch of 3 is full
    expect(batches).toEqual([[0, [2, 3, 4]]]);
    await src.read(0, 100); // chunk 0... plus 5 pending
    await Bun.sleep(40);
    expect(batches).toEqual([[0, [2, 3, 4]], [1, [5, 0]]]);
    await Bun.sleep(60);
    expect(quiet).toEqual([[[2, 3, 4, 5, 0], false]]);
    expect(rec.entries().map((e) => e.ms)).toEqual([0, 5, 5, 5, 5]);
    await src.read(4900, 100); // chunk 49 (the last)
    await src.close();
    expect(quiet[1]).toEqual([[2, 3, 4, 5, 0, 49], true]);
    await src.read(1000, 10); // after stop: not recorded
    expect(rec.entries().length).toBe(6);
  });
});
