// DHCP codec against byte vectors laid out by hand from RFC 2131 §2 (header), RFC 2132 (options)
// and RFC 3442 (classless routes), plus round trips.
import { describe, expect, test } from "bun:test";
import { decode, DhcpDecodeError, encode, encodingLength, FLAG_BROADCAST, MSG, packet, type DhcpPacket } from "../../src/net/dhcp/codec.ts";
import { decodeClasslessRoutes, encodeClasslessRoutes, type DhcpOptions } from "../../src/net/dhcp/options.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const zeros = (n: number) => "00".repeat(n);

// A DHCPOFFER as a server would send it: op=2 htype=1 hlen=6 hops=0, xid 0x3903f326, secs 0,
// flags 0x8000, ciaddr 0, yiaddr 192.168.1.100, siaddr 192.168.1.1, giaddr 0, chaddr 00:0b:82:01:fc:42.
const OFFER_HEADER =
  "02 01 06 00" + "39 03 f3 26" + "00 00" + "80 00" +
  "00000000" + "c0a80164" + "c0a80101" + "00000000" +
  "000b8201fc42" + zeros(10) + // chaddr padded to 16
  zeros(64) + zeros(128) + // sname, file
  "63 82 53 63"; // magic cookie
const OFFER_OPTIONS =
  "35 01 02" + // 53 message type OFFER
  "01 04 ff ffff00" + // 1 subnet 255.255.255.0
  "03 04 c0a80101" + // 3 router 192.168.1.1
  "06 08 c0a80101 09090909" + // 6 dns 192.168.1.1, 9.9.9.9
  "0c 04 686f7374" + // 12 hostname "host"
  "0f 07 6578616d706c65" + // 15 domain "example"
  "1a 02 05dc" + // 26 mtu 1500
  "33 04 00000e10" + // 51 lease 3600
  "36 04 c0a80101" + // 54 server id
  // 121: 10.0.0.0/8 via 192.168.1.254 (1 significant octet), 0.0.0.0/0 via 192.168.1.1 (none),
  // 172.16.5.0/24 on-link (3 significant octets, router 0.0.0.0)
  "79 13 08 0a c0a801fe 00 c0a80101 18 ac1005 00000000" +
  "ff";

describe("decode", () => {
  test("hand-built OFFER", () => {
    const p = decode(hex(OFFER_HEADER + OFFER_OPTIONS));
    expect(p.op).toBe(2);
    expect(p.htype).toBe(1);
    expect(p.xid).toBe(0x3903f326);
    expect(p.flags).toBe(FLAG_BROADCAST);
    expect(p.yiaddr).toBe("192.168.1.100");
    expect(p.siaddr).toBe("192.168.1.1");
    expect(Array.from(p.chaddr)).toEqual([0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42]);
    expect(p.options).toEqual({
      messageType: MSG.OFFER,
      subnetMask: "255.255.255.0",
      routers: ["192.168.1.1"],
      dns: ["192.168.1.1", "9.9.9.9"],
      hostname: "host",
      domainName: "example",
      mtu: 1500,
      leaseTime: 3600,
      serverId: "192.168.1.1",
      classlessRoutes: [
        { dest: "10.0.0.0", prefix: 8, gateway: "192.168.1.254" },
        { dest: "0.0.0.0", prefix: 0, gateway: "192.168.1.1" },
        { dest: "172.16.5.0", prefix: 24, gateway: "0.0.0.0" },
      ],
    });
    expect(decode.bytes).toBe(hex(OFFER_HEADER + OFFER_OPTIONS).length);
  });

  test("at an offset, with pads, and unknown options kept", () => {
    const body = hex("aabbcc" + OFFER_HEADER + "00 00 35 01 05 2a 02 beef ff" + zeros(20));
    const p = decode(body, 3);
    expect(p.options.messageType).toBe(MSG.ACK);
    expect(p.options.other).toEqual([{ code: 42, data: Uint8Array.of(0xbe, 0xef) }]);
    expect(decode.bytes).toBe(240 + 10); // through END, not the trailing pad
  });

  test("RFC 3396: a repeated option is concatenated", () => {
    const p = decode(hex(OFFER_HEADER + "06 02 0102 06 02 0304 ff"));
    expect(p.options.dns).toEqual(["1.2.3.4"]);
  });

  test("option overload (52) reads options from file and sname", () => {
    const h = hex(OFFER_HEADER + "34 01 03 35 01 02 ff");
    h.set(hex("33 04 00000078 ff"), 108); // file: lease 120
    h.set(hex("1a 02 0578 ff"), 44); // sname: mtu 1400
    const p = decode(h);
    expect(p.options).toMatchObject({ messageType: 2, overload: 3, leaseTime: 120, mtu: 1400 });
    expect(p.file).toBe("");
    expect(p.sname).toBe("");
  });

  const bad: [string, string][] = [
    ["too short", OFFER_HEADER.slice(0, 400)],
    ["bad cookie", OFFER_HEADER.slice(0, -8) + "63825364" + "ff"],
    ["hlen > 16", "02 01 11 00" + OFFER_HEADER.slice(11) + "ff"],
    ["option runs past the end", OFFER_HEADER + "06 08 01020304"],
    ["option without length byte", OFFER_HEADER + "06"],
    ["message type of 2 bytes", OFFER_HEADER + "35 02 0102 ff"],
  ];
  for (const [name, h] of bad) {
    test(`rejects: ${name}`, () => {
      expect(() => decode(hex(h))).toThrow(DhcpDecodeError);
    });
  }
  // One malformed option costs that option, not the offer (as with the kernel's ipconfig)
  const dropped: [string, string, number, keyof DhcpOptions][] = [
    ["subnet of 3 bytes", "01 03 ffffff", 1, "subnetMask"],
    ["dns of 6 bytes", "06 06 010203040506", 6, "dns"],
    ["mtu of 1 byte", "1a 01 05", 26, "mtu"],
    ["121 width 33", "79 05 21 01020304", 121, "classlessRoutes"],
    ["121 truncated router", "79 04 08 0a c0a8", 121, "classlessRoutes"],
    ["121 empty", "79 00", 121, "classlessRoutes"],
    ["empty hostname", "0c 00", 12, "hostname"],
  ];
  for (const [name, opt, code, field] of dropped) {
    test(`drops the option, keeps the packet: ${name}`, () => {
      const p = decode(hex(OFFER_HEADER + "35 01 02 " + opt + " 33 04 00000e10 ff"));
      expect(p.options.messageType).toBe(2);
      expect(p.options.leaseTime).toBe(3600); // the options after it are read
      expect(p.options[field]).toBeUndefined();
      expect(p.options.malformed).toEqual([code]);
    });
  }
  test("rejects a bad offset", () => {
    expect(() => decode(new Uint8Array(300), 301)).toThrow(DhcpDecodeError);
  });
});

