// inetboot.url: fetch a signed manifest, verify it against the keys built into the initramfs,
// pick an entry (menu or inetboot.entry=), download and verify its kernel and initrd in parallel,
// append the handoff, and kexec. Anything wrong → a one-line refusal, no kexec.
import { appendFileSync, mkdirSync, statSync } from "node:fs";
import type { BootPlan } from "./cmdline.ts";
import type { NetResult } from "../net/setup.ts";
import { emit } from "../agent/events.ts";
import { UserError } from "../sys/errors.ts";
import { FetchError, redactUrl } from "../fetch/errors.ts";
import { fetchFile } from "../fetch/fetch.ts";
import {
  candidateUrls, loadTrustedKeys, MAX_MANIFEST_BYTES, parseManifest, pickEntry, readSeen, recordSeen, signaturePathFor, unsignedAllowed,
  verifyManifestDetailed, type Entry, type Manifest, type Payload,
} from "../manifest/index.ts";
import { appendPadding, encodeHandoff, HANDOFF_VERSION } from "./handoff.ts";
import { kexecLoad, kexecReboot } from "./kexec.ts";
import { releaseCacheMedium, type CacheMedium } from "./cache-medium.ts";
import { cachedPayload, storePayload } from "./payload-cache.ts";
import { CacheRoom, evictionLine } from "../store/cache-room.ts";

export interface ManifestBootContext {
  plan: BootPlan;
  net: NetResult | null;
  /** The cache medium: payloads by digest, and the highest manifest versions seen (rollback). */
  cache?: CacheMedium | null;
  out?: (s: string) => void;
}

/** A signature file holds a line per key: a few hundred bytes. More is not one (and each line
 *  naming a trusted key costs a verification). */
const MAX_SIGNATURE_BYTES = 16 * 1024;

/** GETs a small document, at most `maxBytes` (PID 1 must not buffer whatever a server sends). */
function fetchSmall(url: string, maxBytes: number) {
  return fetchFile(url, { retries: 3, deadlineMs: 60_000, maxBytes });
}

/** The detached signature of a manifest or boot script, or null when the server has none (404). */
export async function fetchSignature(url: string): Promise<string | null> {
  try {
    return new TextDecoder().decode((await fetchSmall(signaturePathFor(url), MAX_SIGNATURE_BYTES)).bytes!);
  } catch (e) {
    if (e instanceof FetchError && e.kind === "http" && e.status === 404) return null;
    throw e;
  }
}

export function warnIfUnsigned(allow: boolean) {
  if (!allow) return;
  const msg = "THIS INITRAMFS ACCEPTS UNSIGNED BOOT MANIFESTS AND SCRIPTS (built with --allow-unsigned): development only";
  emit("warning", { message: msg, unsigned: true }, `!!! ${msg} !!!`);
}

/** "Now" for expiry: never earlier than this agent's build (a machine with a dead RTC starts in
 *  1970, where every manifest ever signed looks unexpired), nor than the server's Date header. The
 *  latest of the three: a wrong Date can only make manifests look older (refused), never newer. */
export function bootClock(serverDate: string | undefined, built = agentBuildTime()): Date {
  const date = serverDate !== undefined ? Date.parse(serverDate) : NaN;
  return new Date(Math.max(Date.now(), built, Number.isFinite(date) ? date : 0));
}

/** The agent executable's mtime: when the initramfs was built (the kernel keeps cpio mtimes). */
function agentBuildTime(): number {
  try {
    return statSync(process.execPath).mtimeMs;
  } catch {
    return 0;
  }
}

/** The rollback record's key for the URL a manifest comes from: another name served there (an old
 *  manifest of another product, signed by the same key) must not start a version count of its own. */
const urlKey = (url: string) => `url:${redactUrl(url)}`;

/** Fetches and verifies the manifest; records its version on the state medium. `base` is where it
 *  finally came from (after redirects): its relative payload URLs resolve against that. */
export async function loadVerifiedManifest(url: string, stateDir?: string, trusted = loadTrustedKeys()): Promise<{ manifest: Manifest; base: string }> {
  const [got, sig] = await Promise.all([fetchSmall(url, MAX_MANIFEST_BYTES), fetchSignature(url)]);
  const bytes = got.bytes!;
  const allow = unsignedAllowed();
  warnIfUnsigned(allow);
  let minVersion: number | undefined;
  if (stateDir) {
    // The name is only trustworthy after verification; a bad manifest fails there anyway. The
    // highest of what its name and this URL saw.
    let name: string | undefined;
    try {
      name = parseManifest(bytes).name;
    } catch {}
    const seen = [name !== undefined ? readSeen(stateDir, name) : undefined, readSeen(stateDir, urlKey(url))].filter((v): v is number => v !== undefined);
    minVersion = seen.length ? Math.max(...seen) : undefined;
  }
  const { manifest, key } = verifyManifestDetailed(bytes, sig, trusted, { now: bootClock(got.date), minVersion, allowUnsigned: allow, what: url });
  if (stateDir) {
    recordSeen(stateDir, manifest.name, manifest.version);
    recordSeen(stateDir, urlKey(url), manifest.version);
  }
  emit(
    "manifest.verified",
    { url, name: manifest.name, version: manifest.version, key: key?.id ?? null, entries: manifest.entries.map((e) => e.name) },
    `manifest ${manifest.name} v${manifest.version} verified${key ? ` (key ${key.id})` : " (UNSIGNED)"}`,
  );
  return { manifest, base: got.url };
}

