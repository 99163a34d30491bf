import { describe, expect, test } from "bun:test";
import {
  decodeOptionReplyHeader, encodeClientFlags, encodeInfoRequest, encodeMetaRequest, encodeOption,
} from "../../src/nbd/codec.ts";
import { Handshake, type ExportDesc } from "../../src/nbd/handshake.ts";
import { INFO, OPT, REP, TF } from "../../src/nbd/protocol.ts";

const EXP: ExportDesc = { name: "disk", description: "test disk", size: 1 << 20, readOnly: true, blockSize: 65536 };

/** Runs the table over bytes and splits the output into option replies. */
function run(h: Handshake, ...parts: Uint8Array[]) {
  const buf = Buffer.concat(parts);
  const { consumed, send } = h.feed(buf);
  const out = Buffer.concat(send);
  const replies: { option: number; type: number; data: Uint8Array }[] = [];
  let p = 0;
  while (p + 20 <= out.length && out.readBigUInt64BE(p) === 0x3e889045565a9n) {
    const r = decodeOptionReplyHeader(out, p);
    replies.push({ option: r.option, type: r.type, data: out.subarray(p + 20, p + 20 + r.length) });
    p += 20 + r.length;
  }
  return { consumed, out, replies, rest: out.subarray(p) };
}

const flags = (f = 3) => encodeClientFlags(f);