describe("encode", () => {
  const discover: DhcpPacket = packet({
    xid: 0x01020304,
    chaddr: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56),
    flags: FLAG_BROADCAST,
    secs: 3,
    options: {
      messageType: MSG.DISCOVER,
      paramRequestList: [1, 121, 3, 6],
      maxMessageSize: 1500,
      vendorClassId: "inetboot",
      clientId: Uint8Array.of(1, 0x52, 0x54, 0, 0x12, 0x34, 0x56),
    },
  });

  test("exact bytes of a DISCOVER", () => {
    const b = encode(discover);
    expect(b.length).toBe(300); // padded to the RFC 1542 minimum
    expect(encode.bytes).toBe(300);
    expect(encodingLength(discover)).toBe(300);
    const want = hex(
      "01 01 06 00 01020304 0003 8000" + zeros(16) + "525400123456" + zeros(10) + zeros(192) + "63825363" +
        "35 01 01" + "37 04 01790306" + "39 02 05dc" + "3c 08 696e6574626f6f74" + "3d 07 01525400123456" + "ff",
    );
    expect(Buffer.from(b.subarray(0, want.length)).toString("hex")).toBe(Buffer.from(want).toString("hex"));
    expect(b.subarray(want.length).every((x) => x === 0)).toBe(true);
  });

  test("round trip, also into a buffer at an offset", () => {
    expect(decode(encode(discover))).toEqual(discover);
    const buf = new Uint8Array(400).fill(0xee);
    encode(discover, buf, 50);
    expect(buf[49]).toBe(0xee);
    expect(decode(buf, 50)).toEqual(discover);
  });

  test("round trip of a full reply", () => {
    const ack = decode(hex(OFFER_HEADER + OFFER_OPTIONS));
    ack.sname = "server.example";
    ack.file = "boot/file";
    expect(decode(encode(ack))).toEqual(ack);
  });

  test("long option data is split per RFC 3396 and joined again", () => {
    const dns = Array.from({ length: 100 }, (_, i) => `10.0.${i}.1`); // 400 bytes > 255
    const p = packet({ xid: 1, chaddr: new Uint8Array(6), options: { messageType: MSG.ACK, dns } });
    const b = encode(p);
    expect(b.length).toBe(encodingLength(p));
    expect(decode(b).options.dns).toEqual(dns);
  });
});

describe("RFC 3442 classless routes", () => {
  test("encoding uses only the significant octets", () => {
    const routes = [
      { dest: "0.0.0.0", prefix: 0, gateway: "10.0.0.1" },
      { dest: "10.17.0.0", prefix: 16, gateway: "10.0.0.2" },
      { dest: "10.27.129.0", prefix: 24, gateway: "10.0.0.3" },
      { dest: "10.229.0.128", prefix: 25, gateway: "10.0.0.4" },
      { dest: "10.198.122.47", prefix: 32, gateway: "10.0.0.5" },
    ];
    // RFC 3442 §1 table: 0 → "0", 10.17/16 → "16.10.17", 10.27.129/24 → "24.10.27.129",
    // 10.229.0.128/25 → "25.10.229.0.128", 10.198.122.47/32 → "32.10.198.122.47"
    const want = hex("00 0a000001" + "10 0a11 0a000002" + "18 0a1b81 0a000003" + "19 0ae50080 0a000004" + "20 0ac67a2f 0a000005");
    expect(Array.from(encodeClasslessRoutes(routes))).toEqual(Array.from(want));
    expect(decodeClasslessRoutes(want)).toEqual(routes);
  });
});
