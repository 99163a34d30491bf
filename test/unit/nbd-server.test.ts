import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { RawConn, negotiate } from "../../src/nbd/client.ts";
import { decodeChunkHeader, decodeOptionReplyHeader, decodeSimpleReply, encodeClientFlags, encodeInfoRequest, encodeOption, encodeRequest } from "../../src/nbd/codec.ts";
import { CMD, CMD_FLAG, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, NBD_ERR, OPT, REP, REPLY_TYPE } from "../../src/nbd/protocol.ts";
import { startNbdServer, type NbdServer } from "../../src/nbd/server.ts";
import { BlockError, type BlockSource } from "../../src/store/source.ts";
import { scratch } from "../lib/tmp.ts";

const SIZE = 1 << 20;
const data = new Uint8Array(SIZE).map((_, i) => (i * 7 + (i >> 8)) & 0xff);

/** In-memory source: reads at offset 0 are slow (to force out-of-order replies), offset 4096 fails. */
function memSource(readOnly: boolean): BlockSource & { mem: Uint8Array } {
  const mem = data.slice();
  return {
    mem, size: SIZE, readOnly, blockSize: 4096,
    async read(off, len) {
      if (off === 0) await Bun.sleep(80);
      if (off === 4096) throw new BlockError("EIO", "injected failure");
      return mem.slice(off, off + len);
    },
    async write(off, d) {
      mem.set(d, off);
    },
  };
}

let dir: string;
let ro: NbdServer, rw: NbdServer, holes: NbdServer;
let rwSource: ReturnType<typeof memSource>;
beforeAll(async () => {
  dir = scratch("nbd-srv-");
  ro = await startNbdServer({ source: memSource(true), listen: `unix:${dir}/ro.sock` });
  rwSource = memSource(false);
  rw = await startNbdServer({ source: rwSource, listen: `unix:${dir}/rw.sock`, exportName: "rw" });
  // The second half is a hole.
  const h = memSource(true);
  h.mem.fill(0, SIZE / 2);
  holes = await startNbdServer({ source: { ...h, isHole: (off, len) => off >= SIZE / 2 && off + len <= SIZE }, listen: `unix:${dir}/holes.sock` });
});
afterAll(async () => {
  await ro.close();
  await rw.close();
  await holes.close();
  rmSync(dir, { recursive: true, force: true });
});

const req = (type: number, handle: bigint, offset: number, length: number, flags = 0, payload?: Uint8Array) =>
  encodeRequest({ type, handle, offset: BigInt(offset), length, flags }, payload);

async function simple(c: RawConn) {
  return decodeSimpleReply(await c.read(16));
}

describe("nbd server (simple replies)", () => {
  test("address names the socket", () => {
    expect(ro.address).toBe(`nbd+unix:///?socket=${dir}/ro.sock`);
    expect(rw.address).toBe(`nbd+unix:///rw?socket=${dir}/rw.sock`);
  });

  test("replies come back by handle, out of order, and errors are mapped", async () => {
    const c = await RawConn.connect(`unix:${dir}/ro.sock`);
    const n = await negotiate(c);
    expect(n.size).toBe(SIZE);
    c.write(req(CMD.READ, 1n, 0, 16)); // slow
    c.write(req(CMD.READ, 2n, 100, 8)); // fast
    let r = await simple(c);
    expect([r.handle, r.error]).toEqual([2n, 0]);
    expect(await c.read(8)).toEqual(data.subarray(100, 108));
    r = await simple(c);
    expect([r.handle, r.error]).toEqual([1n, 0]);
    expect(await c.read(16)).toEqual(data.subarray(0, 16));

    const cases: [Uint8Array, number][] = [
      [req(CMD.WRITE, 3n, 0, 4, 0, new Uint8Array(4)), NBD_ERR.EPERM],
      [req(CMD.READ, 4n, SIZE - 4, 8), NBD_ERR.EINVAL],
      [req(CMD.READ, 5n, 0, 64 << 20), NBD_ERR.EINVAL], // over the maximum block size
      [req(CMD.READ, 6n, 4096, 10), NBD_ERR.EIO],
      [req(CMD.READ, 7n, 10, 0), NBD_ERR.EINVAL],
      [req(99, 8n, 0, 1), NBD_ERR.EINVAL],
      [req(CMD.READ, 9n, 0, 1, 0x80), NBD_ERR.EINVAL],
      [req(CMD.BLOCK_STATUS, 10n, 0, 512), NBD_ERR.EINVAL],
      [req(CMD.FLUSH, 11n, 0, 0), 0],
      [req(CMD.CACHE, 12n, 0, 4096), 0],
    ];
    for (const [frame, err] of cases) {
      c.write(frame);
      const s = await simple(c);
      expect(s.error).toBe(err);
    }
    c.write(req(CMD.DISC, 13n, 0, 0));
    expect(await c.closedWithin(2000)).toBe(true);
  });

  test("a bad request magic disconnects after pending replies", async () => {
    const c = await RawConn.connect(`unix:${dir}/ro.sock`);
    await negotiate(c);
    c.write(req(CMD.READ, 1n, 0, 4)); // slow, still answered
    const bad = req(CMD.READ, 2n, 0, 4);
    bad[0] = 0;
    c.write(bad);
    const r = await simple(c);
    expect(r.handle).toBe(1n);
    await c.read(4);
    expect(await c.closedWithin(2000)).toBe(true);
  });
});

