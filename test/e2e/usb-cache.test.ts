// End to end: the USB stick image (`inetboot usb`) boots through SeaBIOS and GRUB as usb-storage;
// the agent finds `inetboot-cache/` on it and the first boot fills it. A second boot with the
// chunk files gone from the server still boots: zero chunk downloads. Hard kills in the middle of
// a cold caching boot never leave a chunk that a later boot uses wrongly. A system left idle fills
// the cache with the rest of the image, so a next boot that reads other blocks needs no network.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUILD, withGuest, Guest, monitorCommand } from "../lib/qemu.ts";
import { buildBusyboxRoot, type BusyboxRoot } from "../lib/roots.ts";
import { writeOldChunks } from "../lib/old-chunks.ts";
import { run } from "../lib/sh.ts";
import { chunkGets, startServe, type ServeProcess } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

const T = 300_000;
const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-usb-");
const www = join(tmp, "www");
const blank = join(tmp, "blank.img");
let serve: ServeProcess;
let root: BusyboxRoot;

const stickArgs = (img: string) => ["-device", "qemu-xhci", "-drive", `if=none,id=stick,format=raw,file=${img}`, "-device", "usb-storage,drive=stick,id=stick0,bootindex=0"];
const boot = (img: string, monitor?: string) => ({ firmware: true, extra: stickArgs(img), monitor });
/** A copy of the blank stick (the `inetboot usb` image made once) for one test. */
function freshStick(name: string): string {
  const img = join(tmp, name);
  copyFileSync(blank, img);
  return img;
}

/** Copies inetboot-cache/ off the stick's FAT partition (mtools, no mounting) and verifies it.
 *  After hard kills the FAT itself may be damaged: Linux can write a file's directory entry
 *  before the FAT sectors of its clusters, so a cut in between leaves an entry that names a free
 *  cluster, which mtools refuses to read (FAT has no journal). Such files are counted as `unreadable` instead of failing the
 *  copy; the agent reads them like any entry, and their digest check fails. */
function cacheOnStick(img: string): { chunks: number; bad: number; unreadable: number; verify: string; names: string[]; bytes: number } {
  const out = join(tmp, `extract-${Date.now()}`);
  mkdirSync(out);
  const at = `${img}@@${2 * 1024 * 1024}`; // the ESP starts at 2 MiB (docs/media.md)
  let unreadable = 0;
  try {
    run(["mcopy", "-s", "-n", "-i", at, "::inetboot-cache", out]);
  } catch {
    // one file at a time, keeping what mtools can read
    rmSync(join(out, "inetboot-cache"), { recursive: true, force: true });
    const listed = Bun.spawnSync(["mdir", "-/", "-b", "-i", at, "::inetboot-cache"], { stdout: "pipe", stderr: "pipe" });
    for (const line of listed.stdout.toString().split("\n")) {
      const path = line.trim().replace(/^::\/?/, "");
      if (!path || path.endsWith("/") || !path.startsWith("inetboot-cache/")) continue;
      mkdirSync(join(out, dirname(path)), { recursive: true });
      const c = Bun.spawnSync(["mcopy", "-n", "-i", at, `::${path}`, join(out, path)], { stdout: "pipe", stderr: "pipe" });
      if (c.exitCode !== 0) unreadable++;
    }
  }
  const dir = join(out, "inetboot-cache");
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  let bytes = 0;
  const chunkDir = join(dir, "chunks");
  try {
    for (const d of readdirSync(chunkDir))
      for (const f of readdirSync(join(chunkDir, d)).filter((f) => f.endsWith(".zst"))) {
        names.push(f);
        bytes += statSync(join(chunkDir, d, f)).size;
      }
  } catch {
    /* no chunks yet */
  }
  const chunks = names.length;
  const verify = Bun.spawnSync([BIN, "cache", "verify", dir], { stderr: "pipe", stdout: "pipe" });
  const text = `${verify.exitCode} ${verify.stdout}${verify.stderr}`;
  const bad = Number(/(\d+) bad/.exec(text)?.[1] ?? 0);
  return { chunks, bad, unreadable, verify: text, names, bytes };
}

