// `inetboot nbd` against nbdkit's curl plugin (the performance peer), both reading from the same
// nginx on loopback, on the same realistic image: an ext4 filesystem holding /usr/bin (448 MiB,
// built once by bench/store-pack.ts's recipe, cached in build/bench/). Not a test: prints a table.
//
//   sequential: nbdcopy of the whole export to null: (MB/s of export bytes)
//   random:     N 4 KiB reads at fixed pseudo-random offsets, one qemu-io process, one at a time
//               (reads/s)
// cold = a fresh server process with nothing cached; warm = ours with --cache DIR already filled
// by an earlier run (a fresh process: only the disk cache helps), nbdkit with --filter=cache
// cache-on-read=true on a second pass through the same process.
//
// Usage: bun bench/nbd-vs-nbdkit.ts [--reads N] [--runs N] [--rate MBIT --rtt MS] [--https]
//   (default 400 reads, 3 rounds, nginx on loopback). --rate/--rtt put nginx behind the shaped
//   link of the boot benches (bench/lib/shaped-link.ts: a network namespace with tbf, and a
//   proxy adding the round trip): the store on the Internet, where it is meant to be. --https:
//   nginx serves TLS with a certificate from a private CA made for the run (both clients are
//   given the CA: nbdkit's cainfo=, our --ca), as a store across the Internet would be served.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packImage } from "../src/store/pack.ts";
import { run, startNbd, startNginx, ROOT } from "../test/lib/servers.ts";
import { startShapedStore } from "./lib/shaped-link.ts";
import { makeTestCertificates } from "../test/lib/tls.ts";

const argv = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : def;
};
const READS = opt("reads", 400);
const RUNS = opt("runs", 3);
const RATE = opt("rate", 0);
const RTT = opt("rtt", RATE ? 20 : 0);
const HTTPS = argv.includes("--https");
if (HTTPS && RATE) throw new Error("--https and --rate: not together (the shaped link's proxy is plain TCP to a plain nginx)");

