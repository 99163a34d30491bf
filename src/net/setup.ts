// Network bring-up for the agent: lo up, pick the interface, DHCP or static ip=, routes,
// /etc/resolv.conf and /etc/hosts. Emits `net.up` and `dhcp.*` events.
import { writeFileSync } from "node:fs";
import { bootLog as consola } from "../sys/console.ts";
import { emit } from "../agent/events.ts";
import { UserError } from "../sys/errors.ts";
import { acquireLease, type DhcpLease } from "./dhcp/client.ts";
import type { ClasslessRoute } from "./dhcp/options.ts";
import { udpTransport } from "./dhcp/udp.ts";
import {
  clearAddress, getAddress, interfaceExists, listInterfaces, pickInterface, readMac, readMtu, setAddress, setMtu, setUp, waitCarrier,
} from "./iface.ts";
import { DEFAULT_IP, type IpConfig, type IpStatic, parseIpParam } from "./ipconfig.ts";
import { addRoute } from "./route.ts";
import { writeHosts, writeResolvConf } from "./resolv.ts";
import { formatMac } from "./addr.ts";

export interface NetResult {
  iface: string;
  address: string;
  prefix: number;
  gateway: string | null;
  dns: string[];
  mtu: number | null;
  hostname: string | null;
  domain: string | null;
  via: "dhcp" | "static" | "handoff";
  /** DHCP only: the server's classless static routes (option 121), carried by a kexec handoff */
  routes?: ClasslessRoute[];
  /** DHCP only */
  leaseSeconds?: number;
  serverId?: string;
}

export interface NetLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface SetupOptions {
  /** where etc/resolv.conf and etc/hosts go (default "/") */
  root?: string;
  /** how long to wait for carrier after bringing interfaces up (default 5 s) */
  carrierWaitMs?: number;
  /** overall DHCP deadline (default 30 s) */
  dhcpTimeoutMs?: number;
  /** write /proc/sys/kernel/hostname (default: only when root is "/") */
  setKernelHostname?: boolean;
}

export interface NetPlan {
  /** parsed ip=, or the raw value from the command line (parsed here), or undefined for the default dhcp */
  ip?: IpConfig | string;
  nodhcp: boolean;
  /** the previous stage's configuration (kexec handoff): reused instead of a second DHCP exchange */
  handoff?: NetResult;
}

/** Human lines go to consola (stderr) unless the caller passes its own logger. */
const consolaLog: NetLogger = { info: (m) => consola.info(m), warn: (m) => consola.warn(m) };

/**
 * Configures the network as the plan says. Returns null when the plan asks for no network
 * (ip=off, or nodhcp without a static address); throws UserError/SysError with one line on failure.
 */
export async function setupNetwork(plan: NetPlan, log: NetLogger = consolaLog, opts: SetupOptions = {}): Promise<NetResult | null> {
  const ip: IpConfig = typeof plan.ip === "string" ? parseIpParam(plan.ip) : (plan.ip ?? DEFAULT_IP);
  loopbackUp(log);
  if (ip.mode === "off") {
    log.info("network: ip=off, not configuring interfaces");
    return null;
  }
  if (ip.mode === "dhcp" && plan.nodhcp) {
    log.info("network: nodhcp given and no static ip=, not configuring interfaces");
    return null;
  }
  if (plan.handoff && ip.mode === "dhcp" && interfaceExists(plan.handoff.iface)) {
    const out = configureHandoff(plan.handoff, log, opts);
    announce(out);
    return out;
  }
  const ifname = await chooseInterface(ip.device, log, opts.carrierWaitMs ?? 5000);
  const res = ip.mode === "static" ? configureStatic(ifname, ip, opts) : await dhcpConfigure(ifname, ip.hostname, log, opts);
  announce(res);
  return res;
}

/** One DHCP run on `iface` (default: interface choice as at boot), for the rescue shell's `dhcp`. */
export async function dhcpOnce(iface?: string, log: NetLogger = consolaLog, opts: SetupOptions = {}): Promise<NetResult> {
  loopbackUp(log);
  const ifname = await chooseInterface(iface, log, opts.carrierWaitMs ?? 5000);
  const res = await dhcpConfigure(ifname, undefined, log, opts);
  announce(res);
  return res;
}

const silentLog: NetLogger = { info() {}, warn() {} };

function announce(r: NetResult) {
  emit(
    "net.up",
    { iface: r.iface, address: r.address, prefix: r.prefix, gateway: r.gateway, dns: r.dns, via: r.via, mtu: r.mtu, hostname: r.hostname },
    `network: ${r.iface} ${r.address}/${r.prefix}${r.gateway ? ` via ${r.gateway}` : ""}${r.dns.length ? ` dns ${r.dns.join(",")}` : ""} (${r.via})`,
  );
}

function loopbackUp(log: NetLogger) {
  try {
    setUp("lo");
    // The kernel gives lo 127.0.0.1/8 when it comes up; set it ourselves if it did not.
    if (!getAddress("lo")) setAddress("lo", "127.0.0.1", 8);
  } catch (e) {
    log.warn(`network: could not bring lo up: ${(e as Error).message}`);
  }
}