beforeAll(async () => {
  mkdirSync(www);
  root = buildBusyboxRoot({ fstype: "squashfs", bigMiB: 24 });
  run([BIN, "pack", root.image, join(www, "store")]);
  serve = await startServe(www);
  const url = serve.url.replace("127.0.0.1", "10.0.2.2");
  run([BIN, "usb", "--out", blank, "--size", "128M", "--serial", "--timeout", "1",
    "--entry", `Busybox root over NBD|inetboot.root=${url}store/ inetboot.log=json panic=-1 quiet`]);
}, T);
afterAll(async () => {
  await serve?.stop();
});

async function rootBoot(g: Guest) {
  await g.waitText(/ROOT-DONE/, 200_000);
  expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
  expect(await g.exited).toBe(0);
}

/** Boots the stick with only the store's index reachable (its chunks moved away): the root's own
 *  sha256 check passes and no chunk was asked for. */
async function bootWithoutChunks(img: string) {
  renameSync(join(www, "store/chunks"), join(www, "store/chunks.off"));
  try {
    const before = serve.lines().length;
    await withGuest(boot(img), async (g) => {
      await g.waitEvent("cache.mounted", 150_000);
      await rootBoot(g);
    });
    const lines = serve.lines().slice(before);
    expect(lines.some((l) => l.includes("/store/index"))).toBe(true);
    expect(chunkGets(lines)).toEqual([]);
  } finally {
    renameSync(join(www, "store/chunks.off"), join(www, "store/chunks"));
  }
}

test(
  "first boot fills the stick's cache; the second downloads no chunk (chunks removed from the server)",
  async () => {
    const img = freshStick("stick1.img");
    await withGuest(boot(img), async (g) => {
      const c = await g.waitEvent("cache.mounted", 150_000);
      expect(c.fstype).toBe("vfat");
      await rootBoot(g);
    });
    const gets1 = chunkGets(serve.lines()).length;
    expect(gets1).toBeGreaterThan(0);
    const filled = cacheOnStick(img);
    expect(filled.chunks).toBeGreaterThan(0);
    expect(filled.verify).toMatch(/^0 /);
    await bootWithoutChunks(img);
  },
  T,
);

/** Is the FAT32 filesystem on the stick's ESP marked dirty (mounted read-write, never unmounted)?
 *  Linux keeps that flag in bit 0 of byte 0x41 of the FAT32 boot sector. */
function fatDirty(img: string): boolean {
  const fd = openSync(img, "r");
  try {
    const bs = Buffer.alloc(512);
    readSync(fd, bs, 0, 512, 2 * 1024 * 1024); // the ESP starts at 2 MiB (docs/media.md)
    expect(bs.toString("latin1", 0x52, 0x5a)).toBe("FAT32   ");
    return (bs[0x41]! & 1) === 1;
  } finally {
    closeSync(fd);
  }
}

/** Rewrites the stick's first menu entry's kernel command line (grub.cfg says "edit freely"). */
function editCmdline(img: string, edit: (line: string) => string): void {
  const at = `${img}@@${2 * 1024 * 1024}`;
  const cfg = run(["mtype", "-i", at, "::/boot/grub/grub.cfg"]);
  const first = cfg.split("\n").findIndex((l) => /^\s*linux /.test(l));
  const lines = cfg.split("\n");
  lines[first] = edit(lines[first]!);
  const file = join(tmp, "grub.cfg");
  writeFileSync(file, lines.join("\n"));
  run(["mcopy", "-o", "-i", at, file, "::/boot/grub/grub.cfg"]);
}

