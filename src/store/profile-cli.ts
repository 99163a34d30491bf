// What `inetboot profile extract|import|show` do, minus argument parsing: profile data or
// summaries on stdout, warnings on stderr, bad input as UserError (one line, exit 1).
import { readFile, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../sys/errors.ts";
import { writeAtomic } from "./atomic.ts";
import { chunkLength, type StoreIndex } from "./format.ts";
import { humanBytes } from "./info.ts";
import { isHttpUrl, loadStore, type LoadedStore } from "./open.ts";
import { extractProfile } from "./profile-console.ts";
import { profileCachePath } from "./profile-daemon.ts";
import { loadProfile } from "./profile-load.ts";
import { decodeProfile, encodeProfile, fromHex, indexDigest, profileNameFor, profileUntil, ProfileError, sameDigest, toHex, type BootProfile } from "./profile.ts";
import { bootPackNameFor, encodeBootPackEntry, encodeBootPackHeader } from "./bootpack.ts";
import { chunkPath } from "./chunk-name.ts";
import { planFromProfile } from "./prefetch.ts";
import { HttpPool } from "./fetcher/pool.ts";

const out = (line: string) => process.stdout.write(line + "\n");
const warn = (line: string) => process.stderr.write(line + "\n");

function userError(e: unknown): never {
  if (e instanceof ProfileError) throw new UserError(e.message);
  throw e;
}

/** A local store to publish into (profiles go next to the index: no URL). */
async function localStore(spec: string): Promise<LoadedStore & { location: { kind: "dir"; dir: string; indexName: string } }> {
  if (isHttpUrl(spec)) throw new UserError(`${spec}: publish into the store's directory, not its URL`);
  const s = await loadStore(spec);
  if (s.location.kind !== "dir") throw new UserError(`${spec}: not a local store`);
  return s as LoadedStore & { location: { kind: "dir"; dir: string; indexName: string } };
}

function mustFit(p: BootProfile, index: StoreIndex, what: string, storeSpec: string): void {
  const want = indexDigest(index);
  if (!sameDigest(p.indexDigest, want))
    throw new UserError(`${what} was recorded on index ${toHex(p.indexDigest).slice(0, 16)}…, but ${storeSpec} has index ${toHex(want).slice(0, 16)}… (repacked?)`);
}

/** --until SECONDS, checked before any work: undefined keeps everything. */
function untilSeconds(until: string | undefined): number | undefined {
  if (until === undefined) return undefined;
  const s = Number(until);
  if (!(until.trim() !== "" && s > 0)) throw new UserError(`--until ${until}: expected a number of seconds after the recording started`);
  return s;
}

/** Keeps what the recording boot read within `seconds` (undefined: everything). */
function cut(p: BootProfile, seconds: number | undefined): BootProfile {
  if (seconds === undefined) return p;
  const kept = profileUntil(p, seconds);
  if (kept.entries.length === 0) throw new UserError(`--until ${seconds}: no chunk was read that early (the first came after ${(p.entries[0]?.ms ?? 0) / 1000} s)`);
  return kept;
}

async function publish(p: BootProfile, store: Awaited<ReturnType<typeof localStore>>): Promise<string> {
  const path = join(store.location.dir, profileNameFor(store.location.indexName));
  await writeAtomic(path, encodeProfile(p), true);
  return path;
}

function describe(p: BootProfile, index: StoreIndex | null): string {
  const span = p.entries.length ? p.entries[p.entries.length - 1]!.ms / 1000 : 0;
  const bytes = index ? p.entries.reduce((n, e) => n + chunkLength(index, e.chunk), 0) : null;
  return `${p.entries.length} chunks${bytes !== null ? ` (${humanBytes(bytes)})` : ""} first read over ${span.toFixed(1)} s`;
}

/** `profile extract LOG [STORE] [--out FILE]`: the recording in a captured console log. */
export async function runProfileExtract(log: string, storeSpec: string | undefined, o: { out?: string; until?: string }): Promise<void> {
  if (!storeSpec && !o.out) throw new UserError("say where the profile goes: a STORE directory and/or --out FILE");
  const until = untilSeconds(o.until);
  const text = log === "-" ? await Bun.stdin.text() : await readFile(log, "utf8").catch((e) => {
    throw new UserError(`${log}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  });
  let x: ReturnType<typeof extractProfile>;
  try {
    x = extractProfile(text);
  } catch (e) {
    userError(e);
  }
  for (const w of x.warnings) warn(`warning: ${w}`);
  x.profile = cut(x.profile, until);
  const store = storeSpec ? await localStore(storeSpec) : null;
  if (store) mustFit(x.profile, store.index, `the recording in ${log}`, storeSpec!);
  if (o.out) {
    await writeAtomic(o.out, encodeProfile(x.profile));
    out(o.out);
  }
  if (store) out(await publish(x.profile, store));
  warn(`profile: ${describe(x.profile, store?.index ?? null)}, index ${toHex(x.profile.indexDigest).slice(0, 16)}…`);
}

/** `profile import FILE STORE`: a profile file (or a cache folder holding profiles/) next to STORE's index. */
export async function runProfileImport(file: string, storeSpec: string, o: { until?: string } = {}): Promise<void> {
  const until = untilSeconds(o.until);
  const store = await localStore(storeSpec);
  let path = file;
  const st = await stat(file).catch(() => null);
  if (!st) throw new UserError(`${file}: no such file`);
  if (st.isDirectory()) {
    // A stick's mount point or its inetboot-cache/ folder: the recording for this index.
    const hex = toHex(indexDigest(store.index));
    const found = [file, join(file, "inetboot-cache")].map((d) => profileCachePath(d, hex)).find((p) => existsSync(p));
    if (!found) throw new UserError(`${file}: no profiles/${hex.slice(0, 16)}….profile for ${storeSpec}'s index`);
    path = found;
  }
  let p: BootProfile;
  try {
    p = decodeProfile(await readFile(path));
  } catch (e) {
    userError(e);
  }
  mustFit(p, store.index, path, storeSpec);
  p = cut(p, until);
  out(await publish(p, store));
  warn(`profile: ${describe(p, store.index)}`);
}

/** `profile show STORE|URL|FILE [--entries]`: what a profile holds and whether it fits its store. */
export async function runProfileShow(spec: string, o: { entries?: boolean }): Promise<void> {
  let p: BootProfile | null;
  let index: StoreIndex | null = null;
  let where = spec;
  if (!isHttpUrl(spec) && spec.endsWith(".profile")) {
    try {
      p = decodeProfile(await readFile(spec).catch((e) => {
        throw new UserError(`${spec}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
      }));
    } catch (e) {
      userError(e);
    }
  } else {
    const pool = new HttpPool({ timeoutMs: 15_000 });
    try {
      const store = await loadStore(spec, { pool });
      index = store.index;
      const loc = store.location;
      where = loc.kind === "dir" ? join(loc.dir, profileNameFor(loc.indexName)) : loc.bases[0] + profileNameFor(loc.indexName);
      let bad = "";
      p = await loadProfile(loc, index, { pool, log: (l) => (bad = l) });
      if (!p) throw new UserError(bad.replace(/^warning: /, "").replace(/; (ignored|no prefetch)$/, "") || `${where}: no profile`);
    } finally {
      pool.close();
    }
  }
  out(`profile   ${where}`);
  out(`index     ${toHex(p.indexDigest)}${index ? " (matches the store)" : ""}`);
  out(`entries   ${describe(p, index)}`);
  if (o.entries) for (const e of p.entries) out(`${e.chunk}\t${e.ms}`);
}

/**
 * `profile pack STORE`: the chunks of STORE's published profile, in profile order, into one file
 * beside it (`<index name>.bootpack`), so a boot prefetches them with one GET (docs/prefetch.md).
 * The pack is built in memory: it is the size of what one boot reads.
 */
export async function runProfilePack(storeSpec: string): Promise<void> {
  const store = await localStore(storeSpec);
  const { dir, indexName } = store.location;
  const ppath = join(dir, profileNameFor(indexName));
  const bytes = await readFile(ppath).catch((e) => {
    throw new UserError(e.code === "ENOENT" ? `${ppath}: no published profile (publish one with 'inetboot profile extract' or 'import' first)` : `${ppath}: ${e.message}`);
  });
  let p: BootProfile;
  try {
    p = decodeProfile(bytes);
  } catch (e) {
    userError(e);
  }
  mustFit(p, store.index, ppath, storeSpec);
  const plan = planFromProfile(store.index, p);
  const path = join(dir, bootPackNameFor(indexName));
  const pieces = [encodeBootPackHeader({ count: plan.length, indexDigest: indexDigest(store.index) })];
  for (const ref of plan) {
    const cpath = join(dir, chunkPath(ref.hex));
    const packed = await readFile(cpath).catch((e) => {
      throw new UserError(`${cpath}: ${e.code === "ENOENT" ? "missing (the store is incomplete: 'inetboot verify' it)" : e.message}`);
    });
    pieces.push(encodeBootPackEntry(fromHex(ref.hex), packed));
  }
  await writeAtomic(path, pieces, true);
  const total = pieces.reduce((n, p) => n + p.length, 0);
  out(path);
  warn(`boot pack: ${plan.length} chunks, ${humanBytes(total)} (one GET instead of ${plan.length})`);
}