async function chooseInterface(device: string | undefined, log: NetLogger, carrierWaitMs: number): Promise<string> {
  if (device) {
    if (!interfaceExists(device)) {
      const have = listInterfaces();
      throw new UserError(`ip=: device '${device}' not found (have: ${have.length ? have.join(", ") : "none"})`);
    }
    setUp(device);
    if (!(await waitCarrier(device, carrierWaitMs))) log.warn(`network: ${device} has no carrier after ${carrierWaitMs / 1000} s, trying anyway`);
    return device;
  }
  const candidates = listInterfaces();
  if (candidates.length === 0) throw new UserError("network: no Ethernet interface found (is the NIC driver loaded?)");
  const { ifname, carrier } = await pickInterface(candidates, carrierWaitMs);
  if (!carrier) log.warn(`network: no interface got carrier within ${carrierWaitMs / 1000} s (${candidates.join(", ")}); trying ${ifname}`);
  else if (candidates.length > 1) log.info(`network: using ${ifname} (first with carrier of ${candidates.join(", ")})`);
  return ifname;
}

function configureStatic(ifname: string, ip: IpStatic, opts: SetupOptions): NetResult {
  setUp(ifname);
  setAddress(ifname, ip.address, ip.prefix);
  if (ip.gateway) addRoute({ dest: "0.0.0.0", prefix: 0, gateway: ip.gateway, dev: ifname });
  writeNames(opts, { dns: ip.dns, hostname: ip.hostname, address: ip.address });
  return {
    iface: ifname, address: ip.address, prefix: ip.prefix, gateway: ip.gateway ?? null, dns: ip.dns, mtu: readMtu(ifname),
    hostname: ip.hostname ?? null, domain: null, via: "static",
  };
}

/** Stage 1's configuration, as its DHCP lease left it: MTU, address, classless routes or gateway. */
function configureHandoff(h: NetResult, log: NetLogger, opts: SetupOptions): NetResult {
  setUp(h.iface);
  applyLease(h.iface, { address: h.address, prefix: h.prefix, mtu: h.mtu ?? undefined, routes: h.routes ?? [], router: h.gateway ?? undefined }, log);
  writeNames(opts, { dns: h.dns, domain: h.domain ?? undefined, hostname: h.hostname ?? undefined, address: h.address });
  return { ...h, mtu: readMtu(h.iface), via: "handoff" };
}

async function dhcpConfigure(ifname: string, wantHostname: string | undefined, log: NetLogger, opts: SetupOptions): Promise<NetResult> {
  const mac = readMac(ifname);
  setUp(ifname);
  const transport = udpTransport(ifname);
  let lease: DhcpLease;
  try {
    lease = await acquireLease({
      transport,
      mac,
      ifname,
      hostname: wantHostname,
      timeoutMs: opts.dhcpTimeoutMs,
      onStep: (step, fields) => emit(step, fields),
    });
  } finally {
    transport.close();
  }
  log.info(`network: ${ifname} (${formatMac(mac)}) leased ${lease.address}/${lease.prefix} from ${lease.serverId}`);
  applyLease(ifname, lease, log);
  // The user's ip= hostname wins over the server's, as in the kernel's ipconfig.
  const hostname = wantHostname ?? lease.hostname;
  writeNames(opts, { dns: lease.dns, domain: lease.domain, hostname, address: lease.address });
  const res: NetResult = {
    iface: ifname, address: lease.address, prefix: lease.prefix, gateway: lease.router ?? null, dns: lease.dns,
    mtu: readMtu(ifname), hostname: hostname ?? null, domain: lease.domain ?? null, via: "dhcp", serverId: lease.serverId,
  };
  if (lease.leaseSeconds !== undefined) res.leaseSeconds = lease.leaseSeconds;
  if (lease.routes.length) res.routes = lease.routes;
  return res;
}

/** Puts a lease (a DHCP one, or stage 1's from a kexec handoff) on the interface: MTU, address, then
 *  routes (on-link first, default last). */
export function applyLease(ifname: string, lease: Pick<DhcpLease, "address" | "prefix" | "mtu" | "routes" | "router">, log: NetLogger = silentLog): void {
  if (lease.mtu && lease.mtu !== readMtu(ifname)) {
    try {
      setMtu(ifname, lease.mtu);
    } catch (e) {
      log.warn(`network: ignoring DHCP MTU ${lease.mtu}: ${(e as Error).message}`);
    }
  }
  clearAddress(ifname);
  setAddress(ifname, lease.address, lease.prefix);
  addRoutes(ifname, lease.routes, lease.router ?? null);
}

/** Classless routes when there are any (on-link first, default last), else a default via `router`. */
function addRoutes(ifname: string, routes: ClasslessRoute[], router: string | null): void {
  if (routes.length) {
    const ordered = [...routes].sort((a, b) => rank(a) - rank(b));
    for (const r of ordered) addRoute({ dest: r.dest, prefix: r.prefix, gateway: r.gateway, dev: ifname });
  } else if (router) {
    addRoute({ dest: "0.0.0.0", prefix: 0, gateway: router, dev: ifname });
  }
}
function rank(r: { prefix: number; gateway: string }): number {
  if (r.gateway === "0.0.0.0") return 0;
  return r.prefix === 0 ? 2 : 1;
}

/** resolv.conf and hosts under opts.root, and the kernel's hostname when configuring this system. */
function writeNames(opts: SetupOptions, n: { dns: string[]; domain?: string; hostname?: string; address: string }): void {
  const root = opts.root ?? "/";
  writeResolvConf(root, n.dns, n.domain);
  writeHosts(root, n.hostname, n.address, n.domain);
  if (n.hostname) setKernelHostname(n.hostname, opts);
}

function setKernelHostname(name: string, opts: SetupOptions) {
  const doIt = opts.setKernelHostname ?? (opts.root ?? "/") === "/";
  if (!doIt) return;
  try {
    writeFileSync("/proc/sys/kernel/hostname", name);
  } catch {
    // not fatal: /etc/hosts still has it
  }
}