test(
  "an idle system fills the cache with the whole image: the next boot reads what the first never did, with no chunk on the server",
  async () => {
    const img = freshStick("stick4.img");
    const stored = readdirSync(join(www, "store/chunks")).reduce((n, d) => n + readdirSync(join(www, "store/chunks", d)).length, 0);
    // First boot: the root reads almost nothing of the image (not its big file) and waits.
    editCmdline(img, (l) => `${l} test.idle`);
    await withGuest(boot(img), async (g) => {
      await g.waitText(/ROOT-IDLE/, 200_000);
      const filled = await g.waitEvent("cache.filled", 120_000);
      expect(filled.stopped).toBeNull();
      expect((filled.fetched as number) + (filled.present as number)).toBe(filled.planned as number);
      // With the whole image on it, the daemon remounts the stick read-only (checked below on the
      // stick's bytes, after a power-off that unmounts nothing).
      await g.waitEvent("cache.readonly", 30_000);
      g.send("\n");
      await g.waitText(/ROOT-DONE/, 30_000);
      expect(g.output).not.toContain("BIG-SHA256");
      expect(await g.exited).toBe(0);
    });
    expect(fatDirty(img)).toBe(false); // clean, though still mounted when the guest powered off
    const onStick = cacheOnStick(img);
    expect(onStick.chunks).toBe(stored); // every chunk of the store, though the boot read few
    expect(onStick.verify).toMatch(/^0 /);
    // Second boot reads the whole big file, with only the index reachable.
    editCmdline(img, (l) => l.replace(/ test\.idle$/, ""));
    await bootWithoutChunks(img);
    // Third boot: no network card at all. The filled stick is the whole system.
    const before = serve.lines().length;
    await withGuest({ ...boot(img), net: ["-nic", "none"] }, async (g) => {
      const w = await g.waitEvent("warning", 150_000);
      expect(String(w.message)).toMatch(/^no network \(.*\): booting the root from the cache medium alone$/);
      await g.waitEvent("cache.mounted", 150_000);
      await rootBoot(g);
    });
    expect(serve.lines().slice(before)).toEqual([]);
  },
  T,
);

const ESP = 2 * 1024 * 1024; // the ESP starts at 2 MiB (docs/media.md)

