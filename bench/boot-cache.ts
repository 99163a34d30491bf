// Issue 6: the Debian demo booted from the USB stick (`inetboot usb`: SeaBIOS → GRUB → our kernel
// and initramfs, the stick attached as usb-storage) twice: the first boot finds an empty
// inetboot-cache/ and fills it, the second boots warm. Against three local-disk boots of the same
// system without inetboot, measured in the same run:
//   - QEMU -kernel/-initrd: the squashfs with test/lib/direct-boot.ts's busybox initramfs, which
//     does nothing but mount it (the limit: no firmware, no udev);
//   - as a PC boots its own disk: SeaBIOS → GRUB on a virtio disk (a stick image built by
//     `inetboot usb --initrd <that initramfs>`) → kernel → the squashfs on a second virtio disk;
//   - as Debian installs it (bench/lib/debian-install.ts): SeaBIOS → GRUB → kernel with Debian's
//     own initramfs (initramfs-tools, udev, MODULES=most) → the same tree on an ext4 disk with an
//     installer's fstab, `root=UUID=… ro`. What a Debian user's local disk boot is.
// Printed per boot: time from QEMU start to INETBOOT-DEMO-MARKER, the guest kernel's uptime at the
// marker (which leaves out SeaBIOS and GRUB loading the kernel and 65 MB initramfs over USB), and
// chunk bytes served, counted from nginx's access log (whole boot, up to power-off).
// The cold boot waits for the daemon's cache fill (the chunks the boot did not read, fetched while
// the system idles: cache.filled), then is powered off from its shell (poweroff) so the cache it
// wrote reaches the stick.
//
//   bun bench/boot-cache.ts [--runs N] [--rate MBIT --rtt MS] [--echo]
// Each round (default 2) boots the three local disks, then a fresh stick cold, then warm; rows show the fastest.
// Default: nginx on loopback. --rate/--rtt put it behind the shaped link of boot-shaped.ts.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO_DIR } from "../test/lib/demo-root.ts";
import { buildDirectInitrd, directGuest } from "../test/lib/direct-boot.ts";
import { BUILD, Guest } from "../test/lib/qemu.ts";
import { run } from "../test/lib/sh.ts";
import { freePort } from "../test/lib/servers.ts";
import { demoStore, INETBOOT, load, markerTime, mib, ratio, say, secs, table, timeline, type MarkerTime } from "./lib/demo.ts";
import { atExit } from "../test/lib/cleanup.ts";
import { debianInstall } from "./lib/debian-install.ts";
import { startShapedStore, type ShapedStore } from "./lib/shaped-link.ts";
import { startNginxAt, tally, type NginxServer } from "./lib/nginx.ts";

const argv = process.argv.slice(2);
const opt = (f: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? Number(argv[i + 1]) : undefined;
};
const RATE = opt("--rate");
const RTT = opt("--rtt") ?? (RATE ? 40 : undefined);
const ECHO = argv.includes("--echo");
const RUNS = opt("--runs") ?? 2;
const CONSOLES = join(BUILD, "bench/cache");

// Every boot of this bench runs on a machine without QEMU's default legacy devices (an empty floppy
// drive and IDE DVD-ROM): Debian's initramfs loads their drivers and probes them, ~4 s under TCG
// (bench/README.md), which would charge the installed system for hardware no peer uses.
const MACHINE = ["-nodefaults"];

// bootindex only when the firmware boots the stick: -kernel takes index 0 itself.
const stickArgs = (img: string, boot = true) => [
  ...MACHINE, "-device", "qemu-xhci", "-drive", `if=none,id=stick,format=raw,file=${img}`, "-device", `usb-storage,drive=stick${boot ? ",bootindex=0" : ""}`,
];

interface Boot {
  t: MarkerTime;
  /** chunk GETs / bytes logged by the time the marker appeared */
  markerChunkRequests: number;
  markerChunkBytes: number;
  chunkBytes: number;
  chunkRequests: number;
  bytes: number;
  poweredOff: boolean;
  timeline: string;
  /** the agent's cache.mounted event: which filesystem held inetboot-cache/, or "none" */
  cache: string;
  /** paths of the chunks GET'ed, to power-off (a warm boot's should be empty) */
  chunkPaths: string[];
  /** the daemon's cache.filled event: chunks fetched while idle after the boot */
  fill?: { fetched: number; present: number; bytes: number; ms: number; stopped: string | null };
}

function cacheSeen(g: Guest): string {
  const e = g.event("cache.mounted");
  return e ? `${e.device} ${e.fstype}` : "none";
}

