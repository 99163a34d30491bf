// A minimal raw NBD client used by tests and the fuzzer: exact reads over a Bun socket plus a
// fixed-newstyle negotiation helper. Not a general client (no reconnects, no request queue).
import type { Socket } from "bun";
import {
  decodeOptionReplyHeader, encodeClientFlags, encodeInfoRequest, encodeMetaRequest, encodeOption,
} from "./codec.ts";
import { FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, INFO, META_BASE_ALLOCATION, OPT, REP } from "./protocol.ts";
import { parseListen } from "./server.ts";

export class RawConn {
  private chunks: Uint8Array[] = [];
  private have = 0;
  private waiter: (() => void) | null = null;
  closed = false;
  /** Resolves when the peer (or we) closed the socket. */
  readonly done: Promise<void>;
  private markDone!: () => void;
  private sock!: Socket<unknown>;

  private constructor() {
    this.done = new Promise((r) => (this.markDone = r));
  }

  /** Connects to "unix:PATH" or "tcp:HOST:PORT". */
  static async connect(listen: string): Promise<RawConn> {
    const c = new RawConn();
    const l = parseListen(listen);
    const socket = {
      binaryType: "uint8array",
      data: (_s: Socket<unknown>, d: Uint8Array) => {
        c.chunks.push(d.slice());
        c.have += d.length;
        c.wake();
      },
      close: () => c.onClose(),
      error: () => c.onClose(),
      drain: () => c.flushPending(),
    };
    c.sock = (l.kind === "unix"
      ? await Bun.connect({ unix: l.path, socket } as never)
      : await Bun.connect({ hostname: l.host, port: l.port, socket } as never)) as Socket<unknown>;
    return c;
  }

  private pending: Uint8Array[] = [];
  private onClose() {
    this.closed = true;
    this.markDone();
    this.wake();
  }
  private wake() {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
  private flushPending() {
    while (this.pending.length) {
      const f = this.pending[0];
      const n = Math.max(0, this.sock.write(f));
      if (n < f.length) {
        this.pending[0] = f.subarray(n);
        return;
      }
      this.pending.shift();
    }
  }

  write(b: Uint8Array) {
    if (this.closed) return;
    if (this.pending.length) return void this.pending.push(b);
    const n = Math.max(0, this.sock.write(b));
    if (n < b.length) this.pending.push(b.subarray(n));
  }

  get buffered() {
    return this.have;
  }

  /** Reads exactly n bytes; rejects if the connection closes first or `timeoutMs` passes. */
  async read(n: number, timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.have < n) {
      if (this.closed) throw new Error(`connection closed (wanted ${n} bytes, have ${this.have})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${n} bytes (have ${this.have})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => (clearTimeout(t), r());
      });
    }
    const out = new Uint8Array(n);
    let p = 0;
    while (p < n) {
      const c = this.chunks[0];
      const take = Math.min(c.length, n - p);
      out.set(c.subarray(0, take), p);
      p += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    this.have -= n;
    return out;
  }

  /** Waits for the peer to close; false on timeout. */
  async closedWithin(ms: number): Promise<boolean> {
    if (this.closed) return true;
    return Promise.race([this.done.then(() => true), Bun.sleep(ms).then(() => false)]);
  }

  end() {
    this.sock.end();
  }
}

export interface OptionReply {
  option: number;
  type: number;
  data: Uint8Array;
}

export async function readOptionReply(c: RawConn): Promise<OptionReply> {
  const h = decodeOptionReplyHeader(await c.read(20));
  return { option: h.option, type: h.type, data: h.length ? await c.read(h.length) : new Uint8Array(0) };
}

/** Reads replies until the final one (ACK or an error) and returns them all. */
export async function readOptionReplies(c: RawConn): Promise<OptionReply[]> {
  const out: OptionReply[] = [];
  for (;;) {
    const r = await readOptionReply(c);
    out.push(r);
    if (r.type === REP.ACK || (r.type & 0x80000000) !== 0) return out;
  }
}

export interface Negotiation {
  size: number;
  flags: number;
}

/** Greeting, client flags, optionally STRUCTURED_REPLY + SET_META_CONTEXT, then GO. */
export async function negotiate(
  c: RawConn,
  o: { name?: string; structured?: boolean; meta?: boolean } = {},
): Promise<Negotiation> {
  await c.read(18);
  c.write(encodeClientFlags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES));
  if (o.structured || o.meta) {
    c.write(encodeOption(OPT.STRUCTURED_REPLY));
    await readOptionReplies(c);
  }
  if (o.meta) {
    c.write(encodeOption(OPT.SET_META_CONTEXT, encodeMetaRequest(o.name ?? "", [META_BASE_ALLOCATION])));
    await readOptionReplies(c);
  }
  c.write(encodeOption(OPT.GO, encodeInfoRequest(o.name ?? "", [INFO.BLOCK_SIZE])));
  const rs = await readOptionReplies(c);
  const last = rs[rs.length - 1];
  if (last.type !== REP.ACK) throw new Error(`GO refused: 0x${last.type.toString(16)}`);
  const exp = rs.find((r) => r.type === REP.INFO && r.data[0] === 0 && r.data[1] === INFO.EXPORT)!;
  const v = new DataView(exp.data.buffer, exp.data.byteOffset);
  return { size: Number(v.getBigUint64(2)), flags: v.getUint16(10) };
}
