// Issue 4: the Debian demo booted over a slow, far link, three ways, in one run:
//   (a) inetboot: the squashfs streamed as an NBD root (inetboot.root=http://…/store/), chunks on demand
//   (b) the same squashfs on a local virtio disk, no network (test/lib/direct-boot.ts): the limit
//   (c) download the whole squashfs into RAM first, then boot it (dracut livenet / live-boot fetch=):
//       a busybox initramfs that wgets it (bench/lib/ram-boot.ts)
//   (ap) as (a), with a boot profile published next to the index (docs/prefetch.md), recorded by
//       one `inetboot.record` boot at the start of the run: chunks are fetched ahead in boot order
//   (apk) as (ap), with the profile's boot pack published too (`inetboot profile pack`): the
//       profiled chunks come in one streamed GET
// The link: nginx inside a network namespace behind a veth pair with tbf (default 50 Mbit/s each
// way) and a user-space proxy on the host's 127.0.0.1 that holds data RTT/2 per direction (default
// 40 ms RTT). QEMU's user networking maps the guest's 10.0.2.2:P to the host's 127.0.0.1:P (the proxy).
// Printed: time from QEMU start to INETBOOT-DEMO-MARKER, the guest's uptime at the marker, bytes
// the server sent (nginx access log), ratios a/b and a/c, and whether the issue's goals are met.
//
//   bun bench/boot-shaped.ts [--runs N] [--rate MBIT] [--rtt MS] [--no-loopback] [--echo]
// Every kind of boot runs once per round (default 2 rounds); the table shows each kind's fastest.
// --no-loopback skips (a0), the same NBD boot against nginx on loopback without shaping.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO_DIR, DEMO_MARKER } from "../test/lib/demo-root.ts";
import { directGuest } from "../test/lib/direct-boot.ts";
import { Guest } from "../test/lib/qemu.ts";
import { freePort } from "../test/lib/servers.ts";
import { run } from "../test/lib/sh.ts";
import type { DelayProxy } from "../test/lib/delay-proxy.ts";
import { startShapedStore, type ShapedStore } from "./lib/shaped-link.ts";
import { demoStore, INETBOOT, STORE, load, markerTime, mib, ratio, say, secs, table, timeline, deviceReadBytes, eventUptime, type MarkerTime } from "./lib/demo.ts";
import { atExit } from "../test/lib/cleanup.ts";
import { startNginxAt, tally, type NginxServer } from "./lib/nginx.ts";
import { ramGuest } from "./lib/ram-boot.ts";

