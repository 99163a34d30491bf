// The long-lived NBD server process of a network root (argv[0] "@inetboot-nbd": systemd's mark
// for root-storage daemons, so the booted system's init leaves it running). It outlives the
// initramfs, so it must not fault on pages that need the root device: its executable lives in
// RAM (the initramfs' files are kept), and PR_SET_IO_FLUSHER lets its allocations dip into
// reserves instead of waiting on writeback to the very device it serves.
import { readdirSync, writeFileSync } from "node:fs";
import { prctl, PR, setThreadNice } from "../sys/ffi.ts";
import { oneLine } from "../sys/errors.ts";
import { writeFd } from "../sys/console.ts";
import { redactUrls } from "../fetch/errors.ts";

/** One line on the console, without the password of a URL (a store URL may carry one). */
const say = (line: string) => writeFd(2, `@inetboot-nbd: ${redactUrls(line)}\n`);

export interface DaemonConfig {
  url: string;
  mirrors: string[];
  socket: string;
  readyFile: string;
  errorFile: string;
  cacheDir?: string;
  /** where the cache medium is mounted: remounted read-only once the fill put the whole image
   *  on it (not while recording a profile, which writes there) */
  cacheMount?: string;
  deadlineMs?: number;
  /** inetboot.cachesize: the cache folder's bytes at most (cache-room.ts) */
  cacheMaxBytes?: number;
  /** inetboot.record: record the chunks this boot reads (docs/prefetch.md) */
  record?: boolean;
  /** inetboot.record=SECONDS: the recording window (default 120 s) */
  recordWindowMs?: number;
  /** with cacheDir: fill the cache with the rest of the image while idle (inetboot.fill) */
  fill?: boolean;
  /** inetboot.log=json: also print prefetch and fill events */
  events?: boolean;
  /** the agent's clock (s) when it started the daemon, so event times line up */
  t0?: number;
  /** inetboot.rootsha256: the SHA-256 the store's index must have */
  indexSha256?: string;
}

export const DAEMON_ROLE = "nbd-daemon";

/**
 * Every read of the root waits on this process: give all its threads a higher priority (nice -10)
 * than the system it serves, so a request is answered promptly while the booting system keeps the
 * CPU busy (one emulated CPU: the NBD device was busy 7 s of a 14 s boot at nice 0). Linux keeps
 * nice per thread, so set it on each one; threads started later inherit it from their creator.
 */
export const DAEMON_NICE = -10;
function raisePriority(warn: (line: string) => void) {
  let tids: string[] = [];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    tids = ["0"];
  }
  for (const t of tids) {
    try {
      setThreadNice(Number(t), DAEMON_NICE);
    } catch (e) {
      warn(`${oneLine(e)} (continuing at normal priority)`);
      return;
    }
  }
}