/** fsck.fat -n (check only) on a copy of the stick's ESP: exit status and output. */
function fsckStick(img: string): { code: number; out: string } {
  const esp = join(tmp, "esp-check.img");
  run(["dd", `if=${img}`, `of=${esp}`, "bs=1M", `skip=${ESP / 1024 / 1024}`, "status=none"]);
  const r = Bun.spawnSync(["fsck.fat", "-n", esp], { stdout: "pipe", stderr: "pipe" });
  rmSync(esp);
  return { code: r.exitCode ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** What a cut can leave on FAT (no journal): a file's directory entry on the stick while the FAT
 *  sectors that allocate its clusters never got there, and the dirty bit still set. */
function cutOffStick(img: string) {
  const at = `${img}@@${ESP}`;
  const junk = join(tmp, "junk.bin");
  writeFileSync(junk, Buffer.alloc(40_000, 7));
  run(["mcopy", "-i", at, junk, "::inetboot-cache/junk.bin"]);
  const fd = openSync(img, "r+");
  try {
    const bs = Buffer.alloc(512);
    readSync(fd, bs, 0, 512, ESP);
    const reserved = bs.readUInt16LE(14), fats = bs[16]!, fatSectors = bs.readUInt32LE(36);
    const clusterBytes = bs.readUInt16LE(11) * bs[13]!;
    const fat = Buffer.alloc(fatSectors * 512);
    readSync(fd, fat, 0, fat.length, ESP + reserved * 512);
    // mtools allocated the new file's clusters last: the highest chain is the junk file's.
    let last = fat.length / 4 - 1;
    while (last > 2 && (fat.readUInt32LE(last * 4) & 0x0fffffff) === 0) last--;
    let first = last;
    while (first > 3 && (fat.readUInt32LE((first - 1) * 4) & 0x0fffffff) === first) first--;
    expect(last - first + 1).toBe(Math.ceil(40_000 / clusterBytes));
    const zeros = Buffer.alloc((last - first + 1) * 4);
    for (let i = 0; i < fats; i++) writeSync(fd, zeros, 0, zeros.length, ESP + (reserved + i * fatSectors) * 512 + first * 4);
    writeSync(fd, Buffer.from([bs[0x41]! | 1]), 0, 1, ESP + 0x41);
  } finally {
    closeSync(fd);
  }
}

test(
  "a stick cut off while written (dirty, an entry on clusters the FAT marks free) is repaired before it is mounted",
  async () => {
    const img = freshStick("stick5.img");
    cutOffStick(img);
    const damaged = fsckStick(img);
    expect(damaged.code).toBe(1);
    expect(damaged.out).toContain("free cluster");
    editCmdline(img, (l) => `${l} test.idle`);
    await withGuest(boot(img), async (g) => {
      const f = await g.waitEvent("cache.fsck", 150_000);
      expect(f.changed).toBe(true);
      expect(f.summary).toMatch(/\d+ files, \d+\/\d+ clusters/);
      await g.waitEvent("cache.mounted", 30_000);
      await g.waitText(/ROOT-IDLE/, 200_000);
      await g.waitEvent("cache.readonly", 150_000); // the whole image written to the repaired stick
      g.send("\n");
      await g.waitText(/ROOT-DONE/, 30_000);
      expect(await g.exited).toBe(0);
    });
    // Checked on the stick's bytes: no damage left, not even the dirty bit.
    const after = fsckStick(img);
    expect(after.out).not.toContain("free cluster");
    expect(after.code).toBe(0);
    const onStick = cacheOnStick(img);
    expect(onStick.chunks).toBeGreaterThan(0);
    expect(onStick.verify).toMatch(/^0 /);
  },
  T,
);

test(
  "the stick rests read-only once the boot stops writing (fill off): clean after a power-off, no fsck at the next boot",
  async () => {
    const img = freshStick("stick6.img");
    editCmdline(img, (l) => `${l} inetboot.fill=off test.idle`);
    const state = (g: Guest) => g.events().filter((e) => e.ev === "cache.readonly" || e.ev === "cache.writable").at(-1)?.ev;
    await withGuest(boot(img), async (g) => {
      await g.waitText(/ROOT-IDLE/, 200_000);
      // nothing more to write (the fill is off): the daemon remounts the stick read-only
      await g.waitFor((g) => state(g) === "cache.readonly", 60_000, "the stick at rest");
      g.send("\n");
      await g.waitText(/ROOT-DONE/, 30_000);
      expect(await g.exited).toBe(0);
    });
    expect(fatDirty(img)).toBe(false); // clean on the stick's bytes, though nobody unmounted it
    const first = cacheOnStick(img);
    expect(first.chunks).toBeGreaterThan(0);
    expect(first.verify).toMatch(/^0 /);
    // The next boot reads the big file too: new chunks, written after the stick is woken again.
    editCmdline(img, (l) => l.replace(/ test\.idle$/, ""));
    await withGuest(boot(img), async (g) => {
      await g.waitEvent("cache.mounted", 150_000);
      expect(g.event("cache.fsck")).toBeUndefined(); // clean: nothing to check
      await rootBoot(g);
    });
    const second = cacheOnStick(img);
    expect(second.chunks).toBeGreaterThan(first.chunks);
    expect(second.verify).toMatch(/^0 /);
  },
  T,
);

test(
  "a stick capped with inetboot.cachesize: another store's old chunks make room, every chunk this boot read stays",
  async () => {
    const img = freshStick("stick7.img");
    // Someone else's chunks, cached a month ago: 40 entries of 256 KiB (10 MiB).
    const other = join(tmp, "other-cache");
    const old = writeOldChunks(other, 40, 256 * 1024);
    run(["mcopy", "-s", "-m", "-i", `${img}@@${2 * 1024 * 1024}`, join(other, "chunks"), "::inetboot-cache"]);
    expect(cacheOnStick(img).chunks).toBe(40);
    // This boot reads ~26 MiB (the root and its 24 MiB file): 36 MiB in all, past a 32 MiB cap.
    const cap = 32 * 1024 * 1024;
    // The fill off: only the boot's own reads make room.
    editCmdline(img, (l) => `${l} inetboot.cachesize=32M inetboot.fill=off test.hold`);
    const state = (g: Guest) => g.events().filter((e) => e.ev === "cache.readonly" || e.ev === "cache.writable").at(-1)?.ev;
    await withGuest(boot(img), async (g) => {
      await g.waitText(/ROOT-HOLD/, 200_000);
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
      const ev = await g.waitEvent("cache.evicted", 60_000);
      expect(ev.count).toBeGreaterThan(0);
      // the stick rests once the evictions and writes are flushed
      await g.waitFor((g) => state(g) === "cache.readonly", 60_000, "the stick at rest");
      g.send("\n");
      await g.waitText(/ROOT-DONE/, 30_000);
      expect(await g.exited).toBe(0);
    });
    const s = cacheOnStick(img);
    expect(s.verify).toMatch(/^0 /);
    expect(s.bytes).toBeLessThanOrEqual(cap);
    const oldLeft = old.filter((n) => s.names.includes(n)).length;
    expect(oldLeft).toBeLessThan(40);
    // Every chunk this boot read is still there: the next boot needs none from the server.
    editCmdline(img, (l) => l.replace(/ test\.hold$/, ""));
    await bootWithoutChunks(img);
  },
  T,
);

test(
  "QEMU killed hard during cold caching boots; the next boot's data is intact",
  async () => {
    const img = freshStick("stick2.img");
    for (const delayMs of [300, 1200, 2500]) {
      const g = new Guest(boot(img));
      try {
        await g.waitEvent("switch_root", 150_000);
        await Bun.sleep(delayMs);
      } finally {
        g.kill(); // SIGKILL: no unmount, no sync
        await g.exited;
      }
    }
    const partial = cacheOnStick(img);
    console.error(`after the kills: ${partial.chunks} chunk entries, ${partial.bad} bad, ${partial.unreadable} unreadable by mtools`);
    // What was cached before a kill is kept: each group commit's flush also carries the renames of
    // the one before, and a quiet second brings one more (on vfat a rename otherwise waits ~30 s
    // for writeback).
    expect(partial.chunks - partial.bad).toBeGreaterThan(0);
    await withGuest(boot(img), async (g) => {
      // Killed while mounted read-write, the stick is dirty: checked and repaired first.
      await g.waitEvent("cache.fsck", 150_000);
      await g.waitEvent("cache.mounted", 150_000);
      await rootBoot(g);
    });
    // Whatever the kills left, nothing bad is served: the guest's own sha256 matched above, and
    // the stick now holds a cache that verifies.
    const after = cacheOnStick(img);
    console.error(`after the next boot: ${after.chunks} chunk entries, ${after.bad} bad, ${after.unreadable} unreadable by mtools`);
    expect(after.chunks - after.bad).toBeGreaterThanOrEqual(partial.chunks - partial.bad);
    expect(after.verify).toMatch(/^0 /);
  },
  T,
);
test(
  "the stick is pulled out mid-boot: the agent falls back to the network and the data stays right",
  async () => {
    const img = freshStick("stick3.img");
    const mon = join(tmp, "monitor.sock");
    await withGuest(boot(img, mon), async (g) => {
      await g.waitEvent("cache.mounted", 150_000);
      await g.waitEvent("switch_root", 150_000);
      await monitorCommand(mon, "device_del stick0"); // the USB stick is gone while the root is being read
      await rootBoot(g);
      expect(g.output).not.toMatch(/I\/O error, dev nbd/);
    });
  },
  T,
);
void rmSync;
