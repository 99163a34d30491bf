// The boot agent, PID 1 inside the initramfs: plan → modules → network → (later stages) → shell.
// It must never exit; any fatal error is shown and the rescue shell opened.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { bootLog as consola } from "../sys/console.ts";
import { parsePlan, type BootPlan } from "../boot/cmdline.ts";
import { emit, enableJsonEvents } from "./events.ts";
import { NETRC_PATH } from "./boot.ts";
import { forbidExit, startReaper } from "./pid1.ts";
import { oneLine } from "../sys/errors.ts";
import { mount } from "../sys/ffi.ts";
import { useNetrcFile } from "../fetch/netrc.ts";
import { proxySettings, viaHost, type Via } from "../fetch/proxy.ts";
import pkg from "../../package.json" with { type: "json" };

function kernelUptime(): number {
  try {
    return Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  } catch {
    return -1;
  }
}

/** Mounts the scratch filesystems the agent itself needs (pre-init did /proc, /sys, /dev). */
function prepareFilesystems() {
  for (const [dir, type, opts] of [
    ["/run", "tmpfs", "mode=0755"],
    ["/tmp", "tmpfs", "mode=1777"],
  ] as const) {
    try {
      mkdirSync(dir, { recursive: true });
      mount(type, dir, type, 0x2 | 0x4, opts);
    } catch (e) {
      consola.warn(oneLine(e));
    }
  }
  for (const dir of ["/etc", "/dev/pts"]) mkdirSync(dir, { recursive: true });
}

let shellOpen = false;

/** Shows a fatal error as an `error` event and hands the console to the rescue shell. */
export async function fatal(err: unknown, step = "boot") {
  const msg = oneLine(err);
  const reason = (err as { reason?: unknown })?.reason;
  emit("error", { step, message: msg, ...(typeof reason === "string" ? { reason } : {}) }, `${step}: ${msg}`);
  await openShell(`${step} failed: ${msg}`);
}

async function openShell(reason?: string) {
  if (shellOpen) return;
  shellOpen = true;
  try {
    const { rescueShell } = await import("./shell/shell.ts");
    await rescueShell(reason);
  } catch (e) {
    consola.error(`rescue shell: ${oneLine(e)}`);
  }
  // Input closed: PID 1 waits forever rather than exit (which would panic the kernel).
  consola.warn("console input closed; the agent stays idle");
  setInterval(() => {}, 1 << 30);
}

async function loadModules(plan: BootPlan) {
  const { openModuleTree, coldplug } = await import("./coldplug.ts");
  const tree = openModuleTree();
  if (!tree) {
    emit("modules.skip", { reason: "no modules.dep" }, "no kernel modules in this initramfs");
    return;
  }
  const r = await coldplug(tree, plan.modules);
  emit("modules.loaded", { loaded: r.loaded, failed: r.failed }, `modules: ${r.loaded.join(" ") || "none"}`);
  for (const f of r.failed) consola.warn(`module ${f.name}: ${f.error}`);
}

