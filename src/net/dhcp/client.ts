// DHCPv4 client state machine (RFC 2131 §4.4): DISCOVER → OFFER → REQUEST → ACK, NAK restarts.
// I/O goes through a two-call transport so the machine runs against a fake server in unit tests;
// udpTransport() is the real one (a UDP socket bound to port 68 on one interface, via src/sys/ffi.ts).
import { UserError } from "../../sys/errors.ts";
import { classfulPrefix, formatMac, maskToPrefix, prefixToMask } from "../addr.ts";
import { type ClasslessRoute, decode, DhcpDecodeError, type DhcpPacket, encode, FLAG_BROADCAST, MSG, MSG_NAMES, OPT, packet } from "./codec.ts";

export interface DhcpTransport {
  send(data: Uint8Array): void | Promise<void>;
  /** The next datagram, or null when none arrived before `deadline` (a clock.now() value). */
  recv(deadline: number): Promise<Uint8Array | null>;
  close(): void;
}

export interface DhcpClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}
export const realClock: DhcpClock = { now: () => performance.now(), sleep: (ms) => Bun.sleep(ms) };

export interface DhcpLease {
  address: string;
  prefix: number;
  netmask: string;
  /** default gateway (from option 121's 0.0.0.0/0 route when present, else option 3) */
  router?: string;
  dns: string[];
  domain?: string;
  hostname?: string;
  leaseSeconds?: number;
  mtu?: number;
  /** classless static routes (option 121), including a default route if the server sent one */
  routes: ClasslessRoute[];
  serverId: string;
}

export type DhcpStep = "dhcp.discover" | "dhcp.offer" | "dhcp.request" | "dhcp.ack" | "dhcp.nak";

export interface DhcpClientOptions {
  transport: DhcpTransport;
  /** the interface's hardware address (chaddr, client id) */
  mac: Uint8Array;
  /** interface name, for messages only */
  ifname?: string;
  /** hostname to send in option 12 */
  hostname?: string;
  /** overall deadline, default 30 s */
  timeoutMs?: number;
  /** first retransmission interval, doubled each time up to maxIntervalMs (defaults 1 s and 8 s) */
  initialIntervalMs?: number;
  maxIntervalMs?: number;
  /** REQUEST retransmissions before going back to DISCOVER (default 4) */
  requestTries?: number;
  random?: () => number;
  clock?: DhcpClock;
  onStep?: (step: DhcpStep, fields: Record<string, unknown>) => void;
}

export const VENDOR_CLASS = "inetboot";
export const PARAM_REQUEST = [
  OPT.SUBNET_MASK, OPT.CLASSLESS_ROUTES, OPT.ROUTER, OPT.DNS, OPT.HOSTNAME, OPT.DOMAIN_NAME, OPT.MTU,
  OPT.LEASE_TIME, OPT.SERVER_ID,
];

