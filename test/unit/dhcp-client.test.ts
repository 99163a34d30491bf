// The DHCP state machine against a fake server on a fake clock (no sockets, no waiting).
import { describe, expect, test } from "bun:test";
import { acquireLease, type DhcpStep, type DhcpTransport } from "../../src/net/dhcp/client.ts";
import { decode, type DhcpPacket, encode, FLAG_BROADCAST, MSG, packet } from "../../src/net/dhcp/codec.ts";
import { UserError } from "../../src/sys/errors.ts";

const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

type Reply = (req: DhcpPacket, n: number) => Uint8Array[] | DhcpPacket[] | (Uint8Array | DhcpPacket)[];

/** A virtual-time transport: recv() jumps the clock to the deadline when nothing is queued. */
function fakeNet(reply: Reply) {
  let now = 0;
  const queue: { at: number; data: Uint8Array }[] = [];
  const sent: { at: number; p: DhcpPacket }[] = [];
  const clock = { now: () => now, sleep: async (ms: number) => void (now += ms) };
  const transport: DhcpTransport = {
    send(data) {
      const p = decode(data);
      sent.push({ at: now, p });
      for (const r of reply(p, sent.length)) {
        queue.push({ at: now + 5, data: r instanceof Uint8Array ? r : encode(r) });
      }
    },
    async recv(deadline) {
      const next = queue[0];
      if (next && next.at <= deadline) {
        queue.shift();
        now = Math.max(now, next.at);
        return next.data;
      }
      now = Math.max(now, deadline);
      return null;
    },
    close() {},
  };
  return { transport, clock, sent };
}

function serverReply(req: DhcpPacket, type: number, extra: Partial<DhcpPacket["options"]> = {}, yiaddr = "10.0.2.15"): DhcpPacket {
  return packet({
    op: 2, xid: req.xid, chaddr: req.chaddr, yiaddr, siaddr: "10.0.2.2", flags: req.flags,
    options: { messageType: type, serverId: "10.0.2.2", subnetMask: "255.255.255.0", routers: ["10.0.2.2"], dns: ["10.0.2.3"], leaseTime: 86400, ...extra },
  });
}

/** A well-behaved server: OFFER to DISCOVER, ACK to REQUEST. */
const goodServer = (extra: Partial<DhcpPacket["options"]> = {}): Reply => (req) => {
  if (req.options.messageType === MSG.DISCOVER) return [serverReply(req, MSG.OFFER, extra)];
  if (req.options.messageType === MSG.REQUEST) return [serverReply(req, MSG.ACK, extra)];
  return [];
};

const fixedRandom = () => 0.5; // no jitter, xid 0x80000000

