// Fuzzes the server with ≥100,000 random and mutated frames over a real unix socket, in both
// phases. A small framing model on the client side knows which headers the server can have
// parsed; each of those must get exactly one well-formed reply (or the connection must close
// cleanly where the protocol says so). A hang fails through read timeouts.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { RawConn, negotiate, readOptionReply } from "../../src/nbd/client.ts";
import {
  decodeChunkHeader, decodeSimpleReply, encodeClientFlags, encodeInfoRequest, encodeMetaRequest, encodeOption,
  encodeRequest,
} from "../../src/nbd/codec.ts";
import {
  CMD, MAX_REQUEST, NBD_ERR, OPT, REP, REPLY_FLAG_DONE, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC,
} from "../../src/nbd/protocol.ts";
import { startNbdServer, type NbdServer } from "../../src/nbd/server.ts";
import { BlockError, type BlockSource } from "../../src/store/source.ts";
import { scratch } from "../lib/tmp.ts";

const SIZE = 256 * 1024;
const SEED = Number(process.env.NBD_FUZZ_SEED ?? Date.now() % 1_000_000);
let s = SEED;
const rnd = (n: number) => {
  // xorshift32: reproducible with NBD_FUZZ_SEED
  s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
  return s % n;
};
const pick = <T,>(a: T[]) => a[rnd(a.length)];
const bytes = (n: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rnd(256);
  return b;
};
const u64 = () => (BigInt(rnd(2 ** 31)) << 33n) ^ (BigInt(rnd(2 ** 31)) << 2n) ^ BigInt(rnd(4));

const KNOWN_ERRNOS = new Set(Object.values(NBD_ERR));

function source(): BlockSource {
  const mem = new Uint8Array(SIZE);
  return {
    size: SIZE, readOnly: false, blockSize: 4096,
    async read(o, l) {
      if (o >= 200_000 && o < 200_512) throw new BlockError("EIO", "injected");
      return mem.slice(o, o + l);
    },
    async write(o, d) {
      if (o === 100_000) throw new Error("injected write failure");
      mem.set(d, o);
    },
    async trim() {},
    async flush() {},
  };
}