/** Runs one DHCP exchange to a lease; throws UserError when the deadline passes without one. */
export async function acquireLease(o: DhcpClientOptions): Promise<DhcpLease> {
  const clock = o.clock ?? realClock;
  const random = o.random ?? Math.random;
  const ifname = o.ifname ?? "interface";
  const deadline = clock.now() + (o.timeoutMs ?? 30_000);
  const initial = o.initialIntervalMs ?? 1000;
  const maxInterval = o.maxIntervalMs ?? 8000;
  const step = o.onStep ?? (() => {});
  const clientId = Uint8Array.of(1, ...o.mac); // type 1 (Ethernet) + MAC, RFC 2132 §9.14
  let discovers = 0;
  let offers = 0;

  const sameMac = (p: DhcpPacket) => p.chaddr.length >= o.mac.length && o.mac.every((x, i) => p.chaddr[i] === x);

  /** Sends `build()` with exponential backoff until `accept` takes a reply, `tries` run out, or the deadline. */
  async function exchange(
    build: (secs: number) => Uint8Array,
    accept: (p: DhcpPacket) => boolean,
    started: number,
    tries: number,
    xid: number,
    onSend: () => void,
  ): Promise<DhcpPacket | null> {
    let interval = initial;
    for (let n = 0; n < tries && clock.now() < deadline; n++) {
      await o.transport.send(build(Math.min(0xffff, Math.floor((clock.now() - started) / 1000))));
      onSend();
      // ±10% jitter (RFC 2131 §4.1 asks for randomization) so many machines booting together spread out
      const wait = interval * (0.9 + 0.2 * random());
      const until = Math.min(deadline, clock.now() + wait);
      for (;;) {
        const data = await o.transport.recv(until);
        if (!data) break;
        let p: DhcpPacket;
        try {
          p = decode(data);
        } catch (e) {
          if (e instanceof DhcpDecodeError) continue; // garbage on port 68 is not our problem
          throw e;
        }
        if (p.op !== 2 || p.xid !== xid || !sameMac(p)) continue;
        if (accept(p)) return p;
      }
      interval = Math.min(interval * 2, maxInterval);
    }
    return null;
  }

  const base = (xid: number, secs: number) =>
    packet({ xid, secs, chaddr: o.mac, flags: FLAG_BROADCAST }); // broadcast: we have no address to unicast to yet
  const common = {
    maxMessageSize: 1500,
    vendorClassId: VENDOR_CLASS,
    clientId,
    paramRequestList: PARAM_REQUEST,
    ...(o.hostname ? { hostname: o.hostname } : {}),
  };

  while (clock.now() < deadline) {
    const xid = Math.floor(random() * 0x1_0000_0000) >>> 0;
    const started = clock.now();
    const offer = await exchange(
      (secs) => encode({ ...base(xid, secs), options: { messageType: MSG.DISCOVER, ...common } }),
      (p) => p.options.messageType === MSG.OFFER && p.yiaddr !== "0.0.0.0" && !!(p.options.serverId ?? nonZero(p.siaddr)),
      started,
      Infinity,
      xid,
      () => {
        discovers++;
        step("dhcp.discover", { iface: ifname, xid, mac: formatMac(o.mac), n: discovers });
      },
    );
    if (!offer) break;
    offers++;
    const serverId = offer.options.serverId ?? offer.siaddr;
    step("dhcp.offer", { iface: ifname, xid, address: offer.yiaddr, server: serverId, ...(offer.options.malformed ? { malformed: offer.options.malformed } : {}) });

    const reply = await exchange(
      (secs) =>
        encode({
          ...base(xid, secs),
          options: { messageType: MSG.REQUEST, requestedIp: offer.yiaddr, serverId, ...common },
        }),
      (p) =>
        (p.options.messageType === MSG.ACK || p.options.messageType === MSG.NAK) &&
        (p.options.serverId === undefined || p.options.serverId === serverId),
      started,
      o.requestTries ?? 4,
      xid,
      () => step("dhcp.request", { iface: ifname, xid, address: offer.yiaddr, server: serverId }),
    );
    if (!reply) continue; // no answer to REQUEST: start over with DISCOVER (RFC 2131 §3.1.5)
    if (reply.options.messageType === MSG.NAK) {
      step("dhcp.nak", { iface: ifname, xid, server: serverId });
      await clock.sleep(Math.max(0, Math.min(1000, deadline - clock.now())));
      continue;
    }
    if (reply.yiaddr === "0.0.0.0") continue;
    const lease = leaseFromAck(reply, serverId);
    step("dhcp.ack", { iface: ifname, xid, address: lease.address, prefix: lease.prefix, router: lease.router ?? null, server: serverId, lease: lease.leaseSeconds ?? null });
    return lease;
  }
  const secs = Math.round((o.timeoutMs ?? 30_000) / 1000);
  throw new UserError(
    offers === 0
      ? `dhcp: no offer on ${ifname} after ${secs} s (${discovers} DISCOVER${discovers === 1 ? "" : "s"} sent)`
      : `dhcp: no lease on ${ifname} after ${secs} s (${offers} offer${offers === 1 ? "" : "s"} but no ACK)`,
  );
}

function nonZero(ip: string): string | undefined {
  return ip === "0.0.0.0" ? undefined : ip;
}

/** Typed lease from an ACK; RFC 3442 §3: with classless routes present, option 3 is ignored. */
export function leaseFromAck(ack: DhcpPacket, serverId: string): DhcpLease {
  const o = ack.options;
  const maskPrefix = o.subnetMask !== undefined ? maskToPrefix(o.subnetMask) : null;
  const prefix = maskPrefix ?? classfulPrefix(ack.yiaddr);
  const routes = o.classlessRoutes ?? [];
  const router = routes.length ? routes.find((r) => r.prefix === 0)?.gateway : o.routers?.[0];
  const lease: DhcpLease = {
    address: ack.yiaddr,
    prefix,
    netmask: prefixToMask(prefix),
    dns: o.dns ?? [],
    routes,
    serverId,
  };
  if (router && router !== "0.0.0.0") lease.router = router;
  if (o.domainName) lease.domain = o.domainName;
  if (o.hostname) lease.hostname = o.hostname;
  if (o.leaseTime !== undefined) lease.leaseSeconds = o.leaseTime;
  if (o.mtu !== undefined && o.mtu >= 68) lease.mtu = o.mtu; // RFC 2132 §5.1: minimum 68
  return lease;
}

export { MSG_NAMES };
