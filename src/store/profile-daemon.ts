// The NBD daemon's side of inetboot.record and of prefetch reporting: wires a ProfileRecorder to
// the two ways a profile leaves the guest — event lines on the console (always; `inetboot profile
// extract` reads them from a captured log) and a file on the cache medium when there is one
// (CACHE/profiles/<index checksum>.profile; `inetboot profile import` publishes it). The daemon
// outlives switch_root with the initramfs as its root, so it writes only outside /run.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "./atomic.ts";
import { writeFd } from "../sys/console.ts";
import type { StoreIndex } from "./format.ts";
import { chunksEvent, EV_CHUNKS, EV_RECORDED, EV_START } from "./profile-console.ts";
import { ProfileRecorder, RecordingSource } from "./profile-record.ts";
import { encodeProfile, indexDigest, toHex } from "./profile.ts";
import type { BlockSource } from "./source.ts";

export type EventPrinter = (ev: string, fields: Record<string, unknown>) => void;

/** `@inetboot {json}` lines on stdout (the console), `t` continuing the agent's clock. */
export function consoleEvents(t0 = 0): EventPrinter {
  const start = performance.now();
  return (ev, fields) => {
    const t = Math.round(t0 * 1000 + performance.now() - start) / 1000;
    writeFd(1, `@inetboot ${JSON.stringify({ t, ev, ...fields })}\n`);
  };
}

/** Where a recording goes on the cache medium. */
export function profileCachePath(cacheDir: string, digestHex: string): string {
  return join(cacheDir, "profiles", `${digestHex}.profile`);
}

export function recordBoot(
  source: BlockSource,
  index: StoreIndex,
  opts: { print: EventPrinter; cacheDir?: string; log: (line: string) => void; windowMs?: number; idleMs?: number },
): BlockSource {
  const digest = indexDigest(index);
  const hex = toHex(digest);
  const chunks = Math.ceil(index.imageSize / index.chunkSize);
  const file = opts.cacheDir ? profileCachePath(opts.cacheDir, hex) : null;
  let writing = Promise.resolve();
  opts.print(EV_START, { index: hex, chunkSize: index.chunkSize, chunks });
  const rec = new ProfileRecorder({
    chunkSize: index.chunkSize,
    chunkCount: chunks,
    windowMs: opts.windowMs,
    idleMs: opts.idleMs,
    onBatch: (entries, seq) => opts.print(EV_CHUNKS, chunksEvent(entries, seq)),
    onQuiet: (all, final) => {
      opts.print(EV_RECORDED, { index: hex, count: all.length, final, file });
      if (!file) return;
      const bytes = encodeProfile({ indexDigest: digest, entries: all });
      // One write at a time, fsynced: the stick may be pulled (or the power cut) right after.
      writing = writing
        .then(() => mkdir(join(file, ".."), { recursive: true }))
        .then(() => writeAtomic(file, bytes, true))
        .catch((e) => opts.log(`@inetboot-nbd: profile ${file}: ${(e as Error).message}`));
    },
  });
  return new RecordingSource(source, rec);
}