describe("nbd server (writable, structured replies)", () => {
  test("write, read back, structured error and oversized write", async () => {
    const c = await RawConn.connect(`unix:${dir}/rw.sock`);
    await negotiate(c, { name: "rw", structured: true, meta: true });
    const payload = new Uint8Array(3000).fill(0x5a);
    c.write(req(CMD.WRITE, 1n, 10_000, payload.length, 1 /* FUA */, payload));
    let h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type, h.flags]).toEqual([1n, REPLY_TYPE.NONE, 1]);
    expect(rwSource.mem.subarray(10_000, 13_000).every((b) => b === 0x5a)).toBe(true);

    c.write(req(CMD.READ, 2n, 9_999, 3002));
    h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type, h.length]).toEqual([2n, REPLY_TYPE.OFFSET_DATA, 8 + 3002]);
    const body = await c.read(h.length);
    expect(Number(Buffer.from(body).readBigUInt64BE(0))).toBe(9_999);
    expect(body[8]).toBe(data[9_999]);
    expect(body.subarray(9, 9 + 3000).every((b) => b === 0x5a)).toBe(true);

    c.write(req(CMD.READ, 3n, 4096, 100));
    h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type]).toEqual([3n, REPLY_TYPE.ERROR]);
    const e = Buffer.from(await c.read(h.length));
    expect(e.readUInt32BE(0)).toBe(NBD_ERR.EIO);
    expect(e.subarray(6).toString()).toContain("injected failure");

    // A READ over the maximum that may not be fragmented (DF): EOVERFLOW, the one case the spec
    // reserves it for
    c.write(req(CMD.READ, 31n, 0, 33 << 20, CMD_FLAG.DF));
    h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type]).toEqual([31n, REPLY_TYPE.ERROR]);
    expect(Buffer.from(await c.read(h.length)).readUInt32BE(0)).toBe(NBD_ERR.EOVERFLOW);

    // An over-limit WRITE gets EINVAL and its payload is skipped: the stream stays in sync.
    const big = 33 << 20;
    c.write(req(CMD.WRITE, 4n, 0, big));
    for (let sent = 0; sent < big; sent += 1 << 20) c.write(new Uint8Array(1 << 20));
    c.write(req(CMD.BLOCK_STATUS, 5n, 0, SIZE));
    h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type]).toEqual([4n, REPLY_TYPE.ERROR]);
    expect(Buffer.from(await c.read(h.length)).readUInt32BE(0)).toBe(NBD_ERR.EINVAL);
    h = decodeChunkHeader(await c.read(20), 0);
    expect([h.handle, h.type]).toEqual([5n, REPLY_TYPE.BLOCK_STATUS]);
    const bs = Buffer.from(await c.read(h.length));
    expect([bs.readUInt32BE(0), bs.readUInt32BE(4), bs.readUInt32BE(8)]).toEqual([1, SIZE, 0]);

    c.write(req(CMD.WRITE_ZEROES, 6n, 10_000, 1000));
    expect(decodeChunkHeader(await c.read(20)).type).toBe(REPLY_TYPE.NONE);
    expect(rwSource.mem.subarray(10_000, 11_000).every((b) => b === 0)).toBe(true);
    c.write(req(CMD.WRITE, 7n, SIZE - 1, 2, 0, new Uint8Array(2)));
    h = decodeChunkHeader(await c.read(20));
    expect(Buffer.from(await c.read(h.length)).readUInt32BE(0)).toBe(NBD_ERR.ENOSPC);
    c.end();
  });
});

