// The kernel attach's handshake runs in PID 1 with blocking reads: a server that accepts and then
// says nothing must end in an error, not a frozen agent. (The netlink part needs a kernel with
// nbd: QEMU tests.)
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { attachNbd } from "../../src/nbd/kernel/attach.ts";
import { scratch } from "../lib/tmp.ts";

test("a server that accepts and never answers: the handshake fails after its timeout, with one line", () => {
  const path = join(scratch("nbd-attach-"), "silent.sock");
  const child = Bun.spawn([process.execPath, "-e", `Bun.listen({ unix: ${JSON.stringify(path)}, socket: { data() {} } }); setInterval(() => {}, 1000)`], { stdout: "ignore", stderr: "inherit" });
  try {
    for (let i = 0; i < 100 && !existsSync(path); i++) Bun.sleepSync(20);
    const t0 = performance.now();
    expect(() => attachNbd({ socketPath: path, handshakeTimeoutS: 1 })).toThrow(`nbd handshake with ${path}: no answer in 1 s`);
    expect(performance.now() - t0).toBeLessThan(3000);
  } finally {
    child.kill(9);
  }
});