let dir: string, server: NbdServer, listen: string;
beforeAll(async () => {
  dir = scratch("nbd-fuzz-");
  listen = `unix:${join(dir, "s")}`;
  server = await startNbdServer({ source: source(), listen, exportName: "fz" });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ transmission phase

function randomRequest(): Uint8Array {
  const type = rnd(20) === 0 ? rnd(65536) : pick([0, 0, 0, 1, 1, 3, 4, 5, 6, 7, 7, 2 * Number(rnd(40) === 0)]);
  const flags = rnd(4) === 0 ? rnd(65536) : pick([0, 0, 0, 1, 2, 4, 8, 16]);
  const offset = pick([0n, BigInt(rnd(SIZE)), BigInt(SIZE - 1), BigInt(SIZE), 200_100n, 100_000n, u64(), 0xffffffffffffffffn]);
  const length = pick([0, 1, rnd(512), rnd(16384), SIZE, MAX_REQUEST + 1, 0xffffffff, rnd(2 ** 32)]);
  const withPayload = type === CMD.WRITE && length <= 16384;
  return encodeRequest({ type: type === 2 && rnd(2) ? CMD.READ : type, flags, handle: u64(), offset, length }, withPayload ? bytes(length) : undefined);
}

function mutate(f: Uint8Array): Uint8Array {
  const m = f.slice();
  const k = rnd(4);
  if (k === 0) m[rnd(Math.min(m.length, 28))] ^= 1 << rnd(8); // header bit flip (magic too)
  else if (k === 1) m[rnd(m.length)] = rnd(256);
  else if (k === 2) return m.subarray(0, rnd(m.length)); // truncated
  else return new Uint8Array([...m, ...bytes(rnd(40))]); // trailing garbage
  return m;
}

interface Parsed {
  handle: bigint;
  type: number;
  length: number;
}

/** What the server's framing sees in this byte stream. */
function model(stream: Uint8Array): { reqs: Parsed[]; end: "closed" | "open" | "partial" } {
  const v = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const reqs: Parsed[] = [];
  let p = 0;
  while (p + 28 <= stream.length) {
    if (v.getUint32(p) !== REQUEST_MAGIC) return { reqs, end: "closed" };
    const type = v.getUint16(p + 6), length = v.getUint32(p + 24), handle = v.getBigUint64(p + 8);
    if (type === CMD.DISC) return { reqs, end: "closed" };
    if (type === CMD.WRITE) {
      if (length > MAX_REQUEST) {
        reqs.push({ handle, type, length }); // answered at once, payload skipped
        if (p + 28 + length > stream.length) return { reqs, end: "partial" };
        p += 28 + length;
        continue;
      }
      if (p + 28 + length > stream.length) return { reqs, end: "partial" };
      p += length;
    }
    reqs.push({ handle, type, length });
    p += 28;
  }
  return { reqs, end: p === stream.length ? "open" : "partial" };
}

/** Reads one complete reply and checks its form; returns its handle. */
async function readReply(c: RawConn, pending: Map<bigint, Parsed>, structured: boolean): Promise<void> {
  const head = await c.read(4, 5000);
  const magic = new DataView(head.buffer).getUint32(0);
  if (magic === SIMPLE_REPLY_MAGIC) {
    const r = decodeSimpleReply(new Uint8Array([...head, ...(await c.read(12, 5000))]));
    const q = pending.get(r.handle);
    if (!q) throw new Error(`reply for unknown handle ${r.handle}`);
    pending.delete(r.handle);
    if (r.error !== 0 && !KNOWN_ERRNOS.has(r.error as never)) throw new Error(`unknown errno ${r.error}`);
    if (r.error === 0 && q.type === CMD.READ) {
      if (structured) throw new Error("simple reply to READ after structured replies were negotiated");
      await c.read(q.length, 5000);
    }
    return;
  }
  if (magic !== STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
  if (!structured) throw new Error("structured reply without negotiation");
  for (let h = decodeChunkHeader(new Uint8Array([...head, ...(await c.read(16, 5000))])); ; ) {
    const body = h.length ? await c.read(h.length, 5000) : new Uint8Array(0);
    if (!pending.has(h.handle)) throw new Error(`chunk for unknown handle ${h.handle}`);
    if (h.type & 0x8000) {
      const e = new DataView(body.buffer).getUint32(0);
      if (!KNOWN_ERRNOS.has(e as never)) throw new Error(`unknown errno ${e}`);
    }
    if (h.flags & REPLY_FLAG_DONE) {
      pending.delete(h.handle);
      return;
    }
    h = decodeChunkHeader(await c.read(20, 5000));
  }
}

async function transmissionRound(frames: number): Promise<number> {
  const c = await RawConn.connect(listen);
  const structured = rnd(3) !== 0;
  await negotiate(c, { name: pick(["", "fz"]), structured, meta: structured && rnd(2) === 0 });
  const parts: Uint8Array[] = [];
  for (let i = 0; i < frames; i++) parts.push(rnd(5) === 0 ? mutate(randomRequest()) : randomRequest());
  const stream = new Uint8Array(Buffer.concat(parts));
  const m = model(stream);
  const probe = encodeRequest({ type: CMD.READ, flags: 0, handle: 0xfeedn, offset: 0n, length: 16 });
  c.write(stream);
  const pending = new Map<bigint, Parsed>();
  for (const r of m.reqs) pending.set(r.handle, r);
  if (m.end === "open") {
    c.write(probe);
    pending.set(0xfeedn, { handle: 0xfeedn, type: CMD.READ, length: 16 });
  }
  const expected = pending.size;
  for (let i = 0; i < expected; i++) await readReply(c, pending, structured);
  expect(pending.size).toBe(0);
  if (m.end === "closed") expect(await c.closedWithin(5000)).toBe(true);
  else if (m.end === "open") {
    c.write(encodeRequest({ type: CMD.DISC, flags: 0, handle: 1n, offset: 0n, length: 0 }));
    expect(await c.closedWithin(5000)).toBe(true);
  } else c.end();
  return frames;
}

// ------------------------------------------------------------------ handshake phase

function randomOption(): { frame: Uint8Array; option: number } {
  const option = rnd(8) === 0 ? rnd(2 ** 32) : pick([1, 2, 3, 5, 6, 6, 7, 7, 8, 8, 9, 10, 10, 4, 11]);
  let data: Uint8Array;
  switch (rnd(5)) {
    case 0: data = bytes(rnd(64)); break;
    case 1: data = encodeInfoRequest(pick(["", "fz", "zz", "f"]), Array.from({ length: rnd(4) }, () => rnd(6))); break;
    case 2: data = encodeMetaRequest(pick(["", "fz", "x"]), Array.from({ length: rnd(3) }, () => pick(["base:allocation", "base:", "x-a:b", ""]))); break;
    case 3: data = new Uint8Array(0); break;
    default: data = pick([new TextEncoder().encode("fz"), new Uint8Array(rnd(70_000) + 65_000)]);
  }
  if (rnd(4) === 0 && data.length) data = data.slice(); // content mutation below
  if (rnd(4) === 0 && data.length) data[rnd(data.length)] = rnd(256);
  if (rnd(6) === 0) data = data.subarray(0, rnd(data.length + 1));
  const frame = encodeOption(option, data);
  if (rnd(60) === 0) frame[rnd(8)] ^= 1 << rnd(8); // bad IHAVEOPT magic
  return { frame, option };
}

async function handshakeRound(options: number): Promise<number> {
  const c = await RawConn.connect(listen);
  await c.read(18, 5000);
  const cf = rnd(20) === 0 ? rnd(2 ** 32) : pick([0, 1, 3]);
  c.write(encodeClientFlags(cf));
  if (cf & ~3) {
    expect(await c.closedWithin(5000)).toBe(true);
    return 1;
  }
  let sent = 1;
  for (let i = 0; i < options; i++) {
    const { frame, option } = randomOption();
    c.write(frame);
    sent++;
    const v = new DataView(frame.buffer);
    const o = v.getUint32(8);
    if (v.getBigUint64(0) !== 0x49484156454f5054n) {
      expect(await c.closedWithin(5000)).toBe(true);
      return sent;
    }
    if (o === OPT.EXPORT_NAME) {
      // Either the export reply (10 or 134 bytes) or a hang-up for an unknown name.
      const name = new TextDecoder().decode(frame.subarray(16));
      if (name === "" || name === "fz") {
        await c.read(cf & 2 ? 10 : 134, 5000);
        c.write(encodeRequest({ type: CMD.DISC, flags: 0, handle: 1n, offset: 0n, length: 0 }));
      }
      expect(await c.closedWithin(5000)).toBe(true);
      return sent;
    }
    for (;;) {
      const r = await readOptionReply(c);
      expect(r.option).toBe(option >>> 0);
      if (r.type === REP.ACK || r.type & 0x80000000) {
        if (o === OPT.ABORT && r.type === REP.ACK) {
          expect(await c.closedWithin(5000)).toBe(true);
          return sent;
        }
        if (o === OPT.GO && r.type === REP.ACK) {
          c.write(encodeRequest({ type: CMD.DISC, flags: 0, handle: 1n, offset: 0n, length: 0 }));
          expect(await c.closedWithin(5000)).toBe(true);
          return sent;
        }
        break;
      }
      expect([REP.SERVER, REP.INFO, REP.META_CONTEXT] as number[]).toContain(r.type);
    }
  }
  c.write(encodeOption(OPT.ABORT));
  const r = await readOptionReply(c);
  expect(r.type).toBe(REP.ACK);
  expect(await c.closedWithin(5000)).toBe(true);
  return sent;
}

test(`nbd fuzz: ≥100,000 frames, no crash, no hang (seed ${SEED})`, async () => {
  const started = Date.now();
  let frames = 0;
  let hs = 0;
  while (hs < 30_000) hs += await handshakeRound(1 + rnd(12));
  let tx = 0;
  while (tx < 75_000) tx += await transmissionRound(100 + rnd(700));
  frames = hs + tx;
  // The server still serves a well-behaved client afterwards.
  const c = await RawConn.connect(listen);
  expect((await negotiate(c, { name: "fz" })).size).toBe(SIZE);
  c.end();
  expect(frames).toBeGreaterThanOrEqual(100_000);
  expect(Date.now() - started).toBeLessThan(60_000);
}, 90_000);