describe("nbd server (holes)", () => {
  test("a structured READ inside a hole gets one OFFSET_HOLE chunk; a simple one gets zeros", async () => {
    const c = await RawConn.connect(`unix:${dir}/holes.sock`);
    await negotiate(c, { structured: true });
    c.write(req(CMD.READ, 1n, SIZE / 2 + 100, 5000));
    let h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type, h.flags, h.length]).toEqual([1n, REPLY_TYPE.OFFSET_HOLE, 1, 12]);
    const body = Buffer.from(await c.read(12));
    expect([Number(body.readBigUInt64BE(0)), body.readUInt32BE(8)]).toEqual([SIZE / 2 + 100, 5000]);
    // Straddling data and the hole: data.
    c.write(req(CMD.READ, 2n, SIZE / 2 - 10, 20));
    h = decodeChunkHeader(await c.read(20));
    expect([h.handle, h.type, h.length]).toEqual([2n, REPLY_TYPE.OFFSET_DATA, 8 + 20]);
    expect((await c.read(h.length)).subarray(8)).toEqual(new Uint8Array([...data.subarray(SIZE / 2 - 10, SIZE / 2), ...new Uint8Array(10)]));
    c.end();

    const s = await RawConn.connect(`unix:${dir}/holes.sock`);
    await negotiate(s);
    s.write(req(CMD.READ, 3n, SIZE / 2, 64));
    const r = await simple(s);
    expect([r.handle, r.error]).toEqual([3n, 0]);
    expect(await s.read(64)).toEqual(new Uint8Array(64));
    s.end();
  });
});

describe("nbd server: ending", () => {
  test("a client that sends DISC and shuts its sending side (libnbd) still gets every reply in flight", async () => {
    // node:net, because Bun.connect's shutdown(true) closes both sides here
    const sent = [
      encodeClientFlags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES),
      encodeOption(OPT.GO, encodeInfoRequest("", [])),
      req(CMD.READ, 1n, 0, 65536), // slow: answered after the half-close
      req(CMD.READ, 2n, 100, 8),
      req(CMD.DISC, 3n, 0, 0),
    ];
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const c = createConnection({ path: `${dir}/ro.sock`, allowHalfOpen: true });
      c.on("connect", () => c.end(Buffer.concat(sent)));
      c.on("data", (d: Buffer) => got.push(d));
      c.on("close", () => resolve());
      c.on("error", reject);
    });
    let b = Buffer.concat(got).subarray(18); // after the greeting: GO's replies up to its ACK
    for (;;) {
      const h = decodeOptionReplyHeader(b.subarray(0, 20));
      b = b.subarray(20 + h.length);
      if (h.type === REP.ACK) break;
    }
    const replies = new Map<bigint, Uint8Array>();
    while (b.length >= 16) {
      const r = decodeSimpleReply(b.subarray(0, 16));
      expect(r.error).toBe(0);
      const n = r.handle === 1n ? 65536 : 8;
      replies.set(r.handle, b.subarray(16, 16 + n));
      b = b.subarray(16 + n);
    }
    expect(replies.get(1n)).toEqual(Buffer.from(data.subarray(0, 65536)));
    expect(replies.get(2n)).toEqual(Buffer.from(data.subarray(100, 108)));
  });

  test("close() answers the requests in flight before it ends a connection; one that hangs waits only the grace time", async () => {
    let release!: () => void;
    const hang = new Promise<void>((r) => (release = r));
    const slow: BlockSource = {
      size: SIZE, readOnly: true, blockSize: 4096,
      async read(off, len) {
        if (off === 8192) await hang; // never, until the test ends
        else await Bun.sleep(300);
        return data.slice(off, off + len);
      },
    };
    for (const [offset, answered] of [[0, true], [8192, false]] as const) {
      const sock = `${dir}/closing-${offset}.sock`;
      const srv = await startNbdServer({ source: slow, listen: `unix:${sock}` });
      const c = await RawConn.connect(`unix:${sock}`);
      await negotiate(c);
      c.write(req(CMD.READ, 7n, offset, 4096));
      await Bun.sleep(50); // the read is in flight
      const t0 = performance.now();
      await srv.close(answered ? 5000 : 300);
      if (answered) {
        const r = await simple(c);
        expect([r.handle, r.error]).toEqual([7n, 0]);
        expect(await c.read(4096)).toEqual(data.subarray(0, 4096));
      } else {
        expect(performance.now() - t0).toBeLessThan(2000);
      }
      expect(await c.closedWithin(2000)).toBe(true);
    }
    release();
  });
});

test("a request the source fails is logged (what, where, why), a client's bad request is not; at most 10 lines per 10 s", async () => {
  const lines: string[] = [];
  const sock = `${dir}/logged.sock`;
  const srv = await startNbdServer({ source: memSource(true), listen: `unix:${sock}`, log: (l) => lines.push(l) });
  const c = await RawConn.connect(`unix:${sock}`);
  await negotiate(c);
  c.write(req(CMD.READ, 1n, SIZE - 4, 8)); // beyond the end: the client's mistake
  expect((await simple(c)).error).toBe(NBD_ERR.EINVAL);
  for (let i = 0; i < 15; i++) {
    c.write(req(CMD.READ, BigInt(10 + i), 4096, 10));
    expect((await simple(c)).error).toBe(NBD_ERR.EIO);
  }
  expect(lines.length).toBe(10);
  expect(lines[0]).toBe("nbd: READ 4096+10 failed: injected failure");
  c.end();
  await srv.close();
});
