// Network root: NBD daemon → /dev/nbdN → mount (read-only) → optional loop-mounted image inside →
// overlayfs with a tmpfs upper layer → switch_root into the image's init.
import { existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync } from "node:fs";
import type { BootPlan } from "./cmdline.ts";
import type { NetResult } from "../net/setup.ts";
import { emit, uptime } from "../agent/events.ts";
import { UserError } from "../sys/errors.ts";
import { mount, MS } from "../sys/ffi.ts";
import { writeFileSync } from "node:fs";
import { detectFs, PROBE_BYTES, type FsType } from "./fsdetect.ts";
import { DAEMON_ROLE, type DaemonConfig } from "../nbd/daemon.ts";
import { trackChild } from "../agent/pid1.ts";
import type { CacheMedium } from "./cache-medium.ts";
import { proxyEnvVars } from "../fetch/proxy.ts";

const RUN = "/run/inetboot";
const FS_MODULES: Record<string, string> = { squashfs: "squashfs", ext4: "ext4", erofs: "erofs", iso9660: "isofs", vfat: "vfat" };

async function loadModule(name: string) {
  const { loadModulesByName } = await import("../agent/coldplug.ts");
  loadModulesByName([name]);
}

function probeFs(dev: string): FsType | null {
  const fd = openSync(dev, "r");
  try {
    const b = new Uint8Array(PROBE_BYTES);
    const n = readSync(fd, b, 0, b.byteLength, 0);
    return detectFs(b.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

async function mountImage(dev: string, dir: string, wanted: string | undefined, what: string): Promise<string> {
  const fstype = wanted ?? probeFs(dev);
  if (!fstype) throw new UserError(`${what}: not a filesystem inetboot can mount (squashfs, ext4, erofs, iso9660, vfat); set inetboot.rootfstype=`);
  const mod = FS_MODULES[fstype];
  if (mod) await loadModule(mod);
  mkdirSync(dir, { recursive: true });
  mount(dev, dir, fstype, MS.RDONLY, fstype === "ext4" ? "noload" : null);
  return fstype;
}

/** Starts the NBD daemon (a second copy of this executable) and waits until it serves. */
async function startDaemon(cfg: DaemonConfig, timeoutMs = 90_000): Promise<void> {
  const p = Bun.spawn([process.execPath], {
    argv0: "@inetboot-nbd",
    // process.env carries the JSC options /init gave the agent (initramfs/init.c says why).
    env: { ...process.env, ...proxyEnvVars(), INETBOOT_ROLE: DAEMON_ROLE, INETBOOT_NBD: JSON.stringify(cfg) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  trackChild(p.pid);
  let exited: number | null = null;
  void p.exited.then((c) => (exited = c));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(cfg.readyFile)) return;
    if (exited !== null) {
      const why = existsSync(cfg.errorFile) ? readFileSync(cfg.errorFile, "utf8") : `exit status ${exited}`;
      throw new UserError(`NBD server for ${cfg.url}: ${why}`);
    }
    await Bun.sleep(25);
  }
  throw new UserError(`NBD server for ${cfg.url}: not ready after ${timeoutMs / 1000} s`);
}

/** Kernel read-ahead on the NBD device in KiB: the kernel's default, set explicitly. 1024 gave no
 *  measurable gain on the squashfs demo root (bench/README.md, boot-prefetch): squashfs reads its
 *  blocks with its own bios, and our server already reads ahead whole chunks.
 *  INETBOOT_READ_AHEAD_KB=N on the kernel command line (it reaches init's environment) overrides it. */
const READ_AHEAD_KB = 128;

function setReadAhead(index: number): number | null {
  const want = Number(process.env.INETBOOT_READ_AHEAD_KB ?? READ_AHEAD_KB);
  if (!Number.isInteger(want) || want < 0) return null;
  try {
    writeFileSync(`/sys/block/nbd${index}/queue/read_ahead_kb`, String(want));
    return want;
  } catch (e) {
    emit("warning", { message: `read_ahead_kb on nbd${index}: ${(e as Error).message}` });
    return null;
  }
}

export interface MountedRoot {
  newRoot: string;
  device: string;
  fstype: string;
}

export async function assembleRoot(plan: BootPlan, url: string, _net: NetResult | null, cache: CacheMedium | null = null): Promise<MountedRoot> {
  mkdirSync(RUN, { recursive: true });
  await loadModule("nbd");
  const cfg: DaemonConfig = {
    url, mirrors: plan.mirrors, socket: `${RUN}/nbd.sock`, readyFile: `${RUN}/nbd.ready`, errorFile: `${RUN}/nbd.error`,
    // The daemon takes the cache medium over: it stays mounted where the agent put it, in the
    // initramfs, out of the booted system's sight.
    cacheDir: cache?.dir, cacheMount: cache?.mountpoint, cacheMaxBytes: plan.cacheSize, fill: plan.fill,
    record: plan.record, recordWindowMs: plan.recordSeconds ? Math.round(plan.recordSeconds * 1000) : undefined, events: plan.logJson, t0: uptime(),
    indexSha256: plan.rootSha256,
  };
  await startDaemon(cfg);
  const { attachNbd, waitForDevice } = await import("../nbd/kernel/attach.ts");
  const att = attachNbd({ socketPath: cfg.socket });
  await waitForDevice(att.index);
  const readAheadKb = setReadAhead(att.index);
  emit("nbd.attached", { device: att.device, size: att.size, url, readAheadKb }, `${att.device}: ${att.size} bytes from ${url}`);

  const image = `${RUN}/image`;
  let fstype = await mountImage(att.device, image, plan.rootpath ? undefined : plan.rootfstype, url);
  let lower = image;
  if (plan.rootpath) {
    const inner = `${image}/${plan.rootpath.replace(/^\/+/, "")}`;
    if (!existsSync(inner)) throw new UserError(`inetboot.rootpath=${plan.rootpath}: no such file in the image`);
    await loadModule("loop");
    const { attachLoop } = await import("../sys/loop.ts");
    const loop = await attachLoop(inner);
    fstype = await mountImage(loop, `${RUN}/inner`, plan.rootfstype, `inetboot.rootpath=${plan.rootpath}`);
    lower = `${RUN}/inner`;
  }
  // A read-only store boots a writable system: writes land in tmpfs.
  await loadModule("overlay");
  mkdirSync(`${RUN}/rw`, { recursive: true });
  mount("tmpfs", `${RUN}/rw`, "tmpfs", 0, "mode=0755");
  mkdirSync(`${RUN}/rw/upper`, { recursive: true });
  mkdirSync(`${RUN}/rw/work`, { recursive: true });
  mkdirSync("/sysroot", { recursive: true });
  mount("overlay", "/sysroot", "overlay", 0, `lowerdir=${lower},upperdir=${RUN}/rw/upper,workdir=${RUN}/rw/work`);
  emit("root.mounted", { device: att.device, fstype, rootpath: plan.rootpath ?? null, overlay: true }, `root: ${fstype} on ${att.device} (overlay on tmpfs)`);
  return { newRoot: "/sysroot", device: att.device, fstype };
}