describe("handshake state table", () => {
  test("greeting advertises FIXED_NEWSTYLE | NO_ZEROES", () => {
    expect(Buffer.from(new Handshake(EXP).greeting()).toString("hex")).toBe("4e42444d4147494349484156454f50540003");
  });

  test("waits for whole steps, byte by byte", () => {
    const h = new Handshake(EXP);
    const all = Buffer.concat([flags(), encodeOption(OPT.LIST)]);
    let pos = 0;
    const replies = [];
    for (let i = 1; i <= all.length; i++) {
      const r = run(h, all.subarray(pos, i));
      pos += r.consumed;
      replies.push(...r.replies);
    }
    expect(pos).toBe(all.length);
    expect(replies.map((r) => r.type)).toEqual([REP.SERVER, REP.ACK]);
    expect(h.state).toBe("OPTION_HEADER");
  });

  test("unknown client flags close the connection", () => {
    const h = new Handshake(EXP);
    const r = run(h, flags(4));
    expect(h.state).toBe("CLOSED");
    expect(r.out.length).toBe(0);
  });

  test("bad option magic closes", () => {
    const h = new Handshake(EXP);
    const o = encodeOption(OPT.LIST);
    o[0] ^= 1;
    run(h, flags(), o);
    expect(h.state).toBe("CLOSED");
  });

  test("LIST replies SERVER(name, description) then ACK; LIST with data is ERR_INVALID", () => {
    const h = new Handshake(EXP);
    const r = run(h, flags(), encodeOption(OPT.LIST), encodeOption(OPT.LIST, new Uint8Array(1)));
    expect(r.replies.map((x) => x.type)).toEqual([REP.SERVER, REP.ACK, REP.ERR_INVALID]);
    expect(Buffer.from(r.replies[0].data).toString("hex")).toBe("00000004" + Buffer.from("disktest disk").toString("hex"));
  });

  test("unknown option → ERR_UNSUP, STARTTLS → ERR_POLICY, haggling continues", () => {
    const h = new Handshake(EXP);
    const r = run(h, flags(), encodeOption(99, new Uint8Array(3)), encodeOption(OPT.STARTTLS));
    expect(r.replies.map((x) => [x.option, x.type])).toEqual([[99, REP.ERR_UNSUP], [OPT.STARTTLS, REP.ERR_POLICY]]);
    expect(h.state).toBe("OPTION_HEADER");
  });

  test("INFO: EXPORT, NAME, DESCRIPTION, BLOCK_SIZE then ACK; stays in haggling", () => {
    const h = new Handshake(EXP);
    const r = run(h, flags(), encodeOption(OPT.INFO, encodeInfoRequest("disk", [INFO.NAME, INFO.DESCRIPTION])));
    expect(r.replies.map((x) => x.type)).toEqual([REP.INFO, REP.INFO, REP.INFO, REP.INFO, REP.ACK]);
    const e = Buffer.from(r.replies[0].data);
    expect(e.readUInt16BE(0)).toBe(INFO.EXPORT);
    expect(Number(e.readBigUInt64BE(2))).toBe(1 << 20);
    const tf = e.readUInt16BE(10);
    expect(tf & TF.READ_ONLY).toBeTruthy();
    expect(tf & TF.CAN_MULTI_CONN).toBeTruthy();
    expect(tf & TF.SEND_DF).toBe(0); // no structured replies yet
    const bs = Buffer.from(r.replies[3].data);
    expect([bs.readUInt16BE(0), bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)]).toEqual([INFO.BLOCK_SIZE, 1, 65536, 32 << 20]);
    expect(h.state).toBe("OPTION_HEADER");
  });

  test("GO with unknown name → ERR_UNKNOWN, bad length → ERR_INVALID, then GO \"\" enters transmission", () => {
    const h = new Handshake(EXP);
    const bad = encodeInfoRequest("", [1]).subarray(0, 7);
    const r = run(h, flags(), encodeOption(OPT.GO, encodeInfoRequest("nope", [])), encodeOption(OPT.GO, bad), encodeOption(OPT.GO, encodeInfoRequest("", [])));
    expect(r.replies.map((x) => x.type)).toEqual([REP.ERR_UNKNOWN, REP.ERR_INVALID, REP.INFO, REP.INFO, REP.ACK]);
    expect(h.state).toBe("TRANSMISSION");
    expect(h.negotiated().structured).toBe(false);
  });

  test("bytes after GO are left for the transmission phase", () => {
    const h = new Handshake(EXP);
    const go = encodeOption(OPT.GO, encodeInfoRequest("disk", []));
    const r = run(h, flags(), go, new Uint8Array([1, 2, 3]));
    expect(r.consumed).toBe(4 + go.length);
  });

  test("meta contexts need structured replies; SET selects base:allocation with id 1", () => {
    const h = new Handshake(EXP);
    const set = encodeOption(OPT.SET_META_CONTEXT, encodeMetaRequest("disk", ["base:allocation"]));
    const r = run(h, flags(), set, encodeOption(OPT.STRUCTURED_REPLY), set,
      encodeOption(OPT.LIST_META_CONTEXT, encodeMetaRequest("", [])),
      encodeOption(OPT.LIST_META_CONTEXT, encodeMetaRequest("", ["x-other:"])),
      encodeOption(OPT.SET_META_CONTEXT, encodeMetaRequest("zzz", ["base:allocation"])),
      encodeOption(OPT.STRUCTURED_REPLY, new Uint8Array(2)),
      encodeOption(OPT.GO, encodeInfoRequest("", [])));
    expect(r.replies.map((x) => x.type)).toEqual([
      REP.ERR_INVALID, // SET before STRUCTURED_REPLY
      REP.ACK, // STRUCTURED_REPLY
      REP.META_CONTEXT, REP.ACK, // SET
      REP.META_CONTEXT, REP.ACK, // LIST all
      REP.ACK, // LIST other namespace: nothing
      REP.ERR_UNKNOWN, // SET on unknown export
      REP.ERR_INVALID, // STRUCTURED_REPLY with data
      REP.INFO, REP.INFO, REP.ACK, // GO
    ]);
    expect(Buffer.from(r.replies[2].data).toString()).toBe("\0\0\0\x01base:allocation");
    const n = h.negotiated();
    expect(n.structured).toBe(true);
    // the failed SET (unknown export) replaced the selection too, with none: the spec's rule
    expect(n.baseAllocation).toBe(false);
    expect(n.flags & TF.SEND_DF).toBeTruthy();
  });

  test("a SET that fails (unknown export, malformed) leaves no context selected; a later good one selects again", () => {
    const good = encodeOption(OPT.SET_META_CONTEXT, encodeMetaRequest("", ["base:allocation"]));
    const unknown = encodeOption(OPT.SET_META_CONTEXT, encodeMetaRequest("zzz", ["base:allocation"]));
    const malformed = encodeOption(OPT.SET_META_CONTEXT, new Uint8Array([0, 0, 0, 9]));
    const go = encodeOption(OPT.GO, encodeInfoRequest("", []));
    for (const [steps, selected] of [[[good, unknown], false], [[good, malformed], false], [[good, unknown, good], true]] as const) {
      const h = new Handshake(EXP);
      run(h, flags(), encodeOption(OPT.STRUCTURED_REPLY), ...steps, go);
      expect(h.negotiated().baseAllocation).toBe(selected);
    }
  });

  test("EXPORT_NAME: known name sends size+flags (no zeroes when asked), unknown closes silently", () => {
    const h1 = new Handshake(EXP);
    const r1 = run(h1, flags(3), encodeOption(OPT.EXPORT_NAME, new TextEncoder().encode("disk")));
    expect(h1.state).toBe("TRANSMISSION");
    expect(r1.rest.length).toBe(10);
    expect(Number(Buffer.from(r1.rest).readBigUInt64BE(0))).toBe(1 << 20);
    const h2 = new Handshake(EXP);
    expect(run(h2, flags(1), encodeOption(OPT.EXPORT_NAME)).rest.length).toBe(134);
    const h3 = new Handshake(EXP);
    const r3 = run(h3, flags(), encodeOption(OPT.EXPORT_NAME, new TextEncoder().encode("other")));
    expect(h3.state).toBe("CLOSED");
    expect(r3.out.length).toBe(0);
  });

  test("ABORT is acknowledged, then closed", () => {
    const h = new Handshake(EXP);
    const r = run(h, flags(), encodeOption(OPT.ABORT));
    expect(r.replies.map((x) => x.type)).toEqual([REP.ACK]);
    expect(h.state).toBe("CLOSED");
  });

  test("oversized option data is discarded in pieces and refused with ERR_TOO_BIG", () => {
    const h = new Handshake(EXP);
    const big = encodeOption(OPT.LIST, new Uint8Array(200_000));
    let r = run(h, flags(), big.subarray(0, 100_000));
    expect(h.state).toBe("OPTION_SKIP");
    let pos = r.consumed;
    r = run(h, big.subarray(pos - 4));
    expect(r.replies.map((x) => x.type)).toEqual([REP.ERR_TOO_BIG]);
    expect(h.state).toBe("OPTION_HEADER");
  });

  test("writable export advertises TRIM, WRITE_ZEROES, FUA and not READ_ONLY", () => {
    const h = new Handshake({ ...EXP, readOnly: false });
    const r = run(h, flags(), encodeOption(OPT.GO, encodeInfoRequest("", [])));
    const tf = Buffer.from(r.replies[0].data).readUInt16BE(10);
    expect(tf & TF.READ_ONLY).toBe(0);
    expect(tf & (TF.SEND_TRIM | TF.SEND_WRITE_ZEROES | TF.SEND_FUA | TF.SEND_FLUSH | TF.SEND_CACHE | TF.HAS_FLAGS)).toBe(
      TF.SEND_TRIM | TF.SEND_WRITE_ZEROES | TF.SEND_FUA | TF.SEND_FLUSH | TF.SEND_CACHE | TF.HAS_FLAGS,
    );
  });
});
