// A network namespace reached from the host through a veth pair whose two ends are shaped with tbf
// (token bucket: bandwidth only; this kernel has no sch_netem, so delay comes from test/lib/delay-proxy.ts).
// Servers run inside with `exec`; the host reaches them at `nsIp` (test/lib/veth-netns.ts).
import { createVethNetns, sh, type VethNetns } from "../../test/lib/veth-netns.ts";

export interface ShapedNetns extends VethNetns {
  /** `tc qdisc show` of both ends, to print with the figures */
  qdiscs(): string;
}

export interface ShapeOptions {
  /** rate in Mbit/s, applied to both directions */
  rateMbit: number;
  /** tbf bucket in bytes (default 64 KiB: above rate/HZ, small against a 256 KiB chunk) */
  burstBytes?: number;
}

export function createShapedNetns(o: ShapeOptions): ShapedNetns {
  const burst = o.burstBytes ?? 65536;
  // latency bounds the tbf queue: 100 ms of data at this rate, as a router's buffer would.
  const tbf = ["tbf", "rate", `${o.rateMbit}mbit`, "burst", String(burst), "latency", "100ms"];
  const net = createVethNetns("ibshape", 213, (n) => {
    // veth hands 64 KiB GSO super-packets to the qdisc; tbf splits those larger than its bucket.
    sh(["tc", "qdisc", "add", "dev", n.hostDev, "root", ...tbf]);
    sh([...n.exec, "tc", "qdisc", "add", "dev", n.nsDev, "root", ...tbf]);
  });
  return { ...net, qdiscs: () => [sh(["tc", "qdisc", "show", "dev", net.hostDev]), sh([...net.exec, "tc", "qdisc", "show", "dev", net.nsDev])].join("").trim() };
}