const argv = process.argv.slice(2);
const opt = (f: string, d: number) => {
  const i = argv.indexOf(f);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const RATE = opt("--rate", 50);
const RTT = opt("--rtt", 40);
const LOOPBACK = !argv.includes("--no-loopback");
const RUNS = opt("--runs", 2);
const ECHO = argv.includes("--echo");

type Kind = "b" | "a" | "ap" | "apk" | "c" | "a0";
const LABEL: Record<Kind, string> = {
  b: "(b) local virtio disk (direct-boot)",
  a: "(a) inetboot NBD root, shaped",
  ap: "(ap) inetboot NBD root + boot profile, shaped",
  apk: "(apk) inetboot NBD root + boot profile + boot pack, shaped",
  c: "(c) download all, boot from RAM, shaped",
  a0: "(a0) inetboot NBD root, loopback",
};

interface Row {
  kind: Kind;
  round: number;
  t: MarkerTime;
  requests?: number;
  /** body bytes the server sent up to the marker */
  bytes?: number;
  /** what the booted system read from its root device (/sys/block/DEV/stat), after the marker */
  devRead?: number;
  note?: string;
}

/**
 * A copy of the demo store's index with a boot profile next to it, under DEMO_DIR/profiled/store/
 * (chunks shared by a symlink; the demo's own store is left alone). The profile comes from one
 * recording boot against `port` (nginx on the host), as docs/prefetch.md describes.
 */
async function publishProfile(port: number, urlPath: string): Promise<string> {
  const dir = join(DEMO_DIR, "profiled/store");
  rmSync(join(DEMO_DIR, "profiled"), { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(STORE, "index"), join(dir, "index"));
  symlinkSync(join(STORE, "chunks"), join(dir, "chunks"));
  say(`recording a boot profile (inetboot.record) against ${urlPath}`);
  const g = new Guest({ append: `inetboot.root=http://10.0.2.2:${port}${urlPath} inetboot.rootfstype=squashfs inetboot.record`, echo: ECHO });
  let until: string;
  try {
    const m = await g.waitText(new RegExp(`${DEMO_MARKER}.*uptime=([\\d.]+)\\s`), 300_000);
    await Bun.sleep(3000); // the recorder prints its last batch a moment after the reads
    // Keep what the boot read up to its marker (not the login after it): event times are on the
    // agent's clock, the marker's on the kernel's.
    const recStart = eventUptime(g, "profile.start");
    if (recStart === undefined) throw new Error("the recording boot printed no agent.start / profile.start event");
    until = (Number(m[1]) - recStart).toFixed(2);
  } finally {
    g.kill();
    await g.exited;
  }
  const log = join(dir, "..", "record-console.log");
  writeFileSync(log, g.output);
  say(`profile cut at the marker: --until ${until} s after recording began`);
  run([INETBOOT, "profile", "extract", log, dir, "--until", until], { inheritStderr: true });
  return "/profiled/store/";
}

/** The same profile plus its boot pack (`inetboot profile pack`), in DEMO_DIR/profiled/packed/. */
function publishPack(): string {
  const dir = join(DEMO_DIR, "profiled/packed");
  mkdirSync(dir, { recursive: true });
  for (const f of ["index", "index.profile"]) copyFileSync(join(DEMO_DIR, "profiled/store", f), join(dir, f));
  symlinkSync(join(STORE, "chunks"), join(dir, "chunks"));
  run([INETBOOT, "profile", "pack", dir], { inheritStderr: true });
  return "/profiled/packed/";
}

/** The shaped path measured from the host: round trip of small requests, throughput of the image. */
async function calibrate(proxy: DelayProxy) {
  const base = `http://127.0.0.1:${proxy.port}`;
  const rtts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const r = await fetch(`${base}/store/index`, { method: "HEAD" });
    await r.arrayBuffer();
    rtts.push(performance.now() - t);
  }
  rtts.sort((a, b) => a - b);
  const t = performance.now();
  const n = (await (await fetch(`${base}/root.squashfs`)).arrayBuffer()).byteLength;
  const s = (performance.now() - t) / 1000;
  return { rttMs: rtts[2]!, mbit: (n * 8) / s / 1e6, bytes: n, s };
}

async function main() {
  const root = demoStore();
  const image = statSync(root.squashfs).size;
  say(`demo root ${root.squashfs} (${mib(image)}); link ${RATE} Mbit/s, ${RTT} ms RTT; load ${load()}`);
  const loadBefore = load();
  const work = mkdtempSync(join(tmpdir(), "inetboot-bench-shaped-"));
  atExit(() => rmSync(work, { recursive: true, force: true }));
  let shaped: ShapedStore | undefined;
  let lo: NginxServer | undefined;
  const rows: Row[] = [];
  try {
    shaped = await startShapedStore({ root: DEMO_DIR, workDir: join(work, "ns"), rateMbit: RATE, rttMs: RTT });
    const { nginx: ngx, proxy } = shaped;
    const cal = await calibrate(proxy);
    say(`shaped path from the host: ${cal.rttMs.toFixed(0)} ms per HEAD, ${mib(cal.bytes)} in ${cal.s.toFixed(1)} s = ${cal.mbit.toFixed(1)} Mbit/s`);
    const gp = proxy.port; // the guest's 10.0.2.2:gp
    const loPort = freePort();
    if (LOOPBACK) lo = await startNginxAt({ root: DEMO_DIR, workDir: join(work, "lo"), host: "127.0.0.1", port: loPort });

    /** Boots, times the marker, counts what `srv` sent until then, reads `dev`'s stat in the shell. */
    const boot = async (g: Guest, t0: number, dev: string, srv?: NginxServer) => {
      const before = srv?.log().length ?? 0;
      let at: ReturnType<typeof tally> | undefined;
      let devRead: number | undefined;
      const t = await markerTime(g, t0, 300_000, async (g) => {
        if (srv) at = tally(srv.log().slice(before));
        devRead = await deviceReadBytes(g, dev);
      });
      return { t, requests: at?.requests, bytes: at?.bytes, devRead, note: timeline(g, t) };
    };
    const nbdGuest = (port: number, path = "/store/") => new Guest({ append: `inetboot.root=http://10.0.2.2:${port}${path} inetboot.rootfstype=squashfs`, echo: ECHO });
    const recorder = lo ?? (await startNginxAt({ root: DEMO_DIR, workDir: join(work, "rec"), host: "127.0.0.1", port: loPort }));
    const profiled = await publishProfile(loPort, "/store/");
    const packed = publishPack();
    if (!lo) await recorder.stop();
    const kinds: Kind[] = LOOPBACK ? ["b", "a", "ap", "apk", "c", "a0"] : ["b", "a", "ap", "apk", "c"];
    for (let round = 1; round <= RUNS; round++) {
      for (const kind of kinds) {
        say(`round ${round}/${RUNS}: ${LABEL[kind]}`);
        const t0 = Date.now();
        let r: Omit<Row, "kind" | "round">;
        if (kind === "b") r = await boot(directGuest({ image: root.squashfs, fstype: "squashfs", echo: ECHO }), t0, "vda");
        else if (kind === "a") r = await boot(nbdGuest(gp), t0, "nbd0", ngx);
        else if (kind === "ap") r = await boot(nbdGuest(gp, profiled), t0, "nbd0", ngx);
        else if (kind === "apk") r = await boot(nbdGuest(gp, packed), t0, "nbd0", ngx);
        else if (kind === "a0") r = await boot(nbdGuest(loPort), t0, "nbd0", lo);
        else {
          const g = ramGuest({ url: `http://10.0.2.2:${gp}/root.squashfs`, echo: ECHO });
          r = await boot(g, t0, "loop0", ngx);
          const f = g.output.match(/ram-init: fetching \S+ at ([\d.]+)[\s\S]*RAM-INIT-FETCHED bytes=\d+ uptime=([\d.]+)/);
          if (f) r.note += `; download ${(Number(f[2]) - Number(f[1])).toFixed(1)} s`;
        }
        rows.push({ kind, round, ...r });
        say(`    marker after ${secs(r.t.ms)}${r.bytes === undefined ? "" : `, ${r.requests} requests, ${mib(r.bytes)}`}`);
      }
    }

    // Best (fastest to the marker) of the rounds per kind; ratios of bests, and per round.
    const best = (k: Kind) => rows.filter((r) => r.kind === k).reduce((x, y) => (y.t.ms < x.t.ms ? y : x));
    const [b, A, AP, APK, C] = [best("b"), best("a"), best("ap"), best("apk"), best("c")];
    const perRound = [...Array(RUNS).keys()].map((i) => {
      const of = (k: Kind) => rows.find((r) => r.kind === k && r.round === i + 1)!.t.ms;
      return `${ratio(of("a"), of("b"))}/${ratio(of("a"), of("c"))} (ap ${ratio(of("ap"), of("b"))}/${ratio(of("ap"), of("c"))}, apk ${ratio(of("apk"), of("b"))}/${ratio(of("apk"), of("c"))})`;
    });
    const goals = (x: Row) => [
      `${LABEL[x.kind]}:`,
      `  goal bytes ≤ 15% of image: ${((100 * x.bytes!) / image).toFixed(0)}% → ${x.bytes! <= 0.15 * image ? "met" : "NOT met"}`,
      `  goal boot ≤ 1.5× local disk: ${ratio(x.t.ms, b.t.ms)}× → ${x.t.ms <= 1.5 * b.t.ms ? "met" : "NOT met"}`,
      `  goal faster than download-first: ${ratio(x.t.ms, C.t.ms)}× → ${x.t.ms < C.t.ms ? "met" : "NOT met"}`,
    ];
    const out = [
      "",
      `boot-shaped: Debian demo root ${mib(image)} squashfs; link ${RATE} Mbit/s tbf + ${RTT} ms RTT proxy`,
      `shaped path measured from the host: ${cal.rttMs.toFixed(0)} ms per HEAD request, ${cal.mbit.toFixed(1)} Mbit/s on a ${mib(cal.bytes)} GET`,
      `load average before: ${loadBefore}, after: ${load()}`,
      "",
      table(
        ["boot", "QEMU start → marker", "guest uptime at marker", "requests", "bytes sent by server", "% of image", "root device bytes read", "× (b)", "× (b), uptime", "guest timeline (kernel uptime)"],
        kinds.map(best).map((r) => [
          LABEL[r.kind],
          secs(r.t.ms),
          `${r.t.uptime.toFixed(1)} s`,
          r.requests ?? "—",
          r.bytes === undefined ? "—" : mib(r.bytes),
          r.bytes === undefined ? "—" : `${((100 * r.bytes) / image).toFixed(0)}%`,
          r.devRead === undefined ? "—" : `${mib(r.devRead)} (${((100 * r.devRead) / image).toFixed(0)}%)`,
          ratio(r.t.ms, b.t.ms),
          ratio(r.t.uptime, b.t.uptime),
          r.note ?? "",
        ]),
        [false, true, true, true, true, true, true, true, true, false],
      ),
      "",
      `best of ${RUNS} rounds per row (fastest QEMU start → marker); every round: ${kinds.map((k) => `${k} ${rows.filter((r) => r.kind === k).map((r) => secs(r.t.ms)).join(", ")}`).join("; ")}`,
      `per round a/b / a/c (same round): ${perRound.join("  ")}`,
      `a/b = ${ratio(A.t.ms, b.t.ms)} (uptime ${ratio(A.t.uptime, b.t.uptime)}), a/c = ${ratio(A.t.ms, C.t.ms)} (uptime ${ratio(A.t.uptime, C.t.uptime)})`,
      `ap/b = ${ratio(AP.t.ms, b.t.ms)} (uptime ${ratio(AP.t.uptime, b.t.uptime)}), ap/c = ${ratio(AP.t.ms, C.t.ms)} (uptime ${ratio(AP.t.uptime, C.t.uptime)})`,
      `apk/b = ${ratio(APK.t.ms, b.t.ms)} (uptime ${ratio(APK.t.uptime, b.t.uptime)}), apk/c = ${ratio(APK.t.ms, C.t.ms)} (uptime ${ratio(APK.t.uptime, C.t.uptime)})`,
      `server bytes counted up to the marker (RAM boot: the whole download); device bytes read = /sys/block/{vda,nbd0,loop0}/stat in the guest's shell just after the marker`,
      ...goals(A),
      ...goals(AP),
      ...goals(APK),
      "",
    ];
    process.stdout.write(out.join("\n") + "\n");
  } finally {
    await lo?.stop().catch(() => {});
    await shaped?.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(join(DEMO_DIR, "profiled"), { recursive: true, force: true });
  }
}

try {
  await main();
  process.exit(0);
} catch (e) {
  process.stderr.write(`boot-shaped: FAIL: ${(e as Error).message}\n`);
  process.exit(1);
}
