// The root's NBD daemon (`@inetboot-nbd`) run on the host the way the agent starts it (same role,
// same JSON config in the environment), read by nbdcopy: a bug that throws in a timer or leaves a
// promise rejected must not end the process that every read of the root depends on.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { makeExt4Image, ROOT, run, sha, startServe, type ServeProcess } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

let dir: string, imgPath: string, serve: ServeProcess;

beforeAll(async () => {
  dir = scratch("nbd-daemon-");
  imgPath = makeExt4Image(dir, 8, ["/usr/bin/qemu-img"]);
  const pack = Bun.spawnSync([process.execPath, "src/main.ts", "pack", imgPath, join(dir, "www/store"), "--chunk-size", "64K"], { cwd: ROOT, stderr: "pipe" });
  if (pack.exitCode !== 0) throw new Error(`pack failed: ${pack.stderr.toString()}`);
  serve = await startServe(join(dir, "www"));
});

afterAll(async () => {
  await serve?.stop();
});

async function daemon(env: Record<string, string>) {
  const cfg = {
    url: serve.url + "store/",
    mirrors: [],
    socket: join(dir, `nbd-${Math.random().toString(36).slice(2)}.sock`),
    readyFile: join(dir, `ready-${Math.random().toString(36).slice(2)}`),
    errorFile: join(dir, `error-${Math.random().toString(36).slice(2)}`),
  };
  const proc = Bun.spawn([process.execPath, "src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, INETBOOT_ROLE: "nbd-daemon", INETBOOT_NBD: JSON.stringify(cfg), ...env },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  let stderr = "";
  const drained = (async () => {
    for await (const c of proc.stderr) stderr += new TextDecoder().decode(c);
  })();
  for (let i = 0; !existsSync(cfg.readyFile); i++) {
    if (proc.exitCode !== null) break;
    if (i > 400) throw new Error("daemon not ready after 20 s");
    await Bun.sleep(50);
  }
  return {
    uri: `nbd+unix:///?socket=${cfg.socket}`,
    proc,
    stderr: () => stderr,
    async stop() {
      proc.kill("SIGKILL"); // it ignores SIGTERM, as it must under the booted system
      await proc.exited;
      await drained;
    },
  };
}

test("a bug in a timer and an unhandled rejection: the daemon reports them and keeps serving the image", async () => {
  const d = await daemon({ INETBOOT_TEST_DAEMON_BUG: "1" });
  try {
    await Bun.sleep(300); // the injected bugs have fired
    expect(d.proc.exitCode).toBeNull();
    const out = join(dir, "copy.img");
    const r = await run(["nbdcopy", d.uri, out], 60_000);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(readFileSync(imgPath)));
    const lines = d.stderr().split("\n").filter((l) => l.includes("internal error, still serving"));
    expect(lines).toHaveLength(2);
    expect(lines.some((l) => l.includes("injected bug in a timer"))).toBe(true);
    expect(lines.some((l) => l.includes("injected rejection"))).toBe(true);
  } finally {
    await d.stop();
  }
}, 90_000);
