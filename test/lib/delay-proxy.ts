// Round-trip time emulated in user space (this kernel has no sch_netem): a TCP proxy that holds
// every piece of data it receives `oneWayMs` before passing it on, in each direction, in order.
// A request/response exchange through it therefore costs 2 × oneWayMs more, like a long link;
// bandwidth is left to whatever sits behind it (tbf on a veth, see netns.ts).
import type { Socket, TCPSocketListener } from "bun";

type Item = { due: number; buf?: Uint8Array; end?: true };

/** One direction of one connection: a FIFO of (due time, bytes) drained into `target`. */
class DelayedPipe {
  private q: Item[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private blocked = false;
  target: Socket<Conn> | null = null;

  constructor(private ms: number, private count: (n: number) => void) {}

  push(data: Uint8Array) {
    // Copy: the socket's read buffer is not ours to keep.
    this.q.push({ due: performance.now() + this.ms, buf: new Uint8Array(data) });
    this.arm();
  }
  end() {
    this.q.push({ due: performance.now() + this.ms, end: true });
    this.arm();
  }
  setTarget(s: Socket<Conn>) {
    this.target = s;
    this.pump();
  }
  /** Writes everything that is due; called by the timer and by the target's drain event. */
  pump() {
    this.blocked = false;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const t = this.target;
    if (!t) return;
    const now = performance.now();
    while (this.q.length && this.q[0]!.due <= now) {
      const h = this.q[0]!;
      if (h.end) {
        this.q.length = 0;
        t.end();
        return;
      }
      const n = t.write(h.buf!);
      if (n < 0) {
        this.q.length = 0; // target closed
        return;
      }
      this.count(n);
      if (n < h.buf!.length) {
        h.buf = h.buf!.subarray(n);
        this.blocked = true; // the drain handler resumes
        return;
      }
      this.q.shift();
    }
    this.arm();
  }
  private arm() {
    if (this.timer || this.blocked || !this.target || !this.q.length) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, Math.max(0, this.q[0]!.due - performance.now()));
  }
}

interface Conn {
  /** client → upstream */
  up: DelayedPipe;
  /** upstream → client */
  down: DelayedPipe;
  upstream?: Socket<Conn>;
}

export interface DelayProxy {
  host: string;
  port: number;
  /** bytes delivered to clients (responses) and to the upstream (requests) */
  readonly bytesDown: number;
  readonly bytesUp: number;
  readonly connections: number;
  stop(): void;
}

export interface DelayProxyOptions {
  upstreamHost: string;
  upstreamPort: number;
  /** delay per direction: RTT / 2 */
  oneWayMs: number;
  host?: string;
  port?: number;
}

export function startDelayProxy(o: DelayProxyOptions): DelayProxy {
  const stats = { down: 0, up: 0, conns: 0 };
  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: o.host ?? "127.0.0.1",
    port: o.port ?? 0,
    socket: {
      open(client) {
        stats.conns++;
        const c: Conn = {
          up: new DelayedPipe(o.oneWayMs, (n) => (stats.up += n)),
          down: new DelayedPipe(o.oneWayMs, (n) => (stats.down += n)),
        };
        client.data = c;
        c.down.setTarget(client);
        client.setNoDelay?.(true);
        Bun.connect<Conn>({
          hostname: o.upstreamHost,
          port: o.upstreamPort,
          socket: {
            open(u) {
              u.data = c;
              u.setNoDelay?.(true);
            },
            data(_u, d) {
              c.down.push(d);
            },
            drain() {
              c.up.pump();
            },
            close() {
              c.down.end();
            },
            error() {
              c.down.end();
            },
          },
        }).then(
          (u) => {
            c.upstream = u;
            c.up.setTarget(u);
          },
          () => c.down.end(),
        );
      },
      data(client, d) {
        client.data.up.push(d);
      },
      drain(client) {
        client.data.down.pump();
      },
      close(client) {
        client.data?.up.end();
      },
      error(client) {
        client.data?.up.end();
      },
    },
  });
  return {
    host: listener.hostname,
    port: listener.port,
    get bytesDown() {
      return stats.down;
    },
    get bytesUp() {
      return stats.up;
    },
    get connections() {
      return stats.conns;
    },
    stop: () => listener.stop(true),
  };
}