describe("acquireLease", () => {
  test("DISCOVER → OFFER → REQUEST → ACK, with the fields a server needs", async () => {
    const net = fakeNet(goodServer({ domainName: "qemu.test", mtu: 1400, hostname: "guest" }));
    const steps: DhcpStep[] = [];
    const lease = await acquireLease({ ...net, mac: MAC, random: fixedRandom, onStep: (s) => steps.push(s), hostname: "box" });
    expect(lease).toEqual({
      address: "10.0.2.15", prefix: 24, netmask: "255.255.255.0", router: "10.0.2.2", dns: ["10.0.2.3"], domain: "qemu.test",
      hostname: "guest", leaseSeconds: 86400, mtu: 1400, routes: [], serverId: "10.0.2.2",
    });
    expect(steps).toEqual(["dhcp.discover", "dhcp.offer", "dhcp.request", "dhcp.ack"]);
    const [d, r] = net.sent.map((s) => s.p);
    expect(d!.op).toBe(1);
    expect(d!.flags & FLAG_BROADCAST).toBe(FLAG_BROADCAST);
    expect(Array.from(d!.chaddr)).toEqual(Array.from(MAC));
    expect(d!.options.vendorClassId).toBe("inetboot");
    expect(Array.from(d!.options.clientId!)).toEqual([1, ...MAC]);
    expect(d!.options.paramRequestList).toEqual(expect.arrayContaining([1, 3, 6, 12, 15, 26, 51, 54, 121]));
    expect(d!.options.maxMessageSize).toBe(1500);
    expect(d!.options.hostname).toBe("box");
    expect(r!.options.messageType).toBe(MSG.REQUEST);
    expect(r!.xid).toBe(d!.xid);
    expect(r!.options.requestedIp).toBe("10.0.2.15");
    expect(r!.options.serverId).toBe("10.0.2.2");
    expect(r!.ciaddr).toBe("0.0.0.0");
  });

  test("retransmits DISCOVER with exponential backoff (1, 2, 4 s) until answered", async () => {
    const net = fakeNet((req, n) => (n <= 3 ? [] : goodServer()(req, n)));
    await acquireLease({ ...net, mac: MAC, random: fixedRandom });
    const discovers = net.sent.filter((s) => s.p.options.messageType === MSG.DISCOVER);
    expect(discovers.map((s) => s.at)).toEqual([0, 1000, 3000, 7000]);
    expect(discovers.map((s) => s.p.secs)).toEqual([0, 1, 3, 7]);
    expect(new Set(discovers.map((s) => s.p.xid)).size).toBe(1);
  });

  test("jitter keeps each interval within ±10%", async () => {
    let i = 0;
    const rand = () => [0.5, 0, 1, 0, 1][i++ % 5]!;
    const net = fakeNet((req, n) => (n <= 3 ? [] : goodServer()(req, n)));
    await acquireLease({ ...net, mac: MAC, random: rand });
    const at = net.sent.map((s) => s.at);
    expect(at.slice(0, 4)).toEqual([0, 900, 900 + 2200, 900 + 2200 + 3600]);
  });

  test("ignores replies with another xid, another MAC, BOOTREQUESTs and garbage", async () => {
    const net = fakeNet((req) => {
      if (req.options.messageType !== MSG.DISCOVER) return goodServer()(req, 0);
      const otherXid = serverReply(req, MSG.OFFER, {}, "10.9.9.9");
      otherXid.xid = (req.xid + 1) >>> 0;
      const otherMac = serverReply(req, MSG.OFFER, {}, "10.9.9.8");
      otherMac.chaddr = Uint8Array.of(2, 2, 2, 2, 2, 2);
      const echo = { ...serverReply(req, MSG.OFFER, {}, "10.9.9.7"), op: 1 };
      return [new Uint8Array(10), otherXid, otherMac, echo, serverReply(req, MSG.OFFER)];
    });
    const lease = await acquireLease({ ...net, mac: MAC, random: fixedRandom });
    expect(lease.address).toBe("10.0.2.15");
  });

  test("NAK restarts from DISCOVER with a new xid", async () => {
    let naks = 0;
    const net = fakeNet((req) => {
      if (req.options.messageType === MSG.REQUEST && naks++ === 0) return [serverReply(req, MSG.NAK)];
      return goodServer()(req, 0);
    });
    let r = 0.1;
    const steps: DhcpStep[] = [];
    const lease = await acquireLease({ ...net, mac: MAC, random: () => (r += 0.1) % 1, onStep: (s) => steps.push(s) });
    expect(lease.address).toBe("10.0.2.15");
    expect(steps).toEqual(["dhcp.discover", "dhcp.offer", "dhcp.request", "dhcp.nak", "dhcp.discover", "dhcp.offer", "dhcp.request", "dhcp.ack"]);
    const types = net.sent.map((s) => [s.p.options.messageType, s.p.xid] as const);
    expect(types[0]![1]).toBe(types[1]![1]);
    expect(types[2]![1]).not.toBe(types[0]![1]);
  });

  test("REQUEST unanswered 4 times goes back to DISCOVER", async () => {
    let requests = 0;
    const net = fakeNet((req) => {
      if (req.options.messageType === MSG.REQUEST && ++requests <= 4) return [];
      return goodServer()(req, 0);
    });
    await acquireLease({ ...net, mac: MAC, random: fixedRandom });
    const t = net.sent.map((s) => s.p.options.messageType);
    expect(t).toEqual([MSG.DISCOVER, MSG.REQUEST, MSG.REQUEST, MSG.REQUEST, MSG.REQUEST, MSG.DISCOVER, MSG.REQUEST]);
  });

  test("no server: one-line UserError at the deadline, backoff capped at 8 s", async () => {
    const net = fakeNet(() => []);
    const err = await acquireLease({ ...net, mac: MAC, ifname: "eth0", random: fixedRandom, timeoutMs: 30_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe("dhcp: no offer on eth0 after 30 s (6 DISCOVERs sent)");
    expect(net.sent.map((s) => s.at)).toEqual([0, 1000, 3000, 7000, 15000, 23000]);
    expect(net.clock.now()).toBe(30_000);
  });

  test("RFC 3442: classless routes win over option 3", async () => {
    const routes = [
      { dest: "192.168.50.0", prefix: 24, gateway: "10.0.2.254" },
      { dest: "0.0.0.0", prefix: 0, gateway: "10.0.2.1" },
    ];
    const net = fakeNet(goodServer({ classlessRoutes: routes, routers: ["10.0.2.99"] }));
    const lease = await acquireLease({ ...net, mac: MAC, random: fixedRandom });
    expect(lease.router).toBe("10.0.2.1");
    expect(lease.routes).toEqual(routes);
  });

  test("no subnet option: classful prefix", async () => {
    const net = fakeNet((req) => {
      const p = goodServer()(req, 0)[0] as DhcpPacket | undefined;
      if (p) delete p.options.subnetMask;
      return p ? [p] : [];
    });
    const lease = await acquireLease({ ...net, mac: MAC, random: fixedRandom });
    expect(lease.prefix).toBe(8);
    expect(lease.netmask).toBe("255.0.0.0");
  });
});
