// Boot-profile prefetch on the Debian demo root: time from QEMU start to INETBOOT-DEMO-MARKER and
// HTTP requests until then (nginx's access log), without and with a published profile, with a
// larger kernel read-ahead on /dev/nbd0, on loopback and through a delay proxy.
//   bun bench/boot-prefetch.ts [--runs N] [--delay MS] [--ra KB] [--only NAME,...]
// Needs build/inetboot, build/initramfs.cpio.zst and build/demo/store (make all; make demo).
// Works on a copy of the store's index in build/bench/prefetch/www (chunks linked), so the demo's
// own store gets no profile.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEMO_DIR, DEMO_MARKER } from "../test/lib/demo-root.ts";
import { BUILD, Guest } from "../test/lib/qemu.ts";
import { freePort } from "../test/lib/servers.ts";
import { startDelayProxy } from "../test/lib/delay-proxy.ts";
import { startNginxAt, type NginxServer } from "./lib/nginx.ts";

const argv = process.argv.slice(2);
const opt = (f: string, d: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1]! : d;
};
const RUNS = Number(opt("--runs", "1"));
const DELAY = Number(opt("--delay", "20"));
const RA = Number(opt("--ra", "1024"));
const ONLY = opt("--only", "").split(",").filter(Boolean);
const BIN = join(BUILD, "inetboot");
const WORK = join(BUILD, "bench/prefetch");
const WWW = join(WORK, "www");
const STORE = join(WWW, "store");
const say = (s: string) => process.stderr.write(`bench: ${s}\n`);

// ---- nginx with a timed access log ----
// ---- one boot ----
interface Result { name: string; markerMs: number; requests: number; chunkGets: number; mib: number }

async function bootOnce(name: string, port: number, extra: string, ngx: NginxServer): Promise<{ r: Result; console: string }> {
  const from = ngx.log().length;
  const append = `quiet inetboot.root=http://10.0.2.2:${port}/store/ inetboot.rootfstype=squashfs ${extra}`.trim();
  const t0 = Date.now();
  const g = new Guest({ append });
  try {
    await g.waitText(new RegExp(DEMO_MARKER), 400_000);
    const markerAt = Date.now();
    await Bun.sleep(300); // nginx logs a request when it completes
    const reqs = ngx.log().slice(from).filter((q) => q.ms <= markerAt);
    const chunks = reqs.filter((q) => q.path.includes("/chunks/"));
    const r = { name, markerMs: markerAt - t0, requests: reqs.length, chunkGets: chunks.length, mib: reqs.reduce((n, q) => n + q.bytes, 0) / 1048576 };
    const ev = (n: string) => g.event(n);
    const pf = ev("prefetch.done");
    const pfText = pf ? `; guest: prefetch ${pf.fetched}/${pf.planned} in ${pf.ms} ms, ${pf.used} used, ${pf.skipped} skipped` : "";
    say(`${name}: marker after ${(r.markerMs / 1000).toFixed(1)} s, ${r.requests} requests (${r.chunkGets} chunks, ${r.mib.toFixed(1)} MiB)` +
      `; guest: attached t=${ev("nbd.attached")?.t} switch_root t=${ev("switch_root")?.t}${pfText}`);
    writeFileSync(join(WORK, `console-${name.replace(/[^a-z0-9]+/gi, "-")}-${Date.now()}.log`), g.output);
    if (extra.includes("inetboot.record")) await Bun.sleep(3000); // the last console batches
    return { r, console: g.output };
  } finally {
    g.kill();
    await g.exited;
  }
}

async function main() {
  for (const f of [BIN, join(BUILD, "initramfs.cpio.zst"), join(DEMO_DIR, "store/index")])
    if (!existsSync(f)) throw new Error(`${f} missing (make all; make demo)`);
  rmSync(WWW, { recursive: true, force: true });
  mkdirSync(STORE, { recursive: true });
  copyFileSync(join(DEMO_DIR, "store/index"), join(STORE, "index"));
  symlinkSync(join(DEMO_DIR, "store/chunks"), join(STORE, "chunks"));
  const port = freePort();
  const ngx = await startNginxAt({ root: WWW, workDir: join(WORK, "nginx"), host: "127.0.0.1", port });
  const proxy = startDelayProxy({ upstreamHost: "127.0.0.1", upstreamPort: port, oneWayMs: DELAY });
  const profile = join(STORE, "index.profile");
  const results: Result[] = [];
  const want = (n: string) => !ONLY.length || ONLY.some((o) => n.startsWith(o));
  const raOpt = `INETBOOT_READ_AHEAD_KB=${RA}`;
  try {
    // Recording boot first (no profile published yet); it also counts as a cold baseline sample.
    const rec = await bootOnce("record (no profile)", port, "inetboot.record", ngx);
    const consoleLog = join(WORK, "record-console.log");
    writeFileSync(consoleLog, rec.console);
    const x = Bun.spawnSync([BIN, "profile", "extract", consoleLog, STORE], { stderr: "pipe" });
    if (x.exitCode !== 0) throw new Error(`profile extract: ${x.stderr}`);
    say(x.stderr.toString().trim());
    const saved = readFileSync(profile);
    const withProfile = (on: boolean) => (on ? writeFileSync(profile, saved) : rmSync(profile, { force: true }));
    const cases: [string, boolean, number, string][] = [
      ["loopback, no profile", false, port, ""],
      ["loopback, profile", true, port, ""],
      [`loopback, no profile, read_ahead_kb=${RA}`, false, port, raOpt],
      [`loopback, profile, read_ahead_kb=${RA}`, true, port, raOpt],
      [`+${DELAY} ms/direction, no profile`, false, proxy.port, ""],
      [`+${DELAY} ms/direction, profile`, true, proxy.port, ""],
    ];
    for (let round = 0; round < RUNS; round++)
      for (const [name, prof, port, extra] of cases) {
        if (!want(name)) continue;
        withProfile(prof);
        results.push((await bootOnce(name, port, extra, ngx)).r);
      }
  } finally {
    proxy.stop();
    await ngx.stop();
  }
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(`\n| case | time to marker (s) | HTTP requests | chunk GETs | MiB |  (load ${load})`);
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const r of results) console.log(`| ${r.name} | ${(r.markerMs / 1000).toFixed(1)} | ${r.requests} | ${r.chunkGets} | ${r.mib.toFixed(1)} |`);
}

await main();
