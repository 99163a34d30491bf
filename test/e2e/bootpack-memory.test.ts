// End to end on the host, through Debian's nginx: a boot pack much larger than the memory the
// pack layer may hold for unread entries (PACK_HOLD_BYTES). `inetboot nbd --prefetch` with no
// client reading stops taking the pack once that much waits unread (its resident memory, read
// from /proc, stays far below the pack's size) instead of holding the whole pack; a client then
// reads the image intact, mostly from the pack's one GET.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD } from "../lib/qemu.ts";
import { run } from "../lib/sh.ts";
import { chunkGets, startNbd, startNginx, type Nginx } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";
import { decodeIndex } from "../../src/store/format.ts";
import { encodeProfile, indexDigest } from "../../src/store/profile.ts";
import { PACK_HOLD_BYTES } from "../../src/store/fetcher/packlayer.ts";

const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-packmem-");
const www = join(tmp, "www");
const store = join(www, "store");
const MiB = 1 << 20;
const SIZE = 384 * MiB; // incompressible: the pack is as large as the image
let nginx: Nginx;
let chunks = 0;

beforeAll(async () => {
  const img = join(tmp, "disk.img");
  const f = Bun.file(img).writer();
  const piece = new Uint8Array(MiB);
  for (let i = 0; i < SIZE / MiB; i++) {
    for (let o = 0; o < MiB; o += 65536) crypto.getRandomValues(piece.subarray(o, o + 65536));
    f.write(piece);
  }
  await f.end();
  run([BIN, "pack", img, store]);
  const index = decodeIndex(readFileSync(join(store, "index")));
  chunks = index.digests.length / 32;
  // the profile lists every chunk, in order: the pack holds the whole image
  writeFileSync(join(store, "index.profile"), encodeProfile({ indexDigest: indexDigest(index), entries: [...Array(chunks).keys()].map((chunk, i) => ({ chunk, ms: i })) }));
  run([BIN, "profile", "pack", store]);
  nginx = await startNginx(www, join(tmp, "nginx"));
}, 120_000);
afterAll(async () => {
  await nginx?.stop();
});

/** kB of a /proc/PID/status field (VmRSS now, VmHWM the peak) */
const status = (pid: number, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

test("a pack far larger than the hold limit: with no client the server stops taking it; a client then reads the image intact", async () => {
  const packBytes = Bun.file(join(store, "index.bootpack")).size;
  expect(packBytes).toBeGreaterThan(SIZE);
  const nbd = await startNbd(`${nginx.url}store/`, ["--listen", `unix:${join(tmp, "nbd.sock")}`, "--prefetch"]);
  try {
    await nbd.err.waitFor(/prefetch: \d+ chunks listed by the boot profile\n/, 30_000);
    await Bun.sleep(4000); // loopback brings a whole pack in well under a second
    // Held: the prefetcher's lead in the memory cache, PACK_HOLD_BYTES of entries, the process.
    // Taking the whole pack, it was above 450 MiB (the pack's 384 MiB and more).
    const peak = status(nbd.proc.pid, "VmHWM");
    expect(PACK_HOLD_BYTES).toBeLessThanOrEqual(packBytes / 8);
    expect(peak).toBeLessThan(packBytes / 2);
    expect(nginx.lines().filter((l) => l.includes("/store/index.bootpack"))).toEqual([]); // not all taken yet (logged at its end)
    const out = join(tmp, "copy.img");
    run(["nbdcopy", "--connections=1", "--requests=4", nbd.uri, out]);
    expect(Buffer.compare(readFileSync(out), readFileSync(join(tmp, "disk.img")))).toBe(0);
    // The prefetch still ends (the stream runs out once nobody needs its entries), and what the
    // pack brought was used: not every chunk was fetched alone.
    await nbd.err.waitFor(/prefetch done: .*\n/, 30_000);
    const lines = nginx.lines();
    expect(lines.filter((l) => l.includes("/store/index.bootpack"))).toHaveLength(1);
    expect(chunkGets(lines).length).toBeLessThan(chunks - 64);
  } finally {
    expect(await nbd.stop()).toBe(0);
  }
}, 120_000);