async function bringUpNetwork(plan: BootPlan) {
  const { setupNetwork } = await import("../net/setup.ts");
  const { readHandoff } = await import("../boot/handoff.ts");
  // After a kexec from an inetboot stage 1: reuse its lease and mirrors instead of asking again.
  const h = readHandoff();
  if (h) {
    emit("handoff", { from: h.from, iface: h.net?.iface ?? null, mirrors: h.mirrors }, `handoff from ${h.from}`);
    for (const m of h.mirrors) if (!plan.mirrors.includes(m)) plan.mirrors.push(m);
  }
  const net = await setupNetwork({ ...plan, handoff: h?.net ?? undefined });
  // HTTP_PROXY= and friends on the kernel command line: say where requests will go
  const p = proxySettings();
  if (p.http || p.https) {
    const via = (v: Via | null) => (v ? viaHost(v) : null);
    emit("net.proxy", { http: via(p.http), https: via(p.https), noProxy: p.vars.NO_PROXY ?? p.vars.no_proxy ?? null },
      `proxy: ${[p.http && `http:// through ${via(p.http)}`, p.https && `https:// through ${via(p.https)}`].filter(Boolean).join(", ")}`);
  }
  return net;
}

/** A USB mass-storage interface (class 08) has enumerated: its disk is on the way. */
function usbMassStorageSeen(): boolean {
  try {
    return readdirSync("/sys/bus/usb/devices").some((d) => {
      try {
        return readFileSync(`/sys/bus/usb/devices/${d}/bInterfaceClass`, "utf8").trim() === "08";
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/**
 * The USB block cache. USB enumerates after the first coldplug pass and its disks register a while
 * after usb-storage binds, so: with a USB host controller, give enumeration 2 s; once a mass-storage
 * interface shows up, give its disk up to 10 s. Each pass coldplugs again (usb_storage, sd_mod).
 */
async function openCache(plan: BootPlan) {
  if (plan.cache.kind === "off") return null;
  try {
    const { findCacheMedium } = await import("../boot/cache-medium.ts");
    const { loadedModules, openModuleTree, coldplug } = await import("./coldplug.ts");
    const start = Date.now();
    const usbHost = loadedModules().has("usbcore");
    const tree = usbHost ? openModuleTree() : null;
    let deadline = start + (usbHost ? 2000 : 0);
    for (;;) {
      if (tree) await coldplug(tree, [], 1);
      const m = await findCacheMedium(plan.cache);
      if (m) return m;
      if (usbHost && usbMassStorageSeen()) deadline = Math.max(deadline, start + 10_000);
      if (Date.now() >= deadline) return null;
      await Bun.sleep(250);
    }
  } catch (e) {
    emit("warning", { message: `cache: ${oneLine(e)}` }, `cache: ${oneLine(e)}`);
    return null;
  }
}

export async function runAgent() {
  forbidExit((code) => {
    consola.error(`something asked the agent to exit (code ${code}); PID 1 stays up`);
    void openShell("exit requested");
  });
  process.on("uncaughtException", (e) => void fatal(e, "uncaught"));
  process.on("unhandledRejection", (e) => void fatal(e, "uncaught"));

  let cmdline = "";
  try {
    cmdline = readFileSync("/proc/cmdline", "utf8").trim();
  } catch (e) {
    consola.error(oneLine(e));
  }
  // (INETBOOT_CMDLINE: a stand-in line for running the agent off PID 1; as PID 1 the kernel's own)
  const plan = parsePlan((process.pid !== 1 && process.env.INETBOOT_CMDLINE) || cmdline);
  // Extra CA certificates built into the initramfs (`inetboot initramfs --ca`) are
  // trusted by every HTTPS fetch, in the agent and in the NBD daemon it starts.
  if (existsSync("/etc/inetboot/ca.pem")) process.env.INETBOOT_CA_FILE ??= "/etc/inetboot/ca.pem";
  // Store passwords kept out of the kernel command line (`inetboot initramfs --netrc`).
  if (existsSync(NETRC_PATH)) process.env.INETBOOT_NETRC ??= NETRC_PATH;
  enableJsonEvents(plan.logJson);
  emit("agent.start", { version: pkg.version, uptime: kernelUptime(), pid: process.pid, cmdline }, `inetboot ${pkg.version} starting`);
  for (const w of plan.warnings) emit("warning", { message: w }, w);

  try {
    if (process.pid === 1) {
      prepareFilesystems();
      startReaper();
    }
    useNetrcFile(process.env.INETBOOT_NETRC); // a malformed file: one line and the shell, before any request
    await loadModules(plan);
    let net: Awaited<ReturnType<typeof bringUpNetwork>> = null;
    let offline: unknown = null;
    try {
      net = await bringUpNetwork(plan);
    } catch (e) {
      offline = e;
    }
    const cache = await openCache(plan);
    if (offline !== null) {
      // No network (no NIC, no cable, no DHCP server): a root store whose chunks and index a
      // filled cache medium holds still boots (the daemon opens the store from its cached index)
      if (!(plan.root && cache)) throw offline;
      const why = oneLine(offline);
      emit("warning", { message: `no network (${why}): booting the root from the cache medium alone`, offline: true }, `no network (${why}): booting the root from the cache medium alone`);
    }
    if (plan.shell) return await openShell("inetboot.shell given");
    if (plan.url || plan.root || plan.script) {
      const { bootFromPlan } = await import("./boot.ts");
      await bootFromPlan(plan, net, { shell: (r) => openShell(r), cache });
      return;
    }
    await openShell("nothing to boot: give inetboot.url=, inetboot.root= or inetboot.script=");
  } catch (e) {
    await fatal(e);
  }
}

/** For tests and the rescue path: write a file without throwing. */
export function tryWrite(path: string, data: string) {
  try {
    writeFileSync(path, data);
  } catch {
    /* best effort */
  }
}
