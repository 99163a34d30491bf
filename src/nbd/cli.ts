// `inetboot nbd SOURCE`: open a BlockSource, optionally put a copy-on-write overlay on top, serve
// it over NBD until SIGINT/SIGTERM. Logs go to stderr.
import { redactUrls } from "../fetch/errors.ts";
import { lstat, stat } from "node:fs/promises";
import type { BlockSource } from "../store/source.ts";
import { UserError } from "../sys/errors.ts";
import { createCowSource } from "./cow.ts";
import { startNbdServer } from "./server.ts";
import { openFileSource } from "./sources/file.ts";
import { sizeOption } from "../cli/size.ts";
import type { PrefetchStats } from "../store/prefetch.ts";

export interface NbdCliOptions {
  source: string;
  listen: string;
  mirrors: string[];
  cacheDir?: string;
  cow: boolean;
  cowFile?: string;
  name: string;
  /** seconds before a read that no mirror answers fails with EIO (default 30) */
  timeoutSec?: number;
  /** with cacheDir: fetch the chunks the cache lacks while no client reads */
  fill?: boolean;
  /** with cacheDir: the cache's size cap, e.g. "2G" */
  cacheSize?: string;
  /** stores: fetch the chunks of the boot profile published beside the index ahead of any client */
  prefetch?: boolean;
}

/** The line `inetboot nbd --prefetch` prints when the prefetch starts, finds no profile, or ends. */
export function prefetchLine(what: "start" | "done" | "none", st: PrefetchStats): string {
  if (what === "none") return "prefetch: no boot profile beside the index, nothing to prefetch (docs/prefetch.md says how to publish one)";
  if (what === "start") return `prefetch: ${st.planned} chunks listed by the boot profile`;
  const pack = st.pack ? `, ${st.pack.served} of them from the boot pack (${(st.pack.bytes / 1048576).toFixed(1)} MiB in one GET${st.pack.error ? `, ended early: ${st.pack.error}` : ""})` : "";
  const failed = st.failed ? `, ${st.failed} failed (a client's read fetches them again)` : "";
  const evicted = st.evicted ? `, ${st.evicted} dropped from memory before a client read them (the lead shrank)` : "";
  return `prefetch done: ${st.fetched} of ${st.planned} chunks fetched ahead${pack}${failed}${evicted}, in ${((st.ms ?? 0) / 1000).toFixed(1)} s`;
}

/** A store dir, a NAME.index file or an http(s) URL goes to the store layer; a plain file is served directly. */
async function openAny(spec: string, o: NbdCliOptions): Promise<BlockSource> {
  const http = /^https?:\/\//i.test(spec);
  let isStore = http || spec.endsWith(".index");
  if (!http) {
    const st = await stat(spec).catch(() => null);
    if (!st) throw new UserError(`${spec}: no such file or directory`);
    if (st.isDirectory()) isStore = true;
  }
  if (!isStore) {
    if (o.mirrors.length) throw new UserError("--mirror only applies to http(s) sources");
    if (o.prefetch) throw new UserError(`--prefetch: ${spec} is an image file, not a block store (only stores publish boot profiles)`);
    return openFileSource(spec, { readOnly: true });
  }
  // ---- hook: store-backed and raw-HTTP sources live in src/store/open.ts (the store layer's module).
  let mod: typeof import("../store/open.ts");
  try {
    mod = await import("../store/open.ts");
  } catch {
    throw new UserError(`${spec}: ${http ? "http(s) sources are" : "store directories are"} not supported yet`);
  }
  const deadlineMs = o.timeoutSec === undefined ? undefined : Math.round(o.timeoutSec * 1000);
  if (o.fill && !http) throw new UserError("--fill only applies to http(s) stores (a local store needs no cache)");
  let store = false; // a block store, not a raw image (its index was loaded)
  const { evictionLine } = await import("../store/cache-room.ts");
  const cacheMaxBytes = o.cacheSize === undefined ? undefined : sizeOption("--cache-size", o.cacheSize);
  if (cacheMaxBytes === 0) throw new UserError(`bad --cache-size "${o.cacheSize}": a cache of 0 bytes holds nothing`);
  const source = await mod.openSource(spec, {
    mirrors: o.mirrors, cacheDir: o.cacheDir, deadlineMs, fill: o.fill, cacheMaxBytes,
    onIndex: () => (store = true),
    // With a cache dir the prefetched chunks are kept on disk, so the prefetch need not wait for a
    // client to read them (its lead bounds only what waits in memory): the whole profile is fetched.
    prefetch: o.prefetch ? (o.cacheDir ? { leadBytes: Number.POSITIVE_INFINITY } : true) : undefined,
    onPrefetch: (what, st) => process.stderr.write(`${prefetchLine(what, st)}\n`),
    onEvict: (e) => process.stderr.write(`${evictionLine(e)}\n`),
    onFill: (what, st) => {
      if (what === "start") return;
      const mib = (st.bytes / 1048576).toFixed(1);
      process.stderr.write(
        st.stopped
          ? `cache fill ended early: ${st.stopped} (${st.fetched} chunks fetched, ${st.present} were cached)\n`
          : `cache filled: ${st.fetched} chunks fetched (${mib} MiB), ${st.present} were cached, in ${((st.ms ?? 0) / 1000).toFixed(1)} s\n`,
      );
    },
  });
  if (!store && (o.fill || o.prefetch)) {
    await source.close?.();
    const why = o.fill ? "--fill" : "--prefetch";
    throw new UserError(`${why}: ${spec} is a raw image, not a block store (${o.fill ? "raw images are not cached" : "only stores publish boot profiles"})`);
  }
  return source;
}

/** --cow-file and --cache, checked before the source is opened (a store's index may be fetched
 *  first): a mistake there should cost nothing, and cost no data. */
async function checkLocalPaths(o: NbdCliOptions): Promise<void> {
  // lstat: a symlink, even a dangling one, is refused too (creating through it would write elsewhere)
  if (o.cowFile && (await lstat(o.cowFile).catch(() => null)))
    throw new UserError(`--cow-file ${o.cowFile}: exists; remove it or name a new file (its contents would be replaced)`);
  const cache = o.cacheDir ? await stat(o.cacheDir).catch(() => null) : null;
  if (cache && !cache.isDirectory()) throw new UserError(`--cache ${o.cacheDir}: not a directory (the cache is a folder of chunks; name a new or existing folder)`);
}

export async function runNbd(o: NbdCliOptions): Promise<void> {
  if (o.fill && !o.cacheDir) throw new UserError("--fill needs --cache DIR (the cache it fills)");
  if (o.cacheSize !== undefined && !o.cacheDir) throw new UserError("--cache-size needs --cache DIR (the cache it caps)");
  if (o.timeoutSec !== undefined && !(o.timeoutSec > 0)) throw new UserError(`--timeout must be a positive number of seconds`);
  await checkLocalPaths(o);
  let source = await openAny(o.source, o);
  if (o.cow || o.cowFile) source = await createCowSource(source, { file: o.cowFile });
  const server = await startNbdServer({
    source,
    listen: o.listen,
    exportName: o.name,
    description: `inetboot ${redactUrls(o.source)}`, // (every client can read it)
    log: (line) => process.stderr.write(line + "\n"),
  });
  process.stderr.write(`serving ${redactUrls(o.source)} (${source.size} bytes${o.cow || o.cowFile ? ", copy-on-write" : ""}) on ${server.address}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await server.close();
  await source.close?.();
}
