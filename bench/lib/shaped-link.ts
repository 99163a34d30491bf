// The slow, far store of the boot benches: nginx serving `root` inside a network namespace behind
// tbf (netns.ts), reached through a user-space proxy on the host's 127.0.0.1 that adds the round
// trip (test/lib/delay-proxy.ts). QEMU's user networking maps the guest's 10.0.2.2:port to that proxy.
import { startDelayProxy, type DelayProxy } from "../../test/lib/delay-proxy.ts";
import { createShapedNetns, type ShapedNetns } from "./netns.ts";
import { startNginxAt, type NginxServer } from "./nginx.ts";

export interface ShapedStore {
  nginx: NginxServer;
  proxy: DelayProxy;
  /** the proxy's port: the guest's 10.0.2.2:port */
  port: number;
  /** proxy, nginx, then the namespace; safe to call after a partial start */
  stop(): Promise<void>;
}

const NS_PORT = 8080;

export async function startShapedStore(o: { root: string; workDir: string; rateMbit: number; rttMs: number }): Promise<ShapedStore> {
  let net: ShapedNetns | undefined;
  let nginx: NginxServer | undefined;
  let proxy: DelayProxy | undefined;
  const stop = async () => {
    proxy?.stop();
    await nginx?.stop().catch(() => {});
    await net?.stop();
  };
  try {
    net = createShapedNetns({ rateMbit: o.rateMbit });
    nginx = await startNginxAt({ root: o.root, workDir: o.workDir, host: net.nsIp, port: NS_PORT, wrap: net.exec });
    proxy = startDelayProxy({ upstreamHost: net.nsIp, upstreamPort: NS_PORT, oneWayMs: o.rttMs / 2 });
    return { nginx, proxy, port: proxy.port, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
