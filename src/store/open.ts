// Opening a source from a spec: a store URL (http(s)://…/ holding `index`, or …/NAME.index), a
// local store dir (or its NAME.index file), or a raw image URL. HTTP specs are told apart by
// probing: an index at the URL (or at a mirror, or a cached copy) → store; a 404 there and at
// every mirror → raw image read with Range requests.
import { stat, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { UserError } from "../sys/errors.ts";
import { redactUrls } from "../fetch/errors.ts";
import { DEFAULT_INDEX_NAME, sha256Hex } from "./chunk-name.ts";
import { decodeIndex, IndexError, type StoreIndex } from "./format.ts";
import { DiskCache } from "./fetcher/diskcache.ts";
import { loadCachedIndex, saveCachedIndex } from "./fetcher/indexcache.ts";
import type { ChunkLayer, ChunkRef, Origin } from "./fetcher/layer.ts";
import { MemCache } from "./fetcher/memcache.ts";
import { MirrorLayer, MirrorSet } from "./fetcher/mirrors.ts";
import { baseUrl, DirOrigin, HttpOrigin } from "./fetcher/origin.ts";
import { HttpError, HttpPool, refusedStatus } from "./fetcher/pool.ts";
import { ReadAhead } from "./fetcher/readahead.ts";
import { SingleFlight } from "./fetcher/singleflight.ts";
import { RawHttpSource } from "./raw-http.ts";
import { unpackPool } from "./unpack-pool.ts";
import { CacheFill, planFill, type FillOptions, type FillStats } from "./fill.ts";
import { Prefetcher, planFromProfile, type PrefetchOptions, type PrefetchStats } from "./prefetch.ts";
import { loadProfile } from "./profile-load.ts";
import { bootPackNameFor } from "./bootpack.ts";
import { openBootPack, pumpBootPack, type PackTransfer } from "./bootpack-stream.ts";
import { PackLayer } from "./fetcher/packlayer.ts";
import { StoreReader } from "./reader.ts";
import type { BlockSource } from "./source.ts";
import { FsFlusher } from "../sys/fsflush.ts";
import { GroupCommit, type MediumMount } from "./group-commit.ts";
import { CacheRoom, type Eviction } from "./cache-room.ts";

export interface OpenOptions {
  /** more base URLs serving the same store (or URLs of the same raw image) */
  mirrors: string[];
  /** persistent chunk cache dir (HTTP stores only) */
  cacheDir?: string;
  /** flush cache entries to the medium (in groups, syncfs) before renaming them into place (removable media) */
  cacheFsync?: boolean;
  /** with cacheFsync: the medium's mount, read-only whenever nothing is written (group-commit.ts) */
  cacheMount?: MediumMount;
  /** with cacheDir: the cache folder's bytes at most; least recently used chunks are evicted
   *  past it, and when the medium runs low (cache-room.ts). Default: the filesystem's size. */
  cacheMaxBytes?: number;
  /** the cache made room (chunks evicted) */
  onEvict?: (e: Eviction) => void;
  /** memory cache cap in bytes (default 64 MiB) */
  memCacheBytes?: number;
  /** a read fails with EIO when no mirror delivered within this many ms (default 30 s) */
  deadlineMs?: number;
  /** deadline for finding the store (index or image size) at open; default deadlineMs */
  openDeadlineMs?: number;
  /** per-request timeout (default min(10 s, deadline / 3)) */
  requestTimeoutMs?: number;
  /** parallel HTTP requests (default 16: loopback/LAN throughput needs more than 8 in flight) */
  maxParallel?: number;
  /** read-ahead on sequential access (default on) */
  readAhead?: boolean;
  /** one-line warnings (default: stderr) */
  log?: (line: string) => void;
  /** HTTP stores: the SHA-256 (hex) the index must have (a signed manifest's root.sha256): any
   *  other index is refused, on every mirror and in the cache; a raw image is never assumed */
  indexSha256?: string;
  /** HTTP stores: fetch `<index name>.profile` beside the index in the background and prefetch
   *  the chunks it lists (docs/prefetch.md). Default off. */
  prefetch?: boolean | PrefetchOptions;
  /** prefetch began (chunks planned) and ended (stats); "none": the store publishes no usable profile */
  onPrefetch?: (what: "start" | "done" | "none", stats: PrefetchStats) => void;
  /** HTTP stores with cacheDir: fetch every chunk the cache lacks while no demand read is
   *  waiting, so the next boot from this cache needs no network (fill.ts). Default off. */
  fill?: boolean | FillOptions;
  /** the fill began (chunks planned) and ended (stats, with `stopped` if it ended early) */
  onFill?: (what: "start" | "done", stats: FillStats) => void;
  /** stores only: the index, once loaded (e.g. to record a boot profile for it) */
  onIndex?: (index: StoreIndex) => void;
}

export function isHttpUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/** Where a store's index and chunks live. */
export type StoreLocation =
  | { kind: "dir"; dir: string; indexName: string }
  | { kind: "http"; bases: string[]; indexName: string };

/** Splits an HTTP spec into (store base URL, index file name). */
export function splitStoreUrl(url: string): { base: string; indexName: string } {
  const u = new URL(url);
  if (u.pathname.endsWith(".index")) {
    const name = u.pathname.slice(u.pathname.lastIndexOf("/") + 1);
    return { base: new URL(".", u).href, indexName: name };
  }
  return { base: baseUrl(u.href), indexName: DEFAULT_INDEX_NAME };
}

function mirrorBases(mirrors: string[]): string[] {
  return mirrors.map((m) => (new URL(m).pathname.endsWith(".index") ? new URL(".", m).href : baseUrl(m)));
}

/** Local store: a dir holding `index`, or a NAME.index file inside a store dir. */
async function localLocation(spec: string): Promise<{ dir: string; indexName: string }> {
  const st = await stat(spec).catch(() => null);
  if (!st) throw new UserError(`store not found: ${spec}`);
  if (st.isDirectory()) return { dir: spec, indexName: DEFAULT_INDEX_NAME };
  if (spec.endsWith(".index") || basename(spec) === DEFAULT_INDEX_NAME) return { dir: dirname(spec), indexName: basename(spec) };
  throw new UserError(`${spec} is not a store (expected a directory or a .index file)`);
}

function decodeOrExplain(bytes: Uint8Array, where: string): StoreIndex {
  try {
    return decodeIndex(bytes);
  } catch (e) {
    if (e instanceof IndexError) throw new UserError(`${where}: ${e.message}`);
    throw e;
  }
}

export interface LoadedStore {
  index: StoreIndex;
  location: StoreLocation;
  /** the index's own size in bytes */
  indexBytes: number;
}

/** Loads a store's index (dir or URL). An URL without an index is reported as "not a store". */
export async function loadStore(
  spec: string,
  opts: { mirrors?: string[]; pool?: HttpPool; deadlineMs?: number } = {},
): Promise<LoadedStore> {
  if (!isHttpUrl(spec)) {
    const { dir, indexName } = await localLocation(spec);
    const path = join(dir, indexName);
    const bytes = await readFile(path).catch((e) => {
      throw new UserError(e.code === "ENOENT" ? `${spec} is not a store (no ${indexName})` : `${path}: ${e.message}`);
    });
    return { index: decodeOrExplain(bytes, path), location: { kind: "dir", dir, indexName }, indexBytes: bytes.length };
  }
  const r = await probeHttp(spec, opts.mirrors ?? [], opts.pool ?? new HttpPool(), opts.deadlineMs ?? 30_000);
  if (r.kind !== "store") throw new UserError(`${spec} is not a store (no ${splitStoreUrl(spec).indexName} there)`);
  return r.store;
}

type Probe = { kind: "store"; store: LoadedStore } | { kind: "raw"; urls: string[] };

interface OfflineIndex {
  /** disk cache dir holding indexes/ (the last verified index of each URL) */
  cacheDir: string;
  log: (line: string) => void;
  /** removable media: the index is flushed before its rename, with the chunks */
  group?: GroupCommit;
}

/** One base URL's answer for the index: a verified index, or why not. "missing" (404) and "bad"
 *  (it sent something that is not a valid index) and "refused" (certificate, host name,
 *  credentials) are answers; only "down" (timeout, 5xx, connection) is worth asking again. */
type IndexAnswer =
  | { url: string; kind: "ok"; bytes: Uint8Array; index: StoreIndex }
  | { url: string; kind: "missing" | "bad" | "refused" | "down"; message: string };
type GoodIndex = Extract<IndexAnswer, { kind: "ok" }>;

function failureKind(e: unknown): "missing" | "refused" | "down" {
  if (!(e instanceof HttpError)) return "down";
  if (e.status === 404) return "missing";
  return e.final || refusedStatus(e.status) ? "refused" : "down";
}

/** An index pinned by its SHA-256 (a signed manifest's root.sha256, inetboot.rootsha256=): any
 *  other, however valid, is a bad answer. */
function pinMismatch(bytes: Uint8Array, pin: string | undefined): string | null {
  if (pin === undefined) return null;
  const have = sha256Hex(bytes);
  return have === pin ? null : `not the index the boot manifest signed (sha256 ${have.slice(0, 16)}…, expected ${pin.slice(0, 16)}…)`;
}

async function fetchIndex(url: string, pool: HttpPool, signal?: AbortSignal, pin?: string): Promise<IndexAnswer> {
  let bytes: Uint8Array;
  try {
    bytes = await pool.get(url, undefined, signal);
  } catch (e) {
    return { url, kind: failureKind(e), message: (e as Error).message?.split("\n")[0] ?? String(e) };
  }
  const pinned = pinMismatch(bytes, pin);
  if (pinned) return { url, kind: "bad", message: `${redactUrls(url)}: ${pinned}` };
  try {
    return { url, kind: "ok", bytes, index: decodeIndex(bytes) };
  } catch (e) {
    if (!(e instanceof IndexError)) throw e;
    return { url, kind: "bad", message: `${redactUrls(url)}: ${e.message}` };
  }
}

/** Asks every URL at once; resolves with the first valid index, or once all have answered. */
function firstIndex(urls: string[], pool: HttpPool, pin?: string): Promise<IndexAnswer[]> {
  return new Promise((resolve, reject) => {
    const answers: IndexAnswer[] = [];
    for (const url of urls)
      fetchIndex(url, pool, undefined, pin).then((a) => {
        answers.push(a);
        if (a.kind === "ok" || answers.length === urls.length) resolve([...answers]);
      }, reject);
  });
}

/** The primary first (the usual case: one request), then all the mirrors at once. */
async function askBases(urls: string[], pool: HttpPool, pin?: string): Promise<IndexAnswer[]> {
  const first = await fetchIndex(urls[0]!, pool, undefined, pin);
  if (first.kind === "ok" || urls.length === 1) return [first];
  return [first, ...(await firstIndex(urls.slice(1), pool, pin))];
}

/** Asks the bases that were down again, with backoff, until the deadline; null if none answers. */
async function retryDown(answers: IndexAnswer[], pool: HttpPool, deadlineMs: number, pin?: string): Promise<GoodIndex | null> {
  const down = answers.filter((a) => a.kind === "down").map((a) => ({ name: a.url }));
  const set = new MirrorSet(down, { deadlineMs: Math.max(0, deadlineMs), attemptTimeoutMs: pool.timeoutMs });
  return set
    .run(`index ${answers[0]!.url}`, async (m, signal) => {
      const a = await fetchIndex(m.name, pool, signal, pin);
      if (a.kind !== "ok") throw new Error(a.message);
      return a;
    })
    .catch(() => null);
}

/** A raw image URL (or nothing): the primary said 404 for URL/index, and so did every mirror that
 *  answered. (A primary that is down may still have the store: that is asked again.) */
function looksRaw(answers: IndexAnswer[], rawSpec: boolean): boolean {
  if (answers[0]!.kind !== "missing") return false;
  return answers.every((a) => a.kind === "missing" || (rawSpec && a.kind === "down"));
}

/** No base has a valid index and there is no cached copy: a raw image, or a one-line error. */
function noIndex(answers: IndexAnswer[], spec: string, mirrors: string[], rawSpec: boolean): Probe {
  if (looksRaw(answers, rawSpec)) return { kind: "raw", urls: rawSpec ? [spec, ...mirrors] : [] };
  const failed = answers.filter((a): a is Exclude<IndexAnswer, GoodIndex> => a.kind !== "ok");
  if (failed.length === 1 && failed[0]!.kind === "bad") throw new UserError(failed[0]!.message);
  throw new UserError(`cannot fetch store index: ${failed.map((a) => a.message).join("; ")}`);
}

async function probeHttp(
  spec: string,
  mirrors: string[],
  pool: HttpPool,
  deadlineMs: number,
  offline?: OfflineIndex,
  /** told once when no base answered and the wait for one begins (a long silence otherwise) */
  waiting?: (line: string) => void,
  /** SHA-256 (hex) the index must have: a pinned store, never a raw image */
  pin?: string,
): Promise<Probe> {
  const start = performance.now();
  let loc: { base: string; indexName: string };
  try {
    loc = splitStoreUrl(spec);
  } catch {
    throw new UserError(`bad URL: ${spec}`);
  }
  const bases = [loc.base, ...mirrorBases(mirrors)].filter((b, i, a) => a.indexOf(b) === i);
  const location: StoreLocation = { kind: "http", bases, indexName: loc.indexName };
  const primaryIndex = loc.base + loc.indexName;
  // (a spec ending in / or naming a .index file cannot be a raw image)
  const rawSpec = pin === undefined && loc.indexName === DEFAULT_INDEX_NAME && !spec.endsWith("/");
  const answers = await askBases(bases.map((b) => b + loc.indexName), pool, pin);
  let found = answers.find((a): a is GoodIndex => a.kind === "ok") ?? null;
  // A cached index makes waiting out the deadline pointless: boot from it (chunks the cache lacks
  // still fail over to mirrors that come back).
  let cached = !found && offline ? await loadCachedIndex(offline.cacheDir, primaryIndex) : null;
  if (cached && pinMismatch(cached.bytes, pin)) cached = null; // (an older version of the store)
  if (!found && !cached && answers.some((a) => a.kind === "down") && !looksRaw(answers, rawSpec)) {
    const left = deadlineMs - (performance.now() - start);
    const down = answers.filter((a) => a.kind === "down").map((a) => (a as Exclude<IndexAnswer, GoodIndex>).message);
    // (progress for a wait long enough to look like a hang; a short one just ends in the error)
    if (left >= 5000) waiting?.(`store index: ${redactUrls(down.join("; "))}; trying again for up to ${Math.round(left / 1000)} s`);
    found = await retryDown(answers, pool, left, pin);
  }
  if (found) {
    if (offline) await saveCachedIndex(offline.cacheDir, primaryIndex, found.bytes, offline.group).catch(() => {}); // a read-only cache is no error
    return { kind: "store", store: { index: found.index, location, indexBytes: found.bytes.length } };
  }
  if (!cached) return noIndex(answers, spec, mirrors, rawSpec);
  const why = (answers[0] as Exclude<IndexAnswer, GoodIndex>).message;
  offline!.log(`warning: no valid store index from ${bases.length === 1 ? "the server" : "any mirror"} (${why}); using the cached copy in ${offline!.cacheDir}`);
  return { kind: "store", store: { index: cached.index, location, indexBytes: cached.bytes.length } };
}

/** zstd level of disk cache entries: 0 = raw-block frames (~2.4× the space of level 1 on ELF
 *  data, but a warm read is a copy + SHA-256 instead of a decompression; see bench/README.md) */
const CACHE_LEVEL = 0;

/** One group commit per cache dir on removable media (the index and the chunks share its
 *  flushes), and one syncfs Worker for them all, started on the first flush. */
const commits = new Map<string, GroupCommit>();
let flusher: FsFlusher | undefined;
function groupCommit(dir: string, mount?: MediumMount): GroupCommit {
  let g = commits.get(dir);
  if (!g) {
    const f = (flusher ??= new FsFlusher());
    commits.set(dir, (g = new GroupCommit(dir, (d) => f.flush(d), undefined, mount)));
  }
  return g;
}

type StackOptions = Pick<OpenOptions, "cacheDir" | "cacheFsync" | "cacheMount" | "cacheMaxBytes" | "onEvict" | "log" | "memCacheBytes" | "deadlineMs"> & { pool?: HttpPool; attemptTimeoutMs?: number };

function diskCache(inner: ChunkLayer, dir: string, opts: StackOptions): DiskCache {
  const group = opts.cacheFsync ? groupCommit(dir, opts.cacheMount) : null;
  const room = new CacheRoom(dir, {
    capBytes: opts.cacheMaxBytes,
    change: group ? (fn) => group.change(fn) : undefined,
    onEvict: opts.onEvict,
    onError: (line) => opts.log?.(`warning: ${line}`),
  });
  return new DiskCache(inner, dir, CACHE_LEVEL, group, room);
}

/** The fetcher stack's layers: top = memory LRU ← below = single-flight ← disk cache ← boot pack ← mirrors. */
function stackParts(location: StoreLocation, opts: StackOptions): { top: MemCache; below: SingleFlight; disk: DiskCache | null; pack: PackLayer | null } {
  let layer: ChunkLayer;
  let disk: DiskCache | null = null;
  let pack: PackLayer | null = null;
  if (location.kind === "dir") layer = new DirOrigin(location.dir);
  else {
    const pool = opts.pool ?? new HttpPool();
    const origins: Origin[] = location.bases.map((b) => new HttpOrigin(b, pool));
    layer = new MirrorLayer(origins, { deadlineMs: opts.deadlineMs, attemptTimeoutMs: opts.attemptTimeoutMs ?? pool.timeoutMs });
    layer = pack = new PackLayer(layer, opts.log);
    if (opts.cacheDir) layer = disk = diskCache(layer, opts.cacheDir, opts);
  }
  const below = new SingleFlight(layer);
  return { top: new MemCache(below, opts.memCacheBytes ?? 64 * 1024 * 1024), below, disk, pack };
}

/** Builds the fetcher stack for a store location (memory LRU ← single-flight ← disk cache ← boot pack ← mirrors). */
export function chunkStack(location: StoreLocation, opts: StackOptions = {}): ChunkLayer {
  return stackParts(location, opts).top;
}

/** Does the cache medium lack most of these chunks? A sample of 16 spread over them decides: a
 *  medium is warm (filled by an earlier boot) or cold, seldom in between. */
async function mostlyMissing(plan: ChunkRef[], disk: DiskCache): Promise<boolean> {
  const n = Math.min(16, plan.length);
  let missing = 0;
  for (let i = 0; i < n; i++) if (!(await disk.has(plan[Math.floor((i * plan.length) / n)]!))) missing++;
  return missing * 2 > n;
}

/** Puts a Prefetcher beside the stack; the profile (and a boot pack, if published: one streamed
 *  GET for all its chunks) is fetched in the background (open never waits for it). */
function startPrefetch(
  top: ChunkLayer,
  index: StoreIndex,
  location: StoreLocation,
  pool: HttpPool,
  opts: OpenOptions,
  log: (line: string) => void,
  pack: PackLayer | null = null,
  disk: DiskCache | null = null,
): ChunkLayer {
  const po: PrefetchOptions = typeof opts.prefetch === "object" ? { ...opts.prefetch } : {};
  if (top instanceof MemCache) {
    po.resident ??= (hex) => top.peek(hex) !== undefined;
    // A quarter of the memory cache: the lead, the read-ahead window and the reader's recent
    // chunks must fit in it together, or LRU evicts unread prefetched chunks (a runaway at a
    // half: test/e2e/prefetch-lead.test.ts).
    po.leadBytes ??= Math.floor(top.capBytes / 4);
    // a chunk dropped from memory is still on the cache medium: reading it again downloads nothing
    po.shrinkOnEviction ??= disk === null;
  }
  // Leave most of the pool to demand reads.
  po.parallel ??= Math.max(1, Math.min(4, Math.floor(pool.maxParallel / 4)));
  po.demandLimit ??= Math.max(1, pool.maxParallel - po.parallel);
  const pf = new Prefetcher(top, po);
  // Without a cache medium the pack is asked for beside the profile (one round trip for both).
  // With one, only once a look at the profile's chunks says the medium lacks most of them: a warm
  // medium holds them already, and the pack would bring them all again.
  const findPack = () => (pack && location.kind === "http" ? openBootPack(location.bases, bootPackNameFor(location.indexName), pool, log) : Promise.resolve(null));
  const early = disk ? null : findPack();
  void loadProfile(location, index, { pool, log })
    .then(async (profile) => {
      if (!profile) {
        void (await early)?.reader.cancel().catch(() => {});
        opts.onPrefetch?.("none", { ...pf.stats });
        return;
      }
      const plan = planFromProfile(index, profile);
      const stream = early ? await early : disk && (await mostlyMissing(plan, disk)) ? await findPack() : null;
      let transfer: Promise<PackTransfer> | null = null;
      if (stream && pack) {
        pack.expect(plan);
        transfer = pumpBootPack(stream, pack, index);
      }
      pf.start(plan);
      opts.onPrefetch?.("start", { ...pf.stats });
      await pf.done;
      pack?.release(); // what arrives from now on, nobody is going to read
      const t = await transfer;
      pack?.drop(); // entries nobody read (the caches above had them)
      await disk?.flush(); // "done" means on the cache medium too, not still being written
      opts.onPrefetch?.("done", { ...pf.stats, ...(t && pack ? { pack: { entries: t.entries, bytes: t.bytes, ms: t.ms, served: pack.stats.served, bad: pack.stats.bad, error: t.error } } : {}) });
    })
    .catch((e) => log(`warning: prefetch: ${(e as Error).message}`));
  return pf.demand;
}

export async function openSource(spec: string, opts: OpenOptions): Promise<BlockSource> {
  const deadlineMs = opts.deadlineMs ?? 30_000;
  const pool = new HttpPool({
    maxParallel: opts.maxParallel ?? 16,
    // A third of the deadline at most, so a stalled mirror leaves time to fail over to another.
    timeoutMs: opts.requestTimeoutMs ?? Math.min(10_000, Math.max(100, Math.floor(deadlineMs / 3))),
  });
  const wrap = (s: BlockSource) => (opts.readAhead === false ? s : new ReadAhead(s));
  const log = opts.log ?? ((line: string) => process.stderr.write(line + "\n"));
  if (!isHttpUrl(spec)) {
    const store = await loadStore(spec);
    opts.onIndex?.(store.index);
    unpackPool().warm();
    let layer = chunkStack(store.location, { memCacheBytes: opts.memCacheBytes });
    if (opts.prefetch) layer = startPrefetch(layer, store.index, store.location, pool, opts, log);
    return new StoreReader(store.index, layer);
  }
  const probe = await probeHttp(spec, opts.mirrors, pool, opts.openDeadlineMs ?? deadlineMs, opts.cacheDir ? { cacheDir: opts.cacheDir, log, group: opts.cacheFsync ? groupCommit(opts.cacheDir, opts.cacheMount) : undefined } : undefined, log, opts.indexSha256);
  if (probe.kind === "store") {
    const { index, location } = probe.store;
    opts.onIndex?.(index);
    unpackPool().warm(); // every chunk goes through it: ready before the first read
    const parts = stackParts(location, { ...opts, log, pool, deadlineMs, attemptTimeoutMs: pool.timeoutMs });
    let layer: ChunkLayer = parts.top;
    if (opts.prefetch) layer = startPrefetch(layer, index, location, pool, opts, log, parts.pack, parts.disk);
    if (opts.fill && parts.disk) {
      const fill = new CacheFill(layer, parts.below, parts.disk, typeof opts.fill === "object" ? opts.fill : {});
      layer = fill.demand;
      fill.start(planFill(index));
      opts.onFill?.("start", { ...fill.stats });
      void fill.done.then((st) => opts.onFill?.("done", { ...st }));
    }
    return wrap(new StoreReader(index, layer));
  }
  if (probe.urls.length === 0) throw new UserError(`${spec}: no store index there (HTTP 404)`);
  let size: number;
  try {
    const r = await pool.size(spec);
    if (!r.ranges) throw new UserError(`${spec}: server does not support Range requests (needed for a raw image)`);
    size = r.size;
  } catch (e) {
    if (e instanceof HttpError) throw new UserError(e.status === 404 ? `${spec}: not found (HTTP 404)` : e.message);
    throw e;
  }
  if (!(size > 0)) throw new UserError(`${spec}: empty or unknown-size image`);
  return wrap(new RawHttpSource(probe.urls, size, pool, { deadlineMs, attemptTimeoutMs: pool.timeoutMs, memCacheBytes: opts.memCacheBytes }));
}
