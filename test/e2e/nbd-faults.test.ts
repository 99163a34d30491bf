// Faults seen through NBD: `inetboot nbd` (CLI subprocess) over two mirrors, one of them the fault
// server (500s, stalls, truncated and flipped bodies, dropped connections, dying mid-copy), the
// other a real server. Whatever the mirrors do, nbdcopy gets the image's bytes; with every mirror
// down the client gets an I/O error, the server stays up and recovers when a mirror returns.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { packImage } from "../../src/store/pack.ts";
import { FaultServer, type Fault } from "./store-fault-server.ts";
import { chunkGets, freePort, makeExt4Image, run, sha, shaFile, startNbd, startNginx, type Nginx } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";
import { startDelayProxy } from "../lib/delay-proxy.ts";

const CS = 65536;
let dir: string, www: string, img: Uint8Array, nginx: Nginx;
let dataChunks: number[] = [];
const stops: (() => unknown)[] = [];
const isChunk = (p: string) => p.includes("/chunks/");

beforeAll(async () => {
  dir = scratch("nbd-faults-");
  www = join(dir, "www");
  const imgPath = makeExt4Image(dir, 16, ["/usr/bin/qemu-img", "/usr/bin/nbdkit", "/usr/bin/nbdinfo", "/usr/sbin/nginx"]);
  img = new Uint8Array(readFileSync(imgPath));
  await packImage(imgPath, join(www, "store"), { chunkSize: CS });
  for (let i = 0; i * CS < img.length; i++) if (img.subarray(i * CS, (i + 1) * CS).some((b) => b !== 0)) dataChunks.push(i);
  nginx = await startNginx(www, join(dir, "nginx"));
  stops.push(() => nginx.stop());
});

afterAll(async () => {
  for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

function faulty(faultFor: (k: number, path: string) => Fault, port?: number): FaultServer {
  const s = new FaultServer({ root: www, faultFor }).start(port);
  stops.push(() => s.stop());
  return s;
}

/**
 * nginx's store URL through a 10 ms round trip: the fault server (no delay) then ranks first
 * whenever it is out of its penalty box, so it does serve its faults. With both on loopback,
 * which one ranked first was down to timing.
 */
function slowNginx(): string {
  const slow = startDelayProxy({ upstreamHost: "127.0.0.1", upstreamPort: Number(new URL(nginx.url).port), oneWayMs: 5 });
  stops.push(() => slow.stop());
  return `http://127.0.0.1:${slow.port}/store/`;
}

async function copySha(uri: string) {
  const out = join(dir, `copy-${Math.random().toString(36).slice(2)}.img`);
  const r = await run(["nbdcopy", uri, out], 40_000);
  const h = r.code === 0 ? shaFile(out) : "";
  rmSync(out, { force: true });
  return { ...r, sha: h };
}

describe("inetboot nbd with --mirror and a faulty mirror", () => {
  test("500s, stalls, truncation, flipped bytes, dropped connections: nbdcopy identical", async () => {
    const cycle: Fault[] = ["500", "ok", "truncate", "flip", "ok", "stall", "close", "ok", "flip"];
    const bad = faulty((k, p) => (isChunk(p) ? cycle[k % cycle.length]! : "ok"));
    const nbd = await startNbd(bad.url + "store/", ["--mirror", slowNginx(), "--listen", `unix:${join(dir, "f.sock")}`, "--timeout", "6"]);
    stops.push(() => nbd.stop());
    const before = chunkGets(nginx.lines()).length;
    const r = await copySha(nbd.uri);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.sha).toBe(sha(img));
    for (const f of ["500", "stall", "truncate", "flip", "close"] as Fault[]) expect(bad.served[f]).toBeGreaterThan(0);
    expect(chunkGets(nginx.lines()).length).toBeGreaterThan(before); // the good mirror filled in
    expect(nbd.proc.exitCode).toBe(null);
    expect(await nbd.stop()).toBe(0);
  }, 40_000);

  test("the primary dies in the middle of an nbdcopy: the copy is still identical", async () => {
    let chunkReqs = 0;
    let killedAt = -1;
    const dying: FaultServer = faulty((_k, p) => {
      if (isChunk(p) && ++chunkReqs === 12) {
        killedAt = chunkReqs;
        setTimeout(() => dying.stop(), 0); // with requests in flight
      }
      return "ok";
    });
    const nbd = await startNbd(dying.url + "store/", ["--mirror", slowNginx(), "--listen", `unix:${join(dir, "k.sock")}`, "--timeout", "6"]);
    stops.push(() => nbd.stop());
    const before = chunkGets(nginx.lines()).length;
    const r = await copySha(nbd.uri);
    expect(r.code).toBe(0);
    expect(r.sha).toBe(sha(img));
    expect(killedAt).toBe(12); // it did die mid-copy (the image has far more data chunks)
    expect(dataChunks.length).toBeGreaterThan(40);
    expect(await fetch(dying.url + "store/index").then(() => "up", () => "down")).toBe("down");
    expect(chunkGets(nginx.lines()).length - before).toBeGreaterThan(0);
    expect(await nbd.stop()).toBe(0);
  }, 40_000);
});

describe("every mirror down", () => {
  test("I/O error to the client, the server stays up, reads work again when a mirror returns", async () => {
    const portA = freePort(), portB = freePort();
    let a = faulty(() => "ok", portA);
    let b = faulty(() => "ok", portB);
    const nbd = await startNbd(a.url + "store/", ["--mirror", b.url + "store/", "--listen", `unix:${join(dir, "d.sock")}`, "--timeout", "2"]);
    stops.push(() => nbd.stop());
    const off = (i: number) => dataChunks[i]! * CS;
    const ok1 = await run(["qemu-io", "-f", "raw", "-r", "-c", `read -v ${off(1)} 512`, nbd.uri]);
    expect(ok1.code).toBe(0);
    expect(ok1.stdout).not.toContain("failed");

    a.stop();
    b.stop();
    // A chunk never read before (so no cache can answer): the client must see EIO.
    const t0 = performance.now();
    const fail = await run(["qemu-io", "-f", "raw", "-r", "-c", `read ${off(20)} 4096`, nbd.uri]);
    expect(fail.stdout + fail.stderr).toContain("Input/output error");
    expect(performance.now() - t0).toBeLessThan(10_000); // the --timeout deadline, not forever
    // and the server says which read failed and why (the client only sees EIO)
    await nbd.err.waitFor(new RegExp(`nbd: READ ${off(20)}\\+4096 failed: .*chunk [0-9a-f]{16}…`));
    const copy = await copySha(nbd.uri);
    expect(copy.code).not.toBe(0);
    expect(nbd.proc.exitCode).toBe(null); // the NBD server survived

    b = faulty(() => "ok", portB); // the mirror comes back on its old address
    const back = await run(["qemu-io", "-f", "raw", "-r", "-c", `read -v ${off(20)} 4096`, nbd.uri]);
    expect(back.code).toBe(0);
    expect(back.stdout).not.toContain("error");
    const again = await copySha(nbd.uri);
    expect(again.code).toBe(0);
    expect(again.sha).toBe(sha(img));
    expect(b.requests).toBeGreaterThan(0);
    expect(await nbd.stop()).toBe(0);
    void a;
  }, 50_000);
});
