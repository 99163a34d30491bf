// End to end: record a boot profile (inetboot.record), rebuild it from the captured console with
// the real CLI (`inetboot profile extract`), publish it next to the index, boot again, and show
// from nginx's own access log (request order and wall-clock times) that the second boot fetched
// the profiled chunks ahead: all of them before the root's init even started reading its data
// file, in profile order, each once, while the boot still passes its sha256 check.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD, parseEvents, withGuest } from "../lib/qemu.ts";
import { buildBusyboxRoot, type BusyboxRoot } from "../lib/roots.ts";
import { run } from "../lib/sh.ts";
import { decodeIndex, digestAt, isZeroDigest } from "../../src/store/format.ts";
import { decodeProfile } from "../../src/store/profile.ts";
import { freePort } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

const T = 300_000;
const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-prefetch-");
const www = join(tmp, "www");
const store = join(www, "store");
let root: BusyboxRoot;
let nginx: { url: string; log: () => { ms: number; path: string; status: number }[]; stop: () => Promise<void> };

/** nginx with a log line per request: completion time in ms ($msec), path, status. */
async function startTimedNginx(dir: string): Promise<typeof nginx> {
  const work = join(tmp, "nginx");
  mkdirSync(join(work, "tmp"), { recursive: true });
  const log = join(work, "access.log");
  writeFileSync(log, "");
  const port = freePort();
  const t = join(work, "tmp");
  writeFileSync(join(work, "nginx.conf"), `daemon off; master_process off; worker_processes 1; user root;
pid ${work}/nginx.pid; error_log ${work}/error.log;
events { worker_connections 256; }
http {
  log_format t '$msec $status "$request"';
  access_log ${log} t;
  default_type application/octet-stream; sendfile on; keepalive_requests 100000;
  client_body_temp_path ${t}; proxy_temp_path ${t}; fastcgi_temp_path ${t}; uwsgi_temp_path ${t}; scgi_temp_path ${t};
  server { listen 127.0.0.1:${port}; root ${dir}; }
}
`);
  const proc = Bun.spawn(["nginx", "-p", work, "-c", join(work, "nginx.conf")], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; !(await fetch(url, { method: "HEAD" }).then(() => true, () => false)); i++) {
    if (proc.exitCode !== null || i > 100) throw new Error(`nginx did not start: ${await new Response(proc.stderr).text()}`);
    await Bun.sleep(50);
  }
  return {
    url,
    log: () =>
      readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => {
        const m = /^([\d.]+) (\d+) "\S+ (\S+)/.exec(l)!;
        return { ms: Number(m[1]) * 1000, status: Number(m[2]), path: m[3]! };
      }),
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

beforeAll(async () => {
  mkdirSync(www);
  root = buildBusyboxRoot({ fstype: "squashfs", bigMiB: 16 });
  run([BIN, "pack", root.image, store]);
  nginx = await startTimedNginx(www);
}, T);
afterAll(async () => {
  await nginx?.stop();
});

const append = () => `quiet inetboot.root=${nginx.url.replace("127.0.0.1", "10.0.2.2")}store/`;
const chunkHex = (path: string) => /\/chunks\/[0-9a-f]{2}\/([0-9a-f]{64})\.zst$/.exec(path)?.[1];

/** Boots the busybox root; returns the console and the host clock when the root's init began. */
async function boot(extra: string): Promise<{ console: string; initStarted: number; from: number }> {
  const from = nginx.log().length;
  let initStarted = 0;
  let output = "";
  await withGuest({ append: `${append()} ${extra}` }, async (g) => {
    await g.waitText(/INETBOOT-ROOT-MARKER/, 200_000);
    initStarted = Date.now();
    await g.waitText(/ROOT-DONE/, 120_000);
    expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
    expect(await g.exited).toBe(0);
    expect(g.output).not.toMatch(/I\/O error|Kernel panic/);
    output = g.output;
  });
  return { console: output, initStarted, from };
}

test(
  "record → extract → publish → the next boot fetches the profiled chunks ahead, in order",
  async () => {
    // 1. Recording boot.
    const b1 = await boot("inetboot.record");
    const log1 = nginx.log().slice(b1.from);
    const logFile = join(tmp, "console1.log");
    writeFileSync(logFile, b1.console);
    const x = Bun.spawnSync([BIN, "profile", "extract", logFile, store], { stdout: "pipe", stderr: "pipe" });
    expect(x.exitCode, x.stderr.toString()).toBe(0);
    const published = join(store, "index.profile");
    expect(x.stdout.toString().trim()).toBe(published);
    expect(existsSync(published)).toBe(true);
    const show = Bun.spawnSync([BIN, "profile", "show", store], { stdout: "pipe", stderr: "pipe" });
    expect(show.exitCode, show.stderr.toString()).toBe(0);
    expect(show.stdout.toString()).toContain("matches the store");

    // The profile lists chunks the first boot really fetched (per nginx), the data file included.
    const index = decodeIndex(readFileSync(join(store, "index")));
    const profile = decodeProfile(readFileSync(published));
    const profHex = profile.entries.map((e) => digestAt(index, e.chunk)).filter((d) => !isZeroDigest(d)).map((d) => d.toHex());
    const planned = [...new Set(profHex)];
    const got1 = new Set(log1.map((l) => chunkHex(l.path)).filter(Boolean));
    expect(planned.length).toBeGreaterThan(60); // 16 MiB of data = 64 chunks, plus busybox and metadata
    for (const h of planned) expect(got1.has(h)).toBe(true);
    // In the recording boot, most data chunks came after the root's init had started.
    const late1 = log1.filter((l) => planned.includes(chunkHex(l.path)!) && l.ms > b1.initStarted).length;
    expect(late1).toBeGreaterThan(planned.length / 2);

    // --until keeps the chunks first read that early, in order (a bench cuts at its marker).
    const mid = profile.entries[Math.floor(profile.entries.length / 2)]!.ms;
    const cutFile = join(tmp, "cut.profile");
    const xc = Bun.spawnSync([BIN, "profile", "extract", logFile, "--out", cutFile, "--until", String(mid / 1000)], { stdout: "pipe", stderr: "pipe" });
    expect(xc.exitCode, xc.stderr.toString()).toBe(0);
    const want = profile.entries.filter((e) => e.ms <= mid);
    expect(want.length).toBeLessThan(profile.entries.length);
    expect(decodeProfile(readFileSync(cutFile)).entries).toEqual(want);
    const badCut = Bun.spawnSync([BIN, "profile", "extract", logFile, "--out", cutFile, "--until", "soon"], { stdout: "pipe", stderr: "pipe" });
    expect([badCut.exitCode, badCut.stderr.toString().trim().split("\n").length]).toEqual([1, 1]);
    expect(badCut.stderr.toString()).toContain("--until soon");

    // 2. Boot with the profile published, recording again but only for 2 s (inetboot.record=2).
    const b2 = await boot("inetboot.record=2");
    // The daemon's recording ends 2 s after it began: its final profile.recorded event says so.
    const evs = parseEvents(b2.console);
    const recStart = evs.find((e) => e.ev === "profile.start")!;
    const recEnd = evs.find((e) => e.ev === "profile.recorded" && e.final)!;
    expect(recStart).toBeDefined();
    expect(recEnd).toBeDefined();
    expect(recEnd.t - recStart.t).toBeGreaterThanOrEqual(1.9);
    expect(recEnd.t - recStart.t).toBeLessThan(6);
    const log2 = nginx.log().slice(b2.from);
    expect(log2.some((l) => l.path === "/store/index.profile" && l.status === 200)).toBe(true);
    const gets2 = log2.filter((l) => chunkHex(l.path));
    const hex2 = gets2.map((l) => chunkHex(l.path)!);
    // Each profiled chunk fetched exactly once...
    for (const h of planned) expect(hex2.filter((x) => x === h).length).toBe(1);
    // ...(nearly) all of them before the root's init began: it reads the data file after its marker,
    // and the prefetch shares the guest's one emulated CPU with the boot, so allow a straggler...
    const times2 = gets2.filter((l) => planned.includes(chunkHex(l.path)!)).map((l) => l.ms);
    const early2 = times2.filter((ms) => ms < b2.initStarted).length;
    expect(early2).toBeGreaterThanOrEqual(Math.floor(planned.length * 0.9));
    const lastProfiled = Math.max(...times2);
    // ...and in profile order, but for neighbours finishing out of order (a few requests in flight).
    const order = hex2.filter((h) => planned.includes(h)).map((h) => planned.indexOf(h));
    let inversions = 0;
    for (let i = 0; i < order.length; i++) for (let j = i + 1; j < order.length; j++) if (order[i]! > order[j]!) inversions++;
    const pairs = (order.length * (order.length - 1)) / 2;
    expect(inversions / pairs).toBeLessThan(0.05);
    process.stderr.write(
      `prefetch e2e: ${planned.length} profiled chunks; boot 1: ${late1} fetched after init started; ` +
        `boot 2: ${early2} before init started, the last ${((b2.initStarted - lastProfiled) / 1000).toFixed(2)} s before it, ` +
        `order inversions ${inversions}/${pairs}; chunk GETs ${chunkCount(log1)} → ${gets2.length}\n`,
    );
  },
  T,
);

const chunkCount = (l: { path: string }[]) => l.filter((x) => chunkHex(x.path)).length;

/** The profile the test above published (or a fresh recording, when this test runs alone). */
async function ensureProfile(): Promise<void> {
  if (existsSync(join(store, "index.profile"))) return;
  const b = await boot("inetboot.record");
  const logFile = join(tmp, "console-pack.log");
  writeFileSync(logFile, b.console);
  run([BIN, "profile", "extract", logFile, store]);
}

test(
  "profile pack → the next boot gets the profiled chunks in one GET; a damaged entry is fetched on its own, the boot intact",
  async () => {
    await ensureProfile();
    const index = decodeIndex(readFileSync(join(store, "index")));
    const profile = decodeProfile(readFileSync(join(store, "index.profile")));
    const planned = [...new Set(profile.entries.map((e) => digestAt(index, e.chunk)).filter((d) => !isZeroDigest(d)).map((d) => d.toHex()))];

    const p = Bun.spawnSync([BIN, "profile", "pack", store], { stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode, p.stderr.toString()).toBe(0);
    const packPath = join(store, "index.bootpack");
    expect(p.stdout.toString().trim()).toBe(packPath);
    expect(p.stderr.toString()).toContain(`boot pack: ${planned.length} chunks`);

    // Read the pack by its documented layout (docs/prefetch.md), not with our parser: every
    // profiled chunk, in profile order, stored bytes that inflate to their digest.
    const pack = new Uint8Array(readFileSync(packPath));
    const dv = new DataView(pack.buffer);
    expect(Buffer.from(pack.subarray(0, 8)).toString("latin1")).toBe("IBPACK\0\0");
    expect(dv.getUint32(12, true)).toBe(planned.length);
    const entries: { hex: string; at: number; len: number }[] = [];
    for (let pos = 48; pos < pack.length; ) {
      const len = dv.getUint32(pos + 32, true);
      entries.push({ hex: Buffer.from(pack.subarray(pos, pos + 32)).toString("hex"), at: pos + 36, len });
      pos += 36 + len;
    }
    expect(entries.map((e) => e.hex)).toEqual(planned);
    for (const e of entries) {
      const plain = Bun.zstdDecompressSync(pack.subarray(e.at, e.at + e.len));
      expect(new Bun.CryptoHasher("sha256").update(plain).digest("hex")).toBe(e.hex);
    }

    // One entry damaged on the server: its bytes no longer match its digest.
    const bad = entries[Math.floor(entries.length / 2)]!;
    pack[bad.at + Math.floor(bad.len / 2)]! ^= 0x55;
    writeFileSync(packPath, pack);

    const b = await boot("");
    const log = nginx.log().slice(b.from);
    expect(log.filter((l) => l.path === "/store/index.bootpack").map((l) => l.status)).toEqual([200]);
    const fetchedAlone = log.map((l) => chunkHex(l.path)).filter((h): h is string => !!h && planned.includes(h));
    expect(fetchedAlone).toContain(bad.hex); // the damaged one, from chunks/
    expect(fetchedAlone.length).toBeLessThanOrEqual(3); // the rest came in the pack
    expect(b.console).toMatch(/boot pack: chunk [0-9a-f]{16}… .*fetching it from the store/);
    const done = parseEvents(b.console).find((e) => e.ev === "prefetch.done");
    expect(done?.pack).toMatchObject({ entries: planned.length, bad: 1, error: null });
    process.stderr.write(`boot pack e2e: ${planned.length} chunks in one GET (${pack.length} bytes); chunk GETs for profiled chunks: ${fetchedAlone.length}\n`);
  },
  T,
);

test("profile pack refuses a store without a published profile: one line, exit 1", () => {
  const bare = join(tmp, "bare-store");
  const img = join(tmp, "tiny.img");
  writeFileSync(img, new Uint8Array(256 * 1024).fill(1));
  run([BIN, "pack", img, bare]);
  const p = Bun.spawnSync([BIN, "profile", "pack", bare], { stdout: "pipe", stderr: "pipe" });
  expect(p.exitCode).toBe(1);
  const err = p.stderr.toString().trim();
  expect(err.split("\n")).toHaveLength(1);
  expect(err).toContain("no published profile");
  expect(existsSync(join(bare, "index.bootpack"))).toBe(false);
});