async function chooseEntry(m: Manifest, plan: BootPlan, out: (s: string) => void): Promise<Entry> {
  if (plan.entry || m.entries.length === 1) return pickEntry(m, plan.entry);
  const def = Math.max(0, m.entries.findIndex((e) => e.default));
  const { menu } = await import("../agent/menu.ts");
  out(`${m.name} v${m.version}:`);
  const i = await menu(m.entries, def, m.timeout, out);
  return m.entries[i]!;
}

/** The boot's cache folder on the medium and its room (cap, eviction), when there is a medium. */
interface PayloadCache {
  dir: string;
  room: CacheRoom;
}

/** Downloads a payload from the first candidate URL that delivers the right bytes. */
async function download(manifestUrl: string, m: Manifest, p: Payload, dest: string, what: string, cache?: PayloadCache): Promise<string> {
  if (cache && (await cachedPayload(cache.dir, p, dest, cache.room))) {
    emit("fetch.done", { what, url: null, size: p.size, sha256: p.sha256, ms: 0, cached: true }, `${what}: from the cache medium (verified)`);
    return dest;
  }
  let last: unknown;
  for (const url of candidateUrls(manifestUrl, m, p.url)) {
    try {
      const r = await fetchFile(url, { dest, sha256: p.sha256, size: p.size, retries: 2, deadlineMs: 300_000 });
      emit("fetch.done", { what, url, size: r.size, sha256: r.sha256, ms: r.ms }, `${what}: ${r.size} bytes verified (${r.ms} ms)`);
      if (cache && !(await storePayload(cache.dir, p, dest, cache.room)))
        emit("warning", { message: `${what}: not kept on the cache medium (no room, or it went away); the next boot downloads it again` });
      return dest;
    } catch (e) {
      last = e;
      emit("warning", { message: `${what} from ${url}: ${(e as Error).message}` });
    }
  }
  throw last instanceof Error ? last : new UserError(`${what}: no URL delivered it`);
}

/** The entry's command line plus what makes stage 2 boot its root store. */
export function stage2Cmdline(e: Entry, plan: BootPlan, rootUrl?: string): string {
  const parts = [e.cmdline];
  if (e.root && rootUrl) {
    parts.push(`inetboot.root=${rootUrl}`);
    if (e.root.fstype) parts.push(`inetboot.rootfstype=${e.root.fstype}`);
    if (e.root.rootpath) parts.push(`inetboot.rootpath=${e.root.rootpath}`);
    // the signature covers the root through its index's digest: stage 2 refuses any other index
    if (e.root.sha256) parts.push(`inetboot.rootsha256=${e.root.sha256}`);
  }
  if (plan.logJson && !/inetboot\.log=/.test(e.cmdline)) parts.push("inetboot.log=json");
  return parts.filter(Boolean).join(" ");
}

export async function bootManifest(ctx: ManifestBootContext): Promise<never> {
  const url = ctx.plan.url!;
  const out = ctx.out ?? ((s: string) => void process.stdout.write(s));
  const cacheDir = ctx.cache?.dir;
  const { manifest: m, base } = await loadVerifiedManifest(url, cacheDir);
  const entry = await chooseEntry(m, ctx.plan, out);
  const dir = "/tmp/kexec";
  mkdirSync(dir, { recursive: true });
  // Under inetboot.cachesize (or on a nearly full medium) storing a payload evicts the least
  // recently used entries first, as the NBD daemon does for chunks.
  const cache: PayloadCache | undefined = cacheDir
    ? {
        dir: cacheDir,
        room: new CacheRoom(cacheDir, { capBytes: ctx.plan.cacheSize, onEvict: (e) => emit("cache.evicted", { ...e }, evictionLine(e)) }),
      }
    : undefined;
  const [kernel, initrd] = await Promise.all([
    download(base, m, entry.kernel, `${dir}/kernel`, "kernel", cache),
    entry.initrd ? download(base, m, entry.initrd, `${dir}/initrd`, "initrd", cache) : Promise.resolve(null),
  ]);
  const rootUrl = entry.root ? candidateUrls(base, m, entry.root.url)[0] : undefined;
  if (initrd) {
    const mirrors = entry.root ? candidateUrls(base, m, entry.root.url).slice(1) : m.mirrors;
    appendFileSync(initrd, appendPadding(statSync(initrd).size));
    appendFileSync(initrd, encodeHandoff({
      version: HANDOFF_VERSION, written: Math.floor(Date.now() / 1000), net: ctx.net, mirrors, from: url,
      cache: ctx.cache ? { device: ctx.cache.device, fstype: ctx.cache.fstype } : null,
    }));
  }
  const cmdline = stage2Cmdline(entry, ctx.plan, rootUrl);
  kexecLoad(kernel, initrd, cmdline);
  releaseCacheMedium(ctx.cache ?? null);
  emit("kexec.start", { entry: entry.name, kernel: entry.kernel.sha256, initrd: entry.initrd?.sha256 ?? null, cmdline }, `kexec ${entry.title}`);
  await Bun.sleep(50);
  return kexecReboot();
}
