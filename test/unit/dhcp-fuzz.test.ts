// Fuzz: decoding untrusted bytes either returns a packet or throws DhcpDecodeError, nothing else.
import { expect, test } from "bun:test";
import { decode, DhcpDecodeError, encode, MSG, packet } from "../../src/net/dhcp/codec.ts";

// Small deterministic PRNG (xorshift32) so a failure can be reproduced from the printed seed.
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

const seeds: Uint8Array[] = [
  encode(packet({ xid: 7, chaddr: Uint8Array.of(1, 2, 3, 4, 5, 6), options: { messageType: MSG.DISCOVER, paramRequestList: [1, 3, 6, 121], clientId: Uint8Array.of(1, 1, 2, 3, 4, 5, 6), vendorClassId: "inetboot" } })),
  encode(
    packet({
      op: 2, xid: 9, yiaddr: "10.0.0.5", chaddr: Uint8Array.of(1, 2, 3, 4, 5, 6),
      options: {
        messageType: MSG.ACK, subnetMask: "255.255.255.0", routers: ["10.0.0.1"], dns: ["10.0.0.2", "10.0.0.3"], hostname: "h",
        domainName: "d.example", mtu: 1400, leaseTime: 60, serverId: "10.0.0.1", overload: 3,
        classlessRoutes: [{ dest: "10.1.0.0", prefix: 16, gateway: "10.0.0.1" }, { dest: "0.0.0.0", prefix: 0, gateway: "10.0.0.1" }],
      },
    }),
  ),
];

function tryDecode(b: Uint8Array, off = 0): "ok" | "err" {
  try {
    decode(b, off);
    return "ok";
  } catch (e) {
    if (e instanceof DhcpDecodeError) return "err";
    throw new Error(`decode threw ${(e as Error)?.name}: ${(e as Error)?.message} on ${Buffer.from(b).toString("hex")}`);
  }
}

test("120k random and mutated packets: only DhcpDecodeError", () => {
  const seed = 0x1b00_7ed5;
  const r = rng(seed);
  const counts = { ok: 0, err: 0 };
  const int = (n: number) => Math.floor(r() * n);
  for (let i = 0; i < 120_000; i++) {
    let b: Uint8Array;
    const kind = i % 4;
    if (kind === 0) {
      // random bytes behind a valid header and cookie, so the option parser gets exercised
      b = new Uint8Array(240 + int(400));
      for (let j = 0; j < b.length; j++) b[j] = int(256);
      b.set([0x63, 0x82, 0x53, 0x63], 236);
      if (r() < 0.5) b[2] = int(17);
    } else if (kind === 1) {
      // purely random length and bytes
      b = new Uint8Array(int(700));
      for (let j = 0; j < b.length; j++) b[j] = int(256);
    } else {
      // mutations of real packets: flip bytes, truncate, splice in option-like TLVs
      const src = seeds[int(seeds.length)]!;
      b = Uint8Array.from(src);
      const flips = 1 + int(8);
      for (let k = 0; k < flips; k++) {
        const at = 236 + int(b.length - 236);
        b[at] = r() < 0.3 ? [0, 255, 52, 121, 1, 3, 6, 53][int(8)]! : int(256);
      }
      if (r() < 0.3) b = b.subarray(0, 236 + int(b.length - 236));
      if (kind === 3 && r() < 0.5) b[44 + int(192)] = int(256); // garbage in sname/file for overload
    }
    counts[tryDecode(b, r() < 0.05 ? int(4) : 0)]++;
  }
  // both outcomes must occur, or the fuzzer is not reaching the parser
  expect(counts.ok).toBeGreaterThan(1000);
  expect(counts.err).toBeGreaterThan(1000);
});