const benchDir = join(ROOT, "build/bench");
const img = join(benchDir, "usr-bin.ext4");
if (!existsSync(img)) {
  mkdirSync(benchDir, { recursive: true });
  console.error("building", img, "(mkfs.ext4 -d /usr/bin)…");
  const r = Bun.spawnSync(["mkfs.ext4", "-q", "-F", "-d", "/usr/bin", img, "448M"], { stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("mkfs.ext4 failed");
}
const size = statSync(img).size;
// The web root: the image itself (raw mode, nbdkit) and its store, packed once.
const www = join(benchDir, "www");
mkdirSync(www, { recursive: true });
const wwwImg = join(www, "usr-bin.ext4");
if (!existsSync(wwwImg) || statSync(wwwImg).size !== size || statSync(wwwImg).mtimeMs < statSync(img).mtimeMs) {
  rmSync(wwwImg, { force: true });
  Bun.spawnSync(["cp", img, wwwImg]);
}
const storeDir = join(www, "store");
if (!existsSync(join(storeDir, "index"))) {
  const t0 = performance.now();
  await packImage(img, storeDir, {});
  console.error(`packed ${img} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
await Bun.file(wwwImg).arrayBuffer(); // page cache: nginx reads from RAM for every contestant

const work = mkdtempSync(join(tmpdir(), "ibbench-nbd-"));
const shaped = RATE ? await startShapedStore({ root: www, workDir: join(work, "nginx"), rateMbit: RATE, rttMs: RTT }) : null;
const tls = HTTPS ? makeTestCertificates(work, ["127.0.0.1"]) : null;
const nginx = shaped ? { url: `http://127.0.0.1:${shaped.port}/`, stop: () => shaped.stop() } : await startNginx(www, join(work, "nginx"), undefined, tls ?? undefined);
const where = shaped ? `nginx behind ${RATE} Mbit/s tbf + ${RTT} ms RTT proxy` : `nginx on 127.0.0.1${tls ? ", https (TLS 1.3, private CA)" : ""}`;
const rawUrl = nginx.url + "usr-bin.ext4";
const storeUrl = nginx.url + "store/";

// Fixed offsets (4 KiB aligned) so every contestant reads the same blocks.
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const offsets = Array.from({ length: READS }, () => Math.floor(rnd() * (size / 4096)) * 4096);

interface Server {
  uri: string;
  /** the serving process (all its threads' CPU is counted) */
  pid: number;
  stop(): Promise<unknown>;
}

async function nbdkit(filters: string[] = [], params: string[] = []): Promise<Server> {
  const sock = join(work, `nbdkit-${Math.random().toString(36).slice(2)}.sock`);
  const ca = tls ? [`cainfo=${tls.ca}`] : [];
  const p = Bun.spawn(["nbdkit", "-f", "-r", "-U", sock, ...filters.map((f) => `--filter=${f}`), "curl", `url=${rawUrl}`, ...ca, ...params], {
    stdout: "ignore",
    stderr: "inherit",
  });
  for (let i = 0; !existsSync(sock); i++) {
    if (p.exitCode !== null || i > 200) throw new Error("nbdkit did not start");
    await Bun.sleep(25);
  }
  return { uri: `nbd+unix:///?socket=${sock}`, pid: p.pid, stop: () => (p.kill("SIGTERM"), p.exited) };
}

async function ours(spec: string, extra: string[] = []): Promise<Server> {
  const sock = join(work, `ours-${Math.random().toString(36).slice(2)}.sock`);
  const n = await startNbd(spec, ["--listen", `unix:${sock}`, ...(tls ? ["--ca", tls.ca] : []), ...extra]);
  return { uri: n.uri, pid: n.proc.pid, stop: () => n.stop() };
}

// CPU seconds (user + system, all threads) of a process, from /proc; 0 once it is gone.
const TICK = 100; // USER_HZ
function cpuOf(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}
const nginxCpu = () =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/comm`, "utf8").startsWith("nginx");
      } catch {
        return false;
      }
    })
    .reduce((a, d) => a + cpuOf(Number(d)), 0);

/** CPU of one sequential copy: the server, nginx and nbdcopy (the work a copy costs this machine). */
interface Cpu {
  server: number;
  nginx: number;
  client: number;
}

async function seq(srv: Server, cpu?: Cpu[]): Promise<number> {
  const s0 = cpuOf(srv.pid), n0 = nginxCpu();
  const t0 = performance.now();
  const p = Bun.spawn(["nbdcopy", srv.uri, "null:"], { stdout: "ignore", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 600_000);
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`nbdcopy failed: ${err}`);
  const ru = p.resourceUsage();
  cpu?.push({ server: cpuOf(srv.pid) - s0, nginx: nginxCpu() - n0, client: ru ? (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1e6 : 0 });
  return size / 1e6 / (ms / 1000);
}

async function random(uri: string): Promise<number> {
  const args = offsets.flatMap((o) => ["-c", `read ${o} 4k`]);
  const r = await run(["qemu-io", "-f", "raw", "-r", ...args, uri], 600_000);
  if (r.code !== 0 || r.stdout.includes("error")) throw new Error(`qemu-io failed: ${r.stderr}${r.stdout.slice(0, 500)}`);
  return READS / (r.ms / 1000);
}

type Row = { label: string; seq: number[]; rand: number[]; cpu: Cpu[] };
const rows: Row[] = [];
const best = (xs: number[]) => Math.max(...xs);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const row = (label: string): Row => {
  let r = rows.find((x) => x.label === label);
  if (!r) rows.push((r = { label, seq: [], rand: [], cpu: [] }));
  return r;
};

/** One cold measurement: a fresh server from `make` for the sequential copy, another for the
 *  random reads (each starts with nothing cached but what `before` leaves). */
async function cold(label: string, make: () => Promise<Server>, before?: () => void): Promise<void> {
  before?.();
  let srv = await make();
  row(label).seq.push(await seq(srv, row(label).cpu));
  await srv.stop();
  before?.();
  srv = await make();
  row(label).rand.push(await random(srv.uri));
  await srv.stop();
}

// Every cold cache is a new directory, none is deleted before the end: creating files on ext4
// within a minute of deleting as many makes its inode allocator skip the recently deleted inodes
// one by one (recently_deleted() in perf), which cost a cold --cache copy 0.5 CPU-s more.
let cacheDir = "";
let cacheSeq = 0;
const freshCache = () => void (cacheDir = join(work, `cache-${++cacheSeq}`));
const loads: string[] = [loadavg()];

// Rounds: every contestant once per round, so each sees the same machine conditions (other jobs
// on a shared machine come and go); the table keeps the best of RUNS rounds.
for (let round = 0; round < RUNS; round++) {
  await cold("nbdkit curl, cold", () => nbdkit());
  await cold("inetboot nbd raw URL, cold", () => ours(rawUrl));
  await cold("inetboot nbd store, cold", () => ours(storeUrl));
  await cold("inetboot nbd store --cache, cold", () => ours(storeUrl, ["--cache", cacheDir]), freshCache);
  // Warm: nbdkit's cache filter, second pass through the same process.
  {
    // The cache filter keeps only writes unless told to keep what it reads as well.
    const srv = await nbdkit(["cache"], ["cache-on-read=true"]);
    await seq(srv);
    row("nbdkit curl --filter=cache, warm").seq.push(await seq(srv, row("nbdkit curl --filter=cache, warm").cpu));
    row("nbdkit curl --filter=cache, warm").rand.push(await random(srv.uri));
    await srv.stop();
  }
  // Warm: ours, a fresh process over a filled disk cache (what a second boot from USB sees).
  {
    freshCache();
    const fill = await ours(storeUrl, ["--cache", cacheDir]);
    await seq(fill);
    await fill.stop();
    await cold("inetboot nbd store --cache, warm", () => ours(storeUrl, ["--cache", cacheDir]));
  }
  loads.push(loadavg());
  console.error(`round ${round + 1}/${RUNS} done, load average ${loads[loads.length - 1]}`);
}
await nginx.stop();
rmSync(work, { recursive: true, force: true });

const peerCold = rows[0]!;
const peerWarm = rows.find((r) => r.label.startsWith("nbdkit curl --filter"))!;
const pad = (s: string, n: number) => s.padEnd(n);
console.log(`image: ${img} (${(size / 2 ** 20).toFixed(0)} MiB ext4 of /usr/bin), ${where}, ${READS} random 4 KiB reads, best of ${RUNS} rounds`);
console.log(`load average (1 5 15 min) before and after each round: ${loads.join(" | ")}`);
console.log(`${pad("server", 36)} ${pad("seq MB/s", 10)} ${pad("×nbdkit", 8)} ${pad("rand reads/s", 13)} ×nbdkit  (per-round ratios seq; rand)`);
for (const r of rows) {
  const peer = r.label.includes("warm") ? peerWarm : peerCold;
  // ratios of each round against the peer of the same round, next to the best-of figures
  const perRound = r.seq.map((v, i) => `${(v / peer.seq[i]!).toFixed(2)}/${(r.rand[i]! / peer.rand[i]!).toFixed(2)}`).join(" ");
  console.log(
    `${pad(r.label, 36)} ${pad(best(r.seq).toFixed(0), 10)} ${pad((best(r.seq) / best(peer.seq)).toFixed(2), 8)} ${pad(best(r.rand).toFixed(0), 13)} ${pad((best(r.rand) / best(peer.rand)).toFixed(2), 8)} (${perRound})`,
  );
}
// The issue names nbdkit's curl plugin as the peer; the warm rows above are held to the stricter
// peer with its cache filter. Against the plain plugin (which re-fetches every time):
const oursWarm = rows.find((r) => r.label === "inetboot nbd store --cache, warm")!;
console.log(
  `warm vs plain nbdkit curl (no cache filter): seq ${(best(oursWarm.seq) / best(peerCold.seq)).toFixed(2)}×, rand ${(best(oursWarm.rand) / best(peerCold.rand)).toFixed(2)}×`,
);

// Where the machine's CPU went in a copy: on 2 cores a copy cannot take less than half its CPU
// time, so this says how fast each could be at best (bench/README.md, "the CPU budget").
console.log("CPU per sequential copy, s (server + nginx + nbdcopy = all), the round with the least:");
for (const r of rows) {
  const all = (c: Cpu) => c.server + c.nginx + c.client;
  const c = r.cpu.reduce((a, b) => (all(b) < all(a) ? b : a), r.cpu[0]!);
  if (!c) continue;
  console.log(`${pad(r.label, 36)} ${c.server.toFixed(2)} + ${c.nginx.toFixed(2)} + ${c.client.toFixed(2)} = ${all(c).toFixed(2)}`);
}