/** Like markerTime(), but keeps QEMU running after the marker to power off from the shell. */
async function timedBoot(srv: NginxServer, mk: () => Guest, name: string): Promise<Boot> {
  const before = srv.log().length;
  const t0 = Date.now();
  const g = mk();
  const forget = atExit(() => g.kill());
  try {
    const m = await g.waitText(/INETBOOT-DEMO-MARKER.*uptime=([\d.]+)\s/, 300_000);
    const t: MarkerTime = { ms: Date.now() - t0, uptime: Number(m[1]) };
    const atMarker = tally(srv.log().slice(before));
    let poweredOff = false;
    let fill: Boot["fill"];
    try {
      // The daemon fills the stick with the chunks the boot did not read once the system idles
      // (inetboot.fill, on by default); wait for that before powering off.
      const f = await g.waitEvent("cache.filled", 180_000).catch(() => null);
      if (f) fill = { fetched: f.fetched as number, present: f.present as number, bytes: f.bytes as number, ms: f.ms as number, stopped: (f.stopped as string | null) ?? null };
      await g.waitText(/root@inetboot-demo:~# /, 120_000);
      g.send("sync; poweroff");
      poweredOff = await Promise.race([g.exited.then(() => true), Bun.sleep(120_000).then(() => false)]);
    } catch {
      /* no shell: killed below, the figures stand */
    }
    const lines = srv.log().slice(before);
    const c = tally(lines);
    const chunkPaths = lines.filter((l) => l.path.includes("/chunks/")).map((l) => l.path);
    return { chunkPaths, fill, t, markerChunkRequests: atMarker.chunkRequests, markerChunkBytes: atMarker.chunkBytes, chunkBytes: c.chunkBytes, chunkRequests: c.chunkRequests, bytes: c.bytes, poweredOff, timeline: timeline(g, t), cache: cacheSeen(g) };
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(`${msg.split("\n")[0]}\n--- console tail ---\n${g.tail(3000)}`);
  } finally {
    g.kill();
    await g.exited;
    forget();
    // The console, for the guest's own timeline (every @inetboot event carries its time).
    mkdirSync(CONSOLES, { recursive: true });
    writeFileSync(join(CONSOLES, `${name}.log`), g.output);
  }
}

async function main() {
  const root = demoStore();
  const image = statSync(root.squashfs).size;
  const loadBefore = load();
  const work = mkdtempSync(join(tmpdir(), "inetboot-bench-cache-"));
  atExit(() => rmSync(work, { recursive: true, force: true }));
  let shaped: ShapedStore | undefined;
  let srv: NginxServer | undefined;
  try {
    let guestPort: number;
    if (RATE) {
      shaped = await startShapedStore({ root: DEMO_DIR, workDir: join(work, "ngx"), rateMbit: RATE, rttMs: RTT! });
      srv = shaped.nginx;
      guestPort = shaped.port;
    } else {
      guestPort = freePort();
      srv = await startNginxAt({ root: DEMO_DIR, workDir: join(work, "ngx"), host: "127.0.0.1", port: guestPort });
    }
    const link = RATE ? `${RATE} Mbit/s tbf + ${RTT} ms RTT proxy` : "nginx on loopback, no shaping";
    const cmdline = `inetboot.root=http://10.0.2.2:${guestPort}/store/ inetboot.rootfstype=squashfs inetboot.log=json panic=-1`;
    const stick = join(work, "stick.img");
    say(`building the stick: ${cmdline}`);
    run([INETBOOT, "usb", "--out", stick, "--size", "512M", "--serial", "--timeout", "0", "--entry", `Debian demo over inetboot|${cmdline}`]);
    // The local disk as a PC boots it: GRUB and the kernel on one virtio disk, the root on another
    // (in the lower PCI slot, so the kernel calls it vda, where the reference initramfs looks).
    const localDisk = join(work, "local-disk.img");
    run([INETBOOT, "usb", "--out", localDisk, "--size", "512M", "--serial", "--timeout", "0", "--initrd", buildDirectInitrd(), "--entry", "Debian demo, local disk|direct.fstype=squashfs panic=-1"]);
    const inst = debianInstall(root, say);
    const debianDisk = join(work, "debian-disk.img");
    run([INETBOOT, "usb", "--out", debianDisk, "--size", "512M", "--serial", "--timeout", "0", "--initrd", inst.initrd, "--entry", `Debian demo, installed|${inst.cmdline} panic=-1`]);
    say(`demo root ${mib(image)}; ${link}; load ${loadBefore}`);

    const localBoot = async () => {
      const t0 = Date.now();
      const gl = directGuest({ image: root.squashfs, fstype: "squashfs", echo: ECHO, extra: MACHINE });
      const t = await markerTime(gl, t0);
      return { ...t, timeline: timeline(gl, t) };
    };
    /** A PC booting its own disks: SeaBIOS → GRUB on `bootDisk` → the root on `rootDrive` (a -drive
     *  spec). Fixed PCI slots: the root's comes first, so the kernel names it vda. */
    const firmwareDiskBoot = async (rootDrive: string, bootDisk: string) => {
      const t0 = Date.now();
      const gl = new Guest({
        firmware: true, net: ["-nic", "none"], echo: ECHO,
        extra: [
          ...MACHINE,
          "-drive", `if=none,id=root,format=raw,${rootDrive}`, "-device", "virtio-blk-pci,drive=root,addr=0x8",
          "-drive", `if=none,id=boot,format=raw,readonly=on,file=${bootDisk}`, "-device", "virtio-blk-pci,drive=boot,addr=0x9,bootindex=0",
        ],
      });
      const t = await markerTime(gl, t0);
      return { ...t, timeline: timeline(gl, t) };
    };
    const localFirmwareBoot = () => firmwareDiskBoot(`readonly=on,file=${root.squashfs}`, localDisk);
    // snapshot=on: the installed system's writes (journal, logs) go to a temporary overlay, so every round starts clean
    const debianBoot = () => firmwareDiskBoot(`snapshot=on,file=${inst.ext4}`, debianDisk);
    type Local = Awaited<ReturnType<typeof localBoot>>;
    const rounds: { local: Local; localFw: Local; localDeb: Local; cold: Boot; warm: Boot }[] = [];
    for (let round = 1; round <= RUNS; round++) {
      say(`round ${round}/${RUNS}: local virtio disk, no inetboot`);
      const local = await localBoot();
      say(`    marker after ${secs(local.ms)}`);
      say(`round ${round}/${RUNS}: local virtio disk through SeaBIOS + GRUB, no inetboot`);
      const localFw = await localFirmwareBoot();
      say(`    marker after ${secs(localFw.ms)}`);
      say(`round ${round}/${RUNS}: the same system installed on an ext4 disk, Debian's initramfs, SeaBIOS + GRUB`);
      const localDeb = await debianBoot();
      say(`    marker after ${secs(localDeb.ms)}`);
      // A fresh copy of the new stick each round: its inetboot-cache/ is empty.
      const img = join(work, `stick-${round}.img`);
      copyFileSync(stick, img);
      const usb = () => new Guest({ firmware: true, extra: stickArgs(img), echo: ECHO });
      say(`round ${round}/${RUNS}: USB stick, cold cache (fills inetboot-cache/)`);
      const cold = await timedBoot(srv, usb, `round${round}-cold`);
      say(`    marker after ${secs(cold.t.ms)}, chunks ${mib(cold.chunkBytes)} in ${cold.chunkRequests} GETs, cache ${cold.cache}, powered off: ${cold.poweredOff}`);
      say(`round ${round}/${RUNS}: USB stick, warm cache`);
      const warm = await timedBoot(srv, usb, `round${round}-warm`);
      say(`    marker after ${secs(warm.t.ms)}, chunks ${mib(warm.chunkBytes)} in ${warm.chunkRequests} GETs, cache ${warm.cache}`);
      rmSync(img, { force: true });
      rounds.push({ local, localFw, localDeb, cold, warm });
    }

    // Fastest of the rounds per kind of boot; ratios of those, and per round.
    const fastest = <T extends { ms: number }>(xs: T[]) => xs.reduce((x, y) => (y.ms < x.ms ? y : x));
    const local = fastest(rounds.map((r) => r.local));
    const localFw = fastest(rounds.map((r) => r.localFw));
    const localDeb = fastest(rounds.map((r) => r.localDeb));
    const cold = fastest(rounds.map((r) => ({ ...r.cold, ms: r.cold.t.ms })));
    const warm = fastest(rounds.map((r) => ({ ...r.warm, ms: r.warm.t.ms })));
    const rows: [string, MarkerTime & { timeline: string }, Boot | undefined][] = [
      ["local virtio disk (direct-boot, -kernel)", local, undefined],
      ["local virtio disk, SeaBIOS + GRUB (as a PC boots its disk)", localFw, undefined],
      ["installed: ext4 disk, Debian's initramfs, SeaBIOS + GRUB", localDeb, undefined],
      ["USB stick, cold cache", { ...cold.t, timeline: cold.timeline }, cold],
      ["USB stick, warm cache", { ...warm.t, timeline: warm.timeline }, warm],
    ];
    const warmChunkGets = rounds.reduce((a, r) => a + r.warm.chunkRequests, 0);
    const warmMarkerGets = rounds.reduce((a, r) => a + r.warm.markerChunkRequests, 0);
    const out = [
      "",
      `boot-cache: Debian demo root ${mib(image)} squashfs; ${link}`,
      `load average before: ${loadBefore}, after: ${load()}`,
      "",
      table(
        ["boot", "QEMU start → marker", "× local", "× local via GRUB", "× installed", "guest uptime at marker", "× local", "chunk GETs to marker / to power-off", "chunk bytes to marker / to power-off", "all bytes served", "cache medium", "guest timeline (kernel uptime)"],
        rows.map(([name, t, b]) => [
          name, secs(t.ms), ratio(t.ms, local.ms), ratio(t.ms, localFw.ms), ratio(t.ms, localDeb.ms), `${t.uptime.toFixed(1)} s`, ratio(t.uptime, local.uptime),
          b ? `${b.markerChunkRequests} / ${b.chunkRequests}` : "—", b ? `${mib(b.markerChunkBytes)} / ${mib(b.chunkBytes)}` : "—", b ? mib(b.bytes) : "—", b ? b.cache : "—", t.timeline,
        ]),
        [false, true, true, true, true, true, true, true, true, true, false, false],
      ),
      "",
      `fastest of ${RUNS} rounds per row; every round (local / local via GRUB / installed / cold / warm, warm÷local, warm÷local via GRUB, warm÷installed): ${rounds
        .map((r) => `${secs(r.local.ms)} / ${secs(r.localFw.ms)} / ${secs(r.localDeb.ms)} / ${secs(r.cold.t.ms)} / ${secs(r.warm.t.ms)}, ${ratio(r.warm.t.ms, r.local.ms)}, ${ratio(r.warm.t.ms, r.localFw.ms)}, ${ratio(r.warm.t.ms, r.localDeb.ms)}`)
        .join("; ")}`,
      `agent's cache medium per round (cold/warm): ${rounds.map((r) => `${r.cold.cache} / ${r.warm.cache}`).join("; ")}`,
      `cold boots powered off cleanly: ${rounds.every((r) => r.cold.poweredOff) ? "yes" : "no (killed: part of a cache may be missing)"}`,
      `cache fill while idle (inetboot.fill), per round: ${rounds.map((r) => (r.cold.fill ? `cold ${r.cold.fill.fetched} chunks, ${mib(r.cold.fill.bytes)} in ${secs(r.cold.fill.ms)}${r.cold.fill.stopped ? ` (stopped: ${r.cold.fill.stopped})` : ""}; warm ${r.warm.fill ? `${r.warm.fill.fetched} fetched, ${r.warm.fill.present} present` : "none"}` : "none seen")).join("; ")}`,
      `goal warm boot fetches no chunk bytes: ${warmMarkerGets} chunk GETs up to the marker, ${warmChunkGets} up to power-off, all warm boots → ${warmChunkGets === 0 ? "met" : warmMarkerGets === 0 ? "met up to the marker only" : "NOT met"}`,
      `goal warm boot ≤ 1.1× local disk: ${ratio(warm.t.ms, localDeb.ms)}× the system installed (Debian's initramfs) → ${warm.t.ms <= 1.1 * localDeb.ms ? "met" : "NOT met"}; ${ratio(warm.t.ms, localFw.ms)}× the busybox-initramfs disk through SeaBIOS + GRUB → ${warm.t.ms <= 1.1 * localFw.ms ? "met" : "NOT met"}; ${ratio(warm.t.ms, local.ms)}× its -kernel boot → ${warm.t.ms <= 1.1 * local.ms ? "met" : "NOT met"}`,
      ...rounds.flatMap((r, i) => (r.warm.chunkPaths.length ? [`warm boot of round ${i + 1} fetched: ${r.warm.chunkPaths.join(" ")}`] : [])),
      "",
    ];
    process.stdout.write(out.join("\n") + "\n");
  } finally {
    if (shaped) await shaped.stop();
    else await srv?.stop().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main();
  process.exit(0);
} catch (e) {
  process.stderr.write(`boot-cache: FAIL: ${(e as Error).message}\n`);
  process.exit(1);
}
