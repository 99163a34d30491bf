// The real DHCP transport: a non-blocking UDP socket bound to 0.0.0.0:68 on one interface.
// SO_BINDTODEVICE lets us send to 255.255.255.255 out of an interface that has no address yet,
// and the broadcast flag in our requests makes servers broadcast replies, which this socket receives.
// Receiving polls recvfrom with short async sleeps so PID 1's event loop is never blocked.
import { AF, closeFd, cstr, recvfrom, sendto, setsockopt, setsockoptInt, SO, SOCK, sockaddrIn, SOL, socket, bind } from "../../sys/ffi.ts";
import type { DhcpClock, DhcpTransport } from "./client.ts";
import { realClock } from "./client.ts";

export const CLIENT_PORT = 68;
export const SERVER_PORT = 67;
const POLL_MS = 20;

export function udpTransport(ifname: string, clock: DhcpClock = realClock): DhcpTransport {
  const fd = socket(AF.INET, SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC);
  try {
    setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
    setsockoptInt(fd, SOL.SOCKET, SO.BROADCAST, 1, "setsockopt(SO_BROADCAST)");
    setsockopt(fd, SOL.SOCKET, SO.BINDTODEVICE, cstr(ifname), `setsockopt(SO_BINDTODEVICE, ${ifname})`);
    bind(fd, sockaddrIn("0.0.0.0", CLIENT_PORT), `bind(0.0.0.0:${CLIENT_PORT} on ${ifname})`);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  const dest = sockaddrIn("255.255.255.255", SERVER_PORT);
  const buf = new Uint8Array(2048);
  let closed = false;
  return {
    send(data) {
      sendto(fd, data, dest, `sendto(255.255.255.255:${SERVER_PORT} on ${ifname})`);
    },
    async recv(deadline) {
      for (;;) {
        if (closed) return null;
        const n = recvfrom(fd, buf, undefined, `recvfrom(:${CLIENT_PORT} on ${ifname})`);
        if (n >= 0) return buf.slice(0, n);
        const left = deadline - clock.now();
        if (left <= 0) return null;
        await clock.sleep(Math.min(POLL_MS, left));
      }
    },
    close() {
      if (!closed) closeFd(fd);
      closed = true;
    },
  };
}
