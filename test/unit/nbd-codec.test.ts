import { describe, expect, test } from "bun:test";
import {
  decodeBlockStatusPayload, decodeChunkHeader, decodeGreeting, decodeInfoRequest, decodeMetaRequest,
  decodeOptionHeader, decodeOptionReplyHeader, decodeRequest, decodeSimpleReply, encodeChunkBlockStatus,
  encodeChunkError, encodeChunkNone, encodeChunkOffsetDataHeader, encodeChunkOffsetHole, encodeExportNameReply,
  encodeGreeting, encodeInfoBlockSize, encodeInfoExport, encodeInfoRequest, encodeMetaRequest, encodeOption,
  encodeOptionReply, encodeRepMetaContext, encodeRepServer, encodeRequest, encodeSimpleReply,
} from "../../src/nbd/codec.ts";
import { CMD, IHAVEOPT, NBDMAGIC, OPT, REP, REPLY_TYPE } from "../../src/nbd/protocol.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));

describe("nbd codec byte vectors", () => {
  test("greeting is NBDMAGIC IHAVEOPT flags", () => {
    expect(hex(encodeGreeting(3))).toBe("4e42444d41474943" + "49484156454f5054" + "0003");
  });
  test("option header", () => {
    expect(hex(encodeOption(OPT.GO, unhex("aabb")))).toBe("49484156454f5054" + "00000007" + "00000002" + "aabb");
  });
  test("option reply", () => {
    expect(hex(encodeOptionReply(OPT.LIST, REP.ERR_UNSUP, unhex("01")))).toBe(
      "0003e889045565a9" + "00000003" + "80000001" + "00000001" + "01",
    );
  });
  test("info payloads", () => {
    expect(hex(encodeInfoExport(0x123456789a, 0x0503))).toBe("0000" + "000000123456789a" + "0503");
    expect(hex(encodeInfoBlockSize(1, 4096, 32 << 20))).toBe("0003" + "00000001" + "00001000" + "02000000");
    expect(hex(encodeRepServer("ab", "d"))).toBe("00000002" + "6162" + "64");
    expect(hex(encodeRepMetaContext(1, "base:allocation"))).toBe("00000001" + hex(new TextEncoder().encode("base:allocation")));
  });
  test("export name reply with and without zeroes", () => {
    expect(hex(encodeExportNameReply(512, 1, true))).toBe("0000000000000200" + "0001");
    const full = encodeExportNameReply(512, 1, false);
    expect(full.length).toBe(134);
    expect(full.subarray(10).every((b) => b === 0)).toBe(true);
  });
  test("request", () => {
    const r = encodeRequest({ flags: 1, type: CMD.WRITE, handle: 0x0102030405060708n, offset: 0x1000n, length: 2 }, unhex("beef"));
    expect(hex(r)).toBe("25609513" + "0001" + "0001" + "0102030405060708" + "0000000000001000" + "00000002" + "beef");
  });
  test("simple reply", () => {
    expect(hex(encodeSimpleReply(22, 0xffn))).toBe("67446698" + "00000016" + "00000000000000ff");
  });
  test("structured chunks", () => {
    expect(hex(encodeChunkNone(7n))).toBe("668e33ef" + "0001" + "0000" + "0000000000000007" + "00000000");
    expect(hex(encodeChunkOffsetDataHeader(1, 7n, 4096, 10))).toBe(
      "668e33ef" + "0001" + "0001" + "0000000000000007" + "00000012" + "0000000000001000",
    );
    expect(hex(encodeChunkOffsetHole(0, 7n, 512, 1024))).toBe(
      "668e33ef" + "0000" + "0002" + "0000000000000007" + "0000000c" + "0000000000000200" + "00000400",
    );
    expect(hex(encodeChunkError(7n, 5, "x"))).toBe(
      "668e33ef" + "0001" + "8001" + "0000000000000007" + "00000007" + "00000005" + "0001" + "78",
    );
    expect(hex(encodeChunkBlockStatus(1, 7n, 1, [{ length: 4096, flags: 3 }]))).toBe(
      "668e33ef" + "0001" + "0005" + "0000000000000007" + "0000000c" + "00000001" + "00001000" + "00000003",
    );
  });
});

describe("nbd codec round trips at an offset", () => {
  const pad = (b: Uint8Array, n = 5) => {
    const o = new Uint8Array(n + b.length + 3).fill(0xee);
    o.set(b, n);
    return o;
  };
  test("greeting", () => {
    const g = decodeGreeting(pad(encodeGreeting(1)), 5);
    expect(g).toEqual({ nbdMagic: NBDMAGIC, optMagic: IHAVEOPT, flags: 1 });
  });
  test("option header and reply header", () => {
    expect(decodeOptionHeader(pad(encodeOption(0xdeadbeef, new Uint8Array(9))), 5)).toEqual({ magic: IHAVEOPT, option: 0xdeadbeef, length: 9 });
    const r = decodeOptionReplyHeader(pad(encodeOptionReply(9, REP.META_CONTEXT, new Uint8Array(4))), 5);
    expect(r).toEqual({ magic: 0x3e889045565a9n, option: 9, type: REP.META_CONTEXT, length: 4 });
  });
  test("request with extreme fields", () => {
    const req = { flags: 0xffff, type: 0xffff, handle: 0xffffffffffffffffn, offset: 0xfffffffffffffff0n, length: 0xffffffff };
    expect(decodeRequest(pad(encodeRequest(req), 11), 11)).toEqual({ magic: 0x25609513, ...req });
  });
  test("simple reply and chunk header", () => {
    expect(decodeSimpleReply(pad(encodeSimpleReply(5, 42n)), 5)).toEqual({ magic: 0x67446698, error: 5, handle: 42n });
    expect(decodeChunkHeader(pad(encodeChunkNone(9n)), 5)).toEqual({ magic: 0x668e33ef, flags: 1, type: REPLY_TYPE.NONE, handle: 9n, length: 0 });
  });
  test("block status payload", () => {
    const c = encodeChunkBlockStatus(1, 1n, 1, [{ length: 1, flags: 0 }, { length: 2, flags: 3 }]);
    expect(decodeBlockStatusPayload(c.subarray(20))).toEqual({ contextId: 1, descs: [{ length: 1, flags: 0 }, { length: 2, flags: 3 }] });
  });
  test("info and meta requests", () => {
    expect(decodeInfoRequest(encodeInfoRequest("näme", [3, 1]))).toEqual({ ok: true, value: { name: "näme", infos: [3, 1] } });
    expect(decodeMetaRequest(encodeMetaRequest("", ["base:allocation", "x-y:z"]))).toEqual({
      ok: true,
      value: { name: "", queries: ["base:allocation", "x-y:z"] },
    });
  });
  test("malformed option payloads are rejected, not thrown", () => {
    const good = encodeInfoRequest("abc", [1]);
    for (let cut = 0; cut < good.length; cut++) expect(decodeInfoRequest(good.subarray(0, cut)).ok).toBe(false);
    expect(decodeInfoRequest(new Uint8Array([...good, 0])).ok).toBe(false);
    const meta = encodeMetaRequest("e", ["base:allocation"]);
    for (let cut = 0; cut < meta.length; cut++) expect(decodeMetaRequest(meta.subarray(0, cut)).ok).toBe(false);
    expect(decodeMetaRequest(unhex("ffffffff00000000")).ok).toBe(false);
    expect(decodeInfoRequest(unhex("00000001" + "00" + "0000")).ok).toBe(false); // NUL in name
  });
});
