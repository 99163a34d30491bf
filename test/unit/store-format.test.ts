import { describe, expect, test } from "bun:test";
import {
  chunkCount,
  chunkLength,
  decodeIndex,
  digestAt,
  encodeIndex,
  IndexError,
  isZeroDigest,
  parseSize,
  summarize,
} from "../../src/store/format.ts";
import { chunkPath, indexFileName, isAllZero, sha256Hex } from "../../src/store/chunk-name.ts";
import { ChunkError, unpackChunk } from "../../src/store/chunk.ts";

function digests(...fill: number[]): Uint8Array {
  const d = new Uint8Array(fill.length * 32);
  fill.forEach((v, i) => d.fill(v, i * 32, i * 32 + 32));
  return d;
}

describe("index codec", () => {
  const idx = { version: 1, imageSize: 2 * 65536 + 5, chunkSize: 65536, digests: digests(0xaa, 0, 0xbb) };

  test("byte vector of the header", () => {
    const b = encodeIndex(idx);
    expect(b.length).toBe(32 + 3 * 32 + 32);
    expect(Buffer.from(b.subarray(0, 32)).toString("hex")).toBe(
      "494253544f524500" + // "IBSTORE\0"
        "0100" + // version 1
        "10" + // 2^16 chunk size
        "01" + // sha-256
        "00000000" + // flags
        "0500020000000000" + // image size 131077 LE
        "03000000" + // 3 chunks
        "00000000",
    );
    expect(b.subarray(32, 64).every((x) => x === 0xaa)).toBe(true);
    expect(b.subarray(64, 96).every((x) => x === 0)).toBe(true);
    const h = new Bun.CryptoHasher("sha256").update(b.subarray(0, b.length - 32)).digest("hex");
    expect(Buffer.from(b.subarray(b.length - 32)).toString("hex")).toBe(h);
  });

  test("round trip", () => {
    const back = decodeIndex(encodeIndex(idx));
    expect(back.imageSize).toBe(idx.imageSize);
    expect(back.chunkSize).toBe(65536);
    expect(back.version).toBe(1);
    expect(Buffer.from(back.digests).equals(Buffer.from(idx.digests))).toBe(true);
    expect(isZeroDigest(digestAt(back, 1))).toBe(true);
    expect(isZeroDigest(digestAt(back, 2))).toBe(false);
    expect(chunkLength(back, 2)).toBe(5);
    expect(summarize(back)).toEqual({ chunks: 3, zero: 1, unique: 2 });
  });

  test("large image sizes survive (u64)", () => {
    const size = 5 * 1024 ** 4 + 3; // 5 TiB + 3
    const n = chunkCount(size, 4 * 1024 * 1024);
    const back = decodeIndex(encodeIndex({ version: 1, imageSize: size, chunkSize: 4 * 1024 * 1024, digests: new Uint8Array(n * 32) }));
    expect(back.imageSize).toBe(size);
  });

  test("4 GiB at 256 KiB: index under 1% of the image", () => {
    const n = chunkCount(4 * 1024 ** 3, 256 * 1024);
    const b = encodeIndex({ version: 1, imageSize: 4 * 1024 ** 3, chunkSize: 256 * 1024, digests: new Uint8Array(n * 32) });
    expect(b.length / (4 * 1024 ** 3)).toBeLessThan(0.0002);
  });

  test("corruption is detected", () => {
    const good = encodeIndex(idx);
    for (const pos of [0, 9, 10, 20, 40, good.length - 1]) {
      const bad = good.slice();
      bad[pos]! ^= 1;
      expect(() => decodeIndex(bad)).toThrow(IndexError);
    }
    expect(() => decodeIndex(good.subarray(0, good.length - 1))).toThrow(/checksum|length/);
    expect(() => decodeIndex(new Uint8Array(10))).toThrow(/too short/);
    // an HTML page sent with 200 (a captive portal's login, a CDN's error page), long or short
    expect(() => decodeIndex(new TextEncoder().encode("<html>\n  <body>Please log in to the Wi-Fi</body>\n</html>\n".padEnd(80)))).toThrow(
      'not a store index: the server sent text ("<html> <body>Please log in to the Wi-Fi</body>…"; a login or error page?)',
    );
    expect(() => decodeIndex(new TextEncoder().encode("Forbidden"))).toThrow('the server sent text ("Forbidden"; a login or error page?)');
    const binary = new Uint8Array(80).fill(0xab);
    expect(() => decodeIndex(binary)).toThrow(/bad magic/);
  });

  test("digest count must match the image size", () => {
    expect(() => encodeIndex({ ...idx, digests: digests(1, 2) })).toThrow(IndexError);
  });

  test("chunk size must be a power of two 64K..4M", () => {
    for (const cs of [32768, 100000, 8 * 1024 * 1024])
      expect(() => encodeIndex({ version: 1, imageSize: 10, chunkSize: cs, digests: new Uint8Array(32) })).toThrow(/power of two/);
  });

  test("parseSize", () => {
    expect(parseSize("256K")).toBe(262144);
    expect(parseSize("4M")).toBe(4194304);
    expect(parseSize("65536")).toBe(65536);
    expect(parseSize("1MiB")).toBe(1048576);
    expect(() => parseSize("lots")).toThrow();
  });
});

describe("chunk naming", () => {
  test("path derives from the SHA-256 of plain bytes", () => {
    const hex = sha256Hex(new TextEncoder().encode("abc"));
    expect(hex).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(chunkPath(hex)).toBe(`chunks/ba/${hex}.zst`);
    expect(() => chunkPath("../etc/passwd")).toThrow();
  });
  test("index names", () => {
    expect(indexFileName()).toBe("index");
    expect(indexFileName("debian-12")).toBe("debian-12.index");
    expect(() => indexFileName("../x")).toThrow();
    expect(() => indexFileName("a/b")).toThrow();
  });
  test("zero detection at any alignment", () => {
    const b = new Uint8Array(1003);
    expect(isAllZero(b)).toBe(true);
    expect(isAllZero(b.subarray(1))).toBe(true);
    b[1002] = 1;
    expect(isAllZero(b)).toBe(false);
    expect(isAllZero(b.subarray(3))).toBe(false);
    b[1002] = 0;
    b[4] = 0x80;
    expect(isAllZero(b)).toBe(false);
  });
  test("unpackChunk verifies length and digest", () => {
    const plain = new TextEncoder().encode("hello chunk");
    const ref = { hex: sha256Hex(plain), size: plain.length };
    const packed = Bun.zstdCompressSync(plain);
    expect(Buffer.from(unpackChunk(ref, packed)).toString()).toBe("hello chunk");
    expect(() => unpackChunk({ ...ref, size: 3 }, packed)).toThrow(ChunkError);
    expect(() => unpackChunk({ ...ref, hex: "0".repeat(64) }, packed)).toThrow(/digest/);
    expect(() => unpackChunk(ref, new Uint8Array([1, 2, 3]))).toThrow(/zstd/);
  });
});
