// Our NBD server against programs nobody here wrote: libnbd's nbdinfo/nbdcopy and QEMU's
// qemu-img/qemu-io. The image has random data around a real filesystem hole.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openSync, readFileSync, rmSync, writeSync, closeSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startNbdServer, type NbdServer } from "../../src/nbd/server.ts";
import { openFileSource } from "../../src/nbd/sources/file.ts";
import type { BlockSource } from "../../src/store/source.ts";
import { scratch } from "../lib/tmp.ts";

const MiB = 1 << 20;
let dir: string, img: string, orig: Uint8Array;
let server: NbdServer, source: BlockSource;

async function run(cmd: string[], timeoutMs = 30_000) {
  // Async spawn: the server under test runs in this same event loop.
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const t = setTimeout(() => p.kill(), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  return { code, stdout, stderr };
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  dir = scratch("nbd-interop-");
  img = join(dir, "disk.img");
  // 2 MiB data, 1 MiB never written (a hole), 1 MiB data.
  const fd = openSync(img, "w");
  writeSync(fd, crypto.getRandomValues(new Uint8Array(2 * MiB)), 0, 2 * MiB, 0);
  writeSync(fd, crypto.getRandomValues(new Uint8Array(MiB)), 0, MiB, 3 * MiB);
  closeSync(fd);
  orig = new Uint8Array(readFileSync(img));
  source = await openFileSource(img);
  server = await startNbdServer({ source, listen: `unix:${join(dir, "nbd.sock")}`, exportName: "disk", description: "interop" });
});
afterAll(async () => {
  await server?.close();
  await source?.close?.();
  rmSync(dir, { recursive: true, force: true });
});

describe("nbd interop (libnbd)", () => {
  test("nbdinfo reports size, flags and block sizes", async () => {
    const r = await run(["nbdinfo", "--json", server.address]);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout).exports[0];
    expect(e["export-name"]).toBe("disk");
    expect(e["export-size"]).toBe(4 * MiB);
    expect(e.description).toBe("interop");
    expect(e.is_read_only).toBe(true);
    expect(e.can_multi_conn).toBe(true);
    expect(e.can_flush).toBe(true);
    expect(e.can_cache).toBe(true);
    expect(e.can_trim).toBe(false);
    expect(e.block_size_minimum).toBe(1);
    expect(e.block_size_maximum).toBe(32 * MiB);
    expect(e.contexts).toContain("base:allocation");
  });

  test("nbdinfo --map shows the hole", async () => {
    const r = await run(["nbdinfo", "--map", server.address]);
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).slice(0, 3).map(Number));
    expect(rows).toEqual([[0, 2 * MiB, 0], [2 * MiB, MiB, 3], [3 * MiB, MiB, 0]]);
  });

  test("nbdcopy copies the export byte for byte", async () => {
    const out = join(dir, "copy.img");
    const r = await run(["nbdcopy", server.address, out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(orig));
  });
});

describe("nbd interop (qemu)", () => {
  test("qemu-img compare: identical to the file, different from a changed copy", async () => {
    expect((await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", img, server.address])).code).toBe(0);
    const other = join(dir, "other.img");
    const changed = orig.slice();
    changed[3 * MiB + 12345] ^= 0xff;
    writeFileSync(other, changed);
    expect((await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", other, server.address])).code).toBe(1);
  });

  test("qemu-io random reads match the file", async () => {
    const args: string[] = [];
    const reads: [number, number][] = [];
    for (let i = 0; i < 24; i++) {
      const len = 1 + Math.floor(Math.random() * 3000);
      const off = Math.floor(Math.random() * (4 * MiB - len));
      reads.push([off, len]);
      args.push("-c", `read -v ${off} ${len}`);
    }
    args.push("-c", `read -P 0 ${2 * MiB} ${MiB}`);
    const r = await run(["qemu-io", "-f", "raw", "-r", ...args, server.address]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("Pattern verification failed");
    // Dump lines look like "00000400:  aa bb ...  text"; collect them per read.
    const got: number[][] = [];
    let cur: number[] | null = null;
    for (const line of r.stdout.split("\n")) {
      const m = /^([0-9a-f]{8}):\s+((?:[0-9a-f]{2} ?)+)/.exec(line);
      if (m) {
        if (!cur) got.push((cur = []));
        cur.push(...m[2].trim().split(" ").map((h) => parseInt(h, 16)));
      } else if (line.startsWith("read ")) cur = null;
    }
    expect(got.length).toBe(reads.length);
    reads.forEach(([off, len], i) => expect(Buffer.compare(Buffer.from(got[i]), orig.subarray(off, off + len))).toBe(0));
  });
});

describe("inetboot nbd --cow (CLI over TCP)", () => {
  test("writes land in the overlay, read back, base unchanged", async () => {
    const p = Bun.spawn([process.execPath, "src/main.ts", "nbd", img, "--listen", "tcp:127.0.0.1:0", "--cow"], {
      cwd: join(import.meta.dir, "../.."),
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const reader = p.stderr.getReader();
      let err = "";
      while (!/serving .* on (nbd:\S+)/.test(err)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`server exited: ${err}`);
        err += new TextDecoder().decode(value);
      }
      expect(err).toContain(`serving ${img} (${4 * MiB} bytes`);
      const uri = /on (nbd:\S+)/.exec(err)![1];
      const w = await run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 1000 70000", "-c", `write -z ${3 * MiB} 8192`, "-c", "flush", uri]);
      expect(w.code).toBe(0);
      // A second connection sees the writes (the overlay lives in the server).
      const r = await run(["qemu-io", "-f", "raw", "-r", "-c", "read -P 0xab 1000 70000", "-c", `read -P 0 ${3 * MiB} 8192`, "-c", `read -P 0 ${2 * MiB} 4096`, uri]);
      expect(r.stdout).not.toContain("Pattern verification failed");
      expect(r.code).toBe(0);
      const bad = await run(["qemu-io", "-f", "raw", "-r", "-c", "read -P 0xac 1000 100", uri]);
      expect(bad.stdout).toContain("Pattern verification failed");
      expect(sha(readFileSync(img))).toBe(sha(orig));
      p.kill("SIGINT");
      expect(await p.exited).toBe(0);
    } finally {
      p.kill();
    }
  });
});
