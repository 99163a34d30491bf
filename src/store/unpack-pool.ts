// Chunk decompression + verification on Worker threads. zstd (~600 MB/s on ELF chunks) and
// SHA-256 (~1 GB/s) on the event loop are what limited store reads: the NBD replies and HTTP
// traffic wait behind them. A worker gets the packed bytes, returns the plain bytes only after
// checking length and digest, or an error line: unverified bytes never come back.
//
// The worker's code is an inline string started from a Blob URL, so it needs no extra entry point
// in `bun build --compile`. If a worker cannot be started or dies, unpacking falls back to the
// calling thread (same checks). Raw-block frames (the disk cache's entries) are not decompressed
// but gathered in place (zstd-raw.ts): no fresh 256 KiB buffer per chunk, whose page faults cost
// as much as the hashing on a warm read.
import { rawFramePlainInPlace, zstdDeclaredSize } from "./zstd-raw.ts";

// (callers check zstdDeclaredSize first, chunk.ts; the worker checks again: it is the one that
// allocates)
const WORKER_SRC = `
const rawFramePlainInPlace = ${rawFramePlainInPlace.toString()};
const zstdDeclaredSize = ${zstdDeclaredSize.toString()};
self.onmessage = (e) => {
  const { id, buf, off, len, size, hex } = e.data;
  const packed = new Uint8Array(buf, off, len);
  const short = hex.slice(0, 16) + "…";
  if (zstdDeclaredSize(packed) !== size) {
    postMessage({ id, err: "chunk " + short + ": frame does not declare " + size + " bytes" });
    return;
  }
  let plain = rawFramePlainInPlace(packed);
  if (!plain) try {
    plain = Bun.zstdDecompressSync(packed);
  } catch {
    postMessage({ id, err: "chunk " + short + ": not valid zstd data" });
    return;
  }
  if (plain.length !== size) {
    postMessage({ id, err: "chunk " + short + ": " + plain.length + " bytes, expected " + size });
    return;
  }
  const h = new Bun.CryptoHasher("sha256");
  h.update(plain);
  if (h.digest("hex") !== hex) {
    postMessage({ id, err: "chunk " + short + ": digest mismatch" });
    return;
  }
  // Hand the buffer over without a copy when the view is most of it.
  let out = plain;
  if (out.byteLength * 2 < out.buffer.byteLength) out = new Uint8Array(out);
  postMessage({ id, plain: out }, [out.buffer]);
};
`;

interface Job {
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

interface Slot {
  w: Worker;
  pending: Map<number, Job>;
}

export class UnpackPool {
  private slots: Slot[] = [];
  private nextId = 1;
  private broken = false;
  /** chunks unpacked on workers (tests, stats) */
  done = 0;

  constructor(readonly threads: number) {}

  /** workers running now (started by warm() or the first unpack) */
  get running(): number {
    return this.slots.length;
  }

  /** false once a worker could not start or died: callers unpack in-thread. */
  get usable(): boolean {
    return !this.broken && this.threads > 0;
  }

  /** Starts the workers now rather than at the first chunk: a Worker takes tens of ms to start,
   *  which a client's first reads would otherwise wait for. */
  warm(): void {
    this.start();
  }

  private start(): void {
    if (this.slots.length || this.broken) return;
    try {
      const url = URL.createObjectURL(new Blob([WORKER_SRC], { type: "application/javascript" }));
      for (let i = 0; i < this.threads; i++) {
        const w = new Worker(url);
        const slot: Slot = { w, pending: new Map() };
        w.onmessage = (e: MessageEvent) => {
          const { id, plain, err } = e.data as { id: number; plain?: Uint8Array; err?: string };
          const job = slot.pending.get(id);
          if (!job) return;
          slot.pending.delete(id);
          if (slot.pending.size === 0) w.unref();
          if (err !== undefined) job.reject(new UnpackError(err));
          else (this.done++, job.resolve(plain!));
        };
        w.onerror = (e) => this.fail(`unpack worker failed: ${(e as ErrorEvent).message ?? e}`);
        w.unref(); // an idle worker must not keep a CLI process alive
        this.slots.push(slot);
      }
    } catch {
      this.broken = true;
    }
  }

  private fail(why: string): void {
    this.broken = true;
    for (const s of this.slots) {
      for (const j of s.pending.values()) j.reject(new Error(why));
      s.pending.clear();
      s.w.terminate();
    }
    this.slots = [];
  }

  /** Plain bytes of a packed chunk, checked against `size` and `hex` on a worker. Rejects with
   *  UnpackError (bad data) or Error (worker trouble: retry in-thread). */
  unpack(packed: Uint8Array, size: number, hex: string): Promise<Uint8Array> {
    this.start();
    if (this.broken || this.slots.length === 0) return Promise.reject(new Error("no unpack workers"));
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    const id = this.nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      if (slot.pending.size === 0) slot.w.ref();
      slot.pending.set(id, { resolve, reject });
      // Hand the buffer over (no copy) when the bytes are most of it: the caller gave it up (see
      // unpackChunkAsync). An HTTP body is often a view behind its response head.
      const buf = packed.buffer;
      const move = buf instanceof ArrayBuffer && packed.byteLength * 2 >= buf.byteLength;
      const msg = move
        ? { id, buf, off: packed.byteOffset, len: packed.byteLength, size, hex }
        : { id, buf: new Uint8Array(packed).buffer, off: 0, len: packed.byteLength, size, hex }; // a copy (Buffer#slice would be a view)
      slot.w.postMessage(msg, [msg.buf as ArrayBuffer]);
    });
  }

  close(): void {
    for (const s of this.slots) s.w.terminate();
    this.slots = [];
  }
}

/** The chunk failed its checks (as opposed to the worker failing). */
export class UnpackError extends Error {}

let shared: UnpackPool | null = null;

/** The process-wide pool: one worker per core, up to 4 (on 1 core: one). The event loop needs
 *  less than a core once chunks are unpacked elsewhere: on 2 cores two workers beat one by ~10%
 *  on a cold nbdcopy (bench/README.md), so none is left idle for it. Set
 *  INETBOOT_UNPACK_THREADS=0 to unpack in-thread. */
export function unpackPool(): UnpackPool {
  if (!shared) {
    const env = process.env.INETBOOT_UNPACK_THREADS;
    const cores = navigator.hardwareConcurrency || 2;
    shared = new UnpackPool(env !== undefined && env !== "" ? Math.max(0, Number(env) | 0) : Math.max(1, Math.min(4, cores)));
  }
  return shared;
}
