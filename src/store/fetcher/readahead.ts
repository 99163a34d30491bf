// Read-ahead as a BlockSource filter: when reads arrive sequentially, ask the source below to
// prefetch a window past the current read; the window doubles on each further sequential read
// (up to maxWindow). Several sequential streams are tracked at once (a source sees no
// connections: nbdcopy's 4 NBD connections each read their own region, interleaved), so a read
// that continues none of them starts a new stream instead of resetting the others. Works over
// any source that implements prefetch().
import type { BlockSource, Extent } from "../source.ts";
export interface ReadAheadOptions {
  /** first window in bytes (default 2 × blockSize) */
  minWindow?: number;
  /** largest window in bytes (default 4 MiB) */
  maxWindow?: number;
  /** sequential streams tracked at once (default 8) */
  streams?: number;
}

interface Stream {
  /** where the stream's last read ended */
  next: number;
  window: number;
  /** end of what was already asked for */
  aheadEnd: number;
}

export class ReadAhead implements BlockSource {
  readonly size: number;
  readonly readOnly: boolean;
  readonly blockSize: number;
  /** most recently used first */
  private streams: Stream[] = [];
  private maxStreams: number;
  private minWindow: number;
  private maxWindow: number;
  /** prefetches issued (tests) */
  prefetches = 0;

  constructor(
    private inner: BlockSource,
    opts: ReadAheadOptions = {},
  ) {
    this.size = inner.size;
    this.readOnly = inner.readOnly;
    this.blockSize = inner.blockSize;
    this.minWindow = opts.minWindow ?? 2 * inner.blockSize;
    this.maxWindow = Math.max(this.minWindow, opts.maxWindow ?? 4 * 1024 * 1024);
    this.maxStreams = Math.max(1, opts.streams ?? 8);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    const end = offset + length;
    const i = this.streams.findIndex((st) => st.next === offset);
    if (i < 0) {
      // Not a continuation: a new stream (a seek), replacing the least recently used one.
      this.streams.unshift({ next: end, window: 0, aheadEnd: 0 });
      if (this.streams.length > this.maxStreams) this.streams.pop();
    } else {
      const st = this.streams[i]!;
      if (i > 0) this.streams.splice(i, 1), this.streams.unshift(st);
      st.next = end;
      if (this.inner.prefetch) {
        st.window = st.window ? Math.min(this.maxWindow, st.window * 2) : this.minWindow;
        const from = Math.max(end, st.aheadEnd);
        const to = Math.min(this.size, end + st.window);
        if (to > from) {
          this.prefetches++;
          st.aheadEnd = to;
          this.inner.prefetch(from, to - from).catch(() => {}); // a hint: errors surface on the real read
        }
      }
    }
    return this.inner.read(offset, length);
  }

  prefetch(offset: number, length: number): Promise<void> {
    return this.inner.prefetch?.(offset, length) ?? Promise.resolve();
  }

  isHole(offset: number, length: number): boolean {
    return this.inner.isHole?.(offset, length) ?? false;
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    return this.inner.extents ? this.inner.extents(offset, length) : Promise.resolve([{ offset, length, zero: false }]);
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
