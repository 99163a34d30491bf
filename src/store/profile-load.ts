// Finding a store's published boot profile: `<index name>.profile` beside the index (a local
// store dir, or each base URL in turn). Missing (404, ENOENT) means "no profile"; a profile that
// is corrupt or recorded on another index is ignored with a warning: prefetch is only a hint.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { oneLine } from "../sys/errors.ts";
import type { StoreIndex } from "./format.ts";
import { HttpError, type HttpPool } from "./fetcher/pool.ts";
import type { StoreLocation } from "./open.ts";
import { decodeProfile, indexDigest, profileNameFor, sameDigest, toHex, type BootProfile } from "./profile.ts";

/** Decodes and checks a profile against the index it is meant for; null + warning when it does not fit. */
export function checkProfile(bytes: Uint8Array, index: StoreIndex, where: string, log: (l: string) => void): BootProfile | null {
  let p: BootProfile;
  try {
    p = decodeProfile(bytes);
  } catch (e) {
    log(`warning: ${where}: ${oneLine(e)}; no prefetch`);
    return null;
  }
  const want = indexDigest(index);
  if (!sameDigest(p.indexDigest, want)) {
    log(`warning: ${where} was recorded on another index (${toHex(p.indexDigest).slice(0, 16)}…, this one is ${toHex(want).slice(0, 16)}…); ignored`);
    return null;
  }
  return p;
}

export async function loadProfile(
  location: StoreLocation,
  index: StoreIndex,
  opts: { pool?: HttpPool; log: (line: string) => void },
): Promise<BootProfile | null> {
  const name = profileNameFor(location.indexName);
  if (location.kind === "dir") {
    const path = join(location.dir, name);
    const bytes = await readFile(path).catch((e) => {
      if (e.code !== "ENOENT") opts.log(`warning: ${path}: ${e.message}; no prefetch`);
      return null;
    });
    return bytes ? checkProfile(bytes, index, path, opts.log) : null;
  }
  if (!opts.pool) throw new Error("loadProfile: an HTTP store needs a pool");
  let lastError = "";
  for (const base of location.bases) {
    const url = base + name;
    try {
      return checkProfile(await opts.pool.get(url), index, url, opts.log);
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) return null; // mirrors serve the same files
      lastError = oneLine(e);
    }
  }
  opts.log(`warning: boot profile unreachable (${lastError}); no prefetch`);
  return null;
}
