// Fetching a published boot pack into the PackLayer: one streamed GET whose entries are handed
// over as they arrive. A stall is bounded (no byte for `idleMs` ends it): what the pack has not
// delivered by then, or ever, is fetched chunk by chunk from the mirrors. While the layer holds
// as many unread entries as it may, the stream is not read (backpressure, see PackLayer.room).
import { oneLine } from "../sys/errors.ts";
import { BootPackError, BootPackParser } from "./bootpack.ts";
import type { StoreIndex } from "./format.ts";
import { HttpError, type HttpPool } from "./fetcher/pool.ts";
import type { PackLayer } from "./fetcher/packlayer.ts";
import { indexDigest, sameDigest, toHex } from "./profile.ts";

export interface OpenPack {
  url: string;
  reader: ReadableStreamDefaultReader<Uint8Array>;
}

/** The pack from the first base that serves it; null when none is published (404) or none answers. */
export async function openBootPack(bases: string[], name: string, pool: HttpPool, log: (line: string) => void): Promise<OpenPack | null> {
  let lastError = "";
  for (const base of bases) {
    const url = base + name;
    try {
      return { url, reader: await pool.stream(url) };
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) return null; // mirrors serve the same files
      lastError = oneLine(e);
    }
  }
  log(`warning: boot pack unreachable (${lastError}); prefetching chunk by chunk`);
  return null;
}

export interface PackTransfer {
  entries: number;
  bytes: number;
  ms: number;
  /** why it ended before its last entry (null: complete) */
  error: string | null;
}

/** Streams the pack into `layer`, then ends the layer's expectations whatever happened. Never throws. */
export async function pumpBootPack(
  pack: OpenPack,
  layer: PackLayer,
  index: StoreIndex,
  opts: { idleMs?: number } = {},
): Promise<PackTransfer> {
  const t0 = performance.now();
  const want = indexDigest(index);
  const parser = new BootPackParser(
    (e) => layer.deliver(toHex(e.digest), e.packed),
    (h) => {
      if (!sameDigest(h.indexDigest, want)) throw new BootPackError(`built for index ${toHex(h.indexDigest).slice(0, 16)}…, not this one`);
    },
  );
  const idleMs = opts.idleMs ?? 10_000;
  let bytes = 0;
  let error: string | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      error = `${pack.url}: no data for ${idleMs / 1000} s`;
      void pack.reader.cancel().catch(() => {});
    }, idleMs);
  };
  try {
    arm();
    for (;;) {
      const { done, value } = await pack.reader.read();
      if (done) break;
      arm();
      bytes += value.length;
      parser.feed(value);
      const room = layer.room();
      if (room) {
        // Readers are behind: stop reading (TCP slows the server) until they take some entries.
        // Waiting on our own readers is no stall of the server's: the idle clock stops meanwhile.
        clearTimeout(timer);
        await room;
        arm();
      }
    }
    if (!error && !parser.done) error = `${pack.url}: ended after ${parser.seen} of ${parser.header?.count ?? "?"} entries`;
  } catch (e) {
    error ??= `${pack.url}: ${oneLine(e)}`;
    void pack.reader.cancel().catch(() => {});
  } finally {
    clearTimeout(timer);
  }
  layer.end(error ?? undefined);
  return { entries: parser.seen, bytes, ms: Math.round(performance.now() - t0), error };
}
