// Copy-on-write overlay: writes land in RAM (or a local sparse scratch file) in 4 KiB grains and
// the base source is only ever read. Lets a read-only image (a remote store) be served writable,
// e.g. for a root filesystem whose changes may be thrown away.
import { open, unlink, type FileHandle } from "node:fs/promises";
import { BlockError, type BlockSource, type Extent } from "../store/source.ts";
import { UserError } from "../sys/errors.ts";

export interface CowOptions {
  /** Keep written grains in this local (sparse) file instead of RAM. It must not exist yet: it is
   *  created, never reused, so a file the user cares about is not replaced by an overlay. */
  file?: string;
}

const GRAIN = 4096;
/** Grain states. */
const BASE = 0, DATA = 1, ZERO = 2;

/** Where written grains live. */
interface Store {
  get(i: number, len: number): Promise<Uint8Array>;
  put(i: number, data: Uint8Array): Promise<void>;
  drop(i: number): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

function ramStore(): Store {
  const m = new Map<number, Uint8Array>();
  return {
    async get(i) {
      return m.get(i)!;
    },
    async put(i, d) {
      m.set(i, d);
    },
    drop: (i) => void m.delete(i),
    async flush() {},
    async close() {
      m.clear();
    },
  };
}

async function fileStore(path: string, size: number): Promise<Store> {
  let fh: FileHandle;
  try {
    // "wx+": exclusive create. "w+" truncated an existing file, wiping whatever it held.
    fh = await open(path, "wx+");
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "EEXIST") throw new UserError(`--cow-file ${path}: exists; remove it or name a new file (its contents would be replaced)`);
    throw new UserError(`--cow-file ${path}: ${code ?? String(e)}`);
  }
  try {
    await fh.truncate(size);
  } catch (e) {
    await fh.close();
    await unlink(path).catch(() => {}); // ours, just created: leave nothing behind
    throw new UserError(`--cow-file ${path}: ${(e as { code?: string }).code ?? String(e)}`);
  }
  const io = (op: string, e: unknown): never => {
    throw new BlockError("EIO", `cow file ${path}: ${op}: ${e instanceof Error ? e.message : String(e)}`);
  };
  return {
    async get(i, len) {
      const b = new Uint8Array(len);
      try {
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(b, got, len - got, i * GRAIN + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
      } catch (e) {
        io("read", e);
      }
      return b;
    },
    async put(i, d) {
      try {
        let put = 0;
        while (put < d.length) put += (await fh.write(d, put, d.length - put, i * GRAIN + put)).bytesWritten;
      } catch (e) {
        io("write", e);
      }
    },
    drop() {},
    async flush() {
      try {
        await fh.sync();
      } catch (e) {
        io("fsync", e);
      }
    },
    async close() {
      await fh.close();
    },
  };
}

export async function createCowSource(base: BlockSource, opts: CowOptions = {}): Promise<BlockSource> {
  const size = base.size;
  const grains = Math.ceil(size / GRAIN);
  const state = new Uint8Array(grains);
  let touched = 0; // grains not in BASE state; 0 lets reads and maps go straight to the base
  const store = opts.file ? await fileStore(opts.file, size) : ramStore();
  const grainLen = (i: number) => Math.min(GRAIN, size - i * GRAIN);
  const setState = (i: number, s: number) => {
    if (state[i] === BASE && s !== BASE) touched++;
    state[i] = s;
  };

  async function readGrain(i: number): Promise<Uint8Array> {
    const len = grainLen(i);
    if (state[i] === DATA) return (await store.get(i, len)).slice();
    if (state[i] === ZERO) return new Uint8Array(len);
    // A copy: mutate() changes this grain, and the base's bytes may be shared with its cache.
    return (await base.read(i * GRAIN, len)).slice();
  }

  async function read(offset: number, length: number): Promise<Uint8Array> {
    if (touched === 0) return base.read(offset, length);
    const out = new Uint8Array(length);
    const end = offset + length;
    let i = Math.floor(offset / GRAIN);
    const pending: Promise<void>[] = [];
    while (i * GRAIN < end) {
      const gStart = i * GRAIN;
      if (state[i] === BASE) {
        // Coalesce a run of untouched grains into one base read.
        let j = i;
        while (j * GRAIN < end && state[j] === BASE) j++;
        const from = Math.max(offset, gStart), to = Math.min(end, j * GRAIN);
        pending.push(base.read(from, to - from).then((d) => out.set(d, from - offset)));
        i = j;
        continue;
      }
      if (state[i] === DATA) {
        const from = Math.max(offset, gStart), to = Math.min(end, gStart + grainLen(i));
        pending.push(store.get(i, grainLen(i)).then((d) => out.set(d.subarray(from - gStart, to - gStart), from - offset)));
      }
      i++;
    }
    await Promise.all(pending);
    return out;
  }

  // Mutations are serialized: a partial grain is read-modify-write, and two of those must not race.
  let chain: Promise<unknown> = Promise.resolve();
  function locked<T>(fn: () => Promise<T>): Promise<T> {
    const r = chain.then(fn);
    chain = r.catch(() => {});
    return r;
  }

  /** Applies `fill` (data bytes, or null for zeros) over [offset, offset+length); `noHole`: zeros
   *  are stored as data grains (allocated), not as zero grains. */
  async function mutate(offset: number, length: number, fill: Uint8Array | null, noHole = false) {
    const end = offset + length;
    for (let i = Math.floor(offset / GRAIN); i * GRAIN < end; i++) {
      const gStart = i * GRAIN, gLen = grainLen(i);
      const from = Math.max(offset, gStart), to = Math.min(end, gStart + gLen);
      const whole = from === gStart && to === gStart + gLen;
      if (whole && fill === null && !noHole) {
        store.drop(i);
        setState(i, ZERO);
        continue;
      }
      const g = whole ? new Uint8Array(gLen) : await readGrain(i);
      if (fill) g.set(fill.subarray(from - offset, to - offset), from - gStart);
      else g.fill(0, from - gStart, to - gStart);
      await store.put(i, g);
      setState(i, DATA);
    }
  }

  async function extents(offset: number, length: number): Promise<Extent[]> {
    const end = Math.min(offset + length, size);
    if (touched === 0) return base.extents ? base.extents(offset, end - offset) : [{ offset, length: end - offset, zero: false }];
    const out: Extent[] = [];
    let i = Math.floor(offset / GRAIN);
    while (i * GRAIN < end) {
      const s = state[i];
      let j = i;
      while (j * GRAIN < end && state[j] === s) j++;
      const from = Math.max(offset, i * GRAIN), to = Math.min(end, j * GRAIN);
      if (s === BASE && base.extents) out.push(...(await base.extents(from, to - from)));
      else out.push({ offset: from, length: to - from, zero: s === ZERO });
      i = j;
    }
    return out;
  }

  return {
    size,
    readOnly: false,
    blockSize: base.blockSize,
    read,
    write: (offset, data) => locked(() => mutate(offset, data.length, data)),
    zero: (offset, length, noHole) => locked(() => mutate(offset, length, null, noHole)),
    // Trimmed ranges read back as zeros: never as stale base data the client meant to discard.
    trim: (offset, length) => locked(() => mutate(offset, length, null)),
    flush: () => locked(() => store.flush()),
    prefetch: base.prefetch ? (offset, length) => base.prefetch!(offset, length) : undefined,
    // Only while nothing is written: a written grain may lie in a hole of the base.
    isHole: (offset, length) => touched === 0 && (base.isHole?.(offset, length) ?? false),
    extents,
    async close() {
      await store.close();
      await base.close?.();
    },
  };
}
