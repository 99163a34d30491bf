// How a recorded profile leaves the guest through the console, and how `inetboot profile extract`
// reads it back from a captured console log. The daemon prints `@inetboot {json}` event lines:
//   profile.start     {index, chunkSize, chunks}     once, when recording begins
//   profile.chunks    {seq, c: [[chunk, ms], ...]}   each batch of first reads, seq = 0, 1, 2...
//   profile.recorded  {index, count, final, file}    after a quiet spell and at the end
// Batches carry seq numbers so a line lost or garbled on the serial console (kernel messages can
// cut into a line) is noticed and reported instead of silently shortening the profile.
import { fromHex, ProfileError, type BootProfile, type ProfileEntry } from "./profile.ts";

export const EV_START = "profile.start";
export const EV_CHUNKS = "profile.chunks";
export const EV_RECORDED = "profile.recorded";

export function chunksEvent(entries: ProfileEntry[], seq: number): Record<string, unknown> {
  return { seq, c: entries.map((e) => [e.chunk, e.ms]) };
}

export interface Extracted {
  profile: BootProfile;
  /** the count the last profile.recorded line announced (null: none seen: the boot was cut short) */
  announced: number | null;
  warnings: string[];
}

/** Reads the last recording in a console log. Throws ProfileError when there is none. */
export function extractProfile(log: string): Extracted {
  const events: Record<string, unknown>[] = [];
  for (const m of log.matchAll(/@inetboot (\{.*\})\r?$/gm)) {
    try {
      const e = JSON.parse(m[1]!);
      if (typeof e?.ev === "string" && e.ev.startsWith("profile.")) events.push(e);
    } catch {
      /* a line cut by other console output: the seq check below reports what it cost */
    }
  }
  let start = -1;
  for (let i = events.length - 1; i >= 0; i--)
    if (events[i]!.ev === EV_START) {
      start = i;
      break;
    }
  if (start < 0) throw new ProfileError(`no ${EV_START} line in the log (was the boot started with inetboot.record?)`);
  const head = events[start]!;
  const indexDigest = fromHex(String(head.index));
  const chunkCount = Number(head.chunks);
  const warnings: string[] = [];
  const batches = new Map<number, unknown[]>();
  let announced: number | null = null;
  for (const e of events.slice(start + 1)) {
    if (e.ev === EV_CHUNKS && Number.isInteger(e.seq) && Array.isArray(e.c)) batches.set(e.seq as number, e.c);
    else if (e.ev === EV_RECORDED && e.index === head.index) announced = Number(e.count);
  }
  const maxSeq = Math.max(-1, ...batches.keys());
  const missing: number[] = [];
  const entries: ProfileEntry[] = [];
  const seen = new Set<number>();
  for (let s = 0; s <= maxSeq; s++) {
    const b = batches.get(s);
    if (!b) {
      missing.push(s);
      continue;
    }
    for (const pair of b) {
      const [chunk, ms] = Array.isArray(pair) ? pair.map(Number) : [NaN, NaN];
      if (!Number.isInteger(chunk) || chunk! < 0 || (chunkCount > 0 && chunk! >= chunkCount) || !(ms! >= 0)) {
        warnings.push(`skipped a malformed entry in batch ${s}`);
        continue;
      }
      if (seen.has(chunk!)) continue;
      seen.add(chunk!);
      entries.push({ chunk: chunk!, ms: ms! });
    }
  }
  if (missing.length) warnings.push(`console lines of batches ${missing.join(", ")} are missing or garbled: the profile lacks their chunks`);
  if (announced === null) warnings.push(`no ${EV_RECORDED} line: the boot ended before a quiet spell; the profile holds what was printed`);
  else if (announced > entries.length) warnings.push(`the daemon recorded ${announced} chunks, the log holds ${entries.length}`);
  if (!entries.length) throw new ProfileError("the recording in the log holds no chunk");
  return { profile: { indexDigest, entries }, announced, warnings };
}