export async function runNbdDaemon(cfg: DaemonConfig) {
  try {
    prctl(PR.SET_IO_FLUSHER, 1);
  } catch (e) {
    say(`${oneLine(e)} (continuing)`);
  }
  // The booted system's shutdown signals the daemons it does not know; the root still needs us.
  process.on("SIGTERM", () => {});
  process.on("SIGHUP", () => {});
  keepServingThroughBugs(say);
  try {
    // read now: switch_root deletes the initramfs' /etc/inetboot/netrc soon after we start
    (await import("../fetch/netrc.ts")).useNetrcFile(process.env.INETBOOT_NETRC);
    const { openSource } = await import("../store/open.ts");
    const { evictionLine } = await import("../store/cache-room.ts");
    const { startNbdServer } = await import("./server.ts");
    // Finding the store fails fast (the user is waiting at the console); once the root is
    // mounted, reads wait out longer outages before the kernel sees EIO.
    const { consoleEvents, recordBoot } = await import("../store/profile-daemon.ts");
    const print = consoleEvents(cfg.t0);
    const warn = say;
    raisePriority(warn);
    let index: import("../store/format.ts").StoreIndex | null = null;
    // The stick rests read-only whenever nothing is written (not while a profile is recorded
    // there, with plain writes of its own).
    const mp = cfg.cacheMount;
    const medium = mp && !cfg.record
      ? (await import("../boot/cache-medium.ts")).mediumMount(mp, (ro, byKernel) => {
          if (byKernel) warn(`cache medium ${mp} was set read-only by the kernel after a filesystem error: no more caching this boot (fsck.fat repairs it at the next)`);
          if (cfg.events) print(ro ? "cache.readonly" : "cache.writable", { mountpoint: mp, ...(byKernel ? { byKernel } : {}) });
        })
      : undefined;
    let source = await openSource(cfg.url, {
      mirrors: cfg.mirrors, cacheDir: cfg.cacheDir, cacheFsync: true, indexSha256: cfg.indexSha256, cacheMount: medium, deadlineMs: cfg.deadlineMs ?? 120_000, openDeadlineMs: 20_000, requestTimeoutMs: 10_000,
      // A full stick (or one past inetboot.cachesize) makes room for what this boot reads.
      cacheMaxBytes: cfg.cacheMaxBytes,
      onEvict: (e) => {
        if (cfg.events) print("cache.evicted", { ...e });
        warn(evictionLine(e));
      },
      // A published profile (STORE/<index>.profile) is fetched ahead, in the order it lists.
      prefetch: true, log: warn, onIndex: (i) => (index = i),
      onPrefetch: (what, st) => cfg.events && what !== "none" && print(`prefetch.${what}`, { ...st }),
      // The cache medium gets the whole image while the system is idle: the next boot may read
      // chunks this one did not (src/store/fill.ts).
      fill: cfg.fill !== false, // only where there is a cache dir
      onFill: (what, st) => {
        if (cfg.events) print(what === "start" ? "cache.fill" : "cache.filled", { ...st });
        if (what === "done" && st.stopped) warn(`cache fill ended early: ${st.stopped} (${st.fetched} of ${st.planned - st.present} chunks fetched)`);
        if (what === "done" && medium) void sealCacheMedium(st, medium, warn);
      },
    });
    if (cfg.record) {
      if (index) source = recordBoot(source, index, { print, cacheDir: cfg.cacheDir, log: warn, windowMs: cfg.recordWindowMs });
      else warn("inetboot.record: only a block store can be profiled (not a raw image); not recording");
    }
    // (a read the root gets EIO for is worth a console line: which chunk, which mirror, why)
    await startNbdServer({ source, listen: `unix:${cfg.socket}`, log: () => {}, errorLog: warn });
    raisePriority(warn); // threads the server and the fetcher started meanwhile
    writeFileSync(cfg.readyFile, JSON.stringify({ size: source.size, blockSize: source.blockSize }));
  } catch (e) {
    writeFileSync(cfg.errorFile, oneLine(e));
    say(oneLine(e));
    process.exit(1);
  }
}

/**
 * An exception nobody caught (a bug in a timer or a callback) would end this process, and with it
 * every read of the root: the booted system hangs on I/O until it is powered off. Report it on the
 * console and keep serving instead; the request that hit it, if any, gets its error reply or
 * times out in the kernel. The same message is printed once a minute at most.
 */
export function keepServingThroughBugs(warn: (line: string) => void) {
  const last = new Map<string, number>();
  const report = (e: unknown) => {
    const line = `internal error, still serving: ${oneLine(e)}`;
    const now = Date.now();
    if ((last.get(line) ?? -Infinity) > now - 60_000) return;
    last.set(line, now);
    if (last.size > 100) last.clear();
    warn(line);
  };
  process.on("uncaughtException", report);
  process.on("unhandledRejection", report);
  // Test hook (test/e2e/nbd-daemon.test.ts): a bug in a timer and a rejected promise nobody awaits.
  if (process.env.INETBOOT_TEST_DAEMON_BUG === "1") {
    setTimeout(() => {
      throw new Error("injected bug in a timer (INETBOOT_TEST_DAEMON_BUG)");
    }, 0);
    void Promise.reject(new Error("injected rejection (INETBOOT_TEST_DAEMON_BUG)"));
  }
}

/** When the fill left the whole image on the cache medium, remount it read-only now (the group
 *  commit would after a quiet moment; boot/cache-medium.ts says why). */
async function sealCacheMedium(
  st: import("../store/fill.ts").FillStats,
  medium: import("../store/group-commit.ts").MediumMount,
  warn: (line: string) => void,
) {
  const { fillComplete } = await import("../store/fill.ts");
  if (!fillComplete(st)) return;
  try {
    medium.rest(); // cache.readonly, unless the medium was at rest already
  } catch (e) {
    warn(`cache medium stays writable: ${oneLine(e)}`);
  }
}
