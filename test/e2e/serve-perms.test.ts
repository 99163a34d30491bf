// inetboot serve run by an unprivileged user (as a deployment would), meeting a file it may not
// read: a 403 that the log explains, never a 500 carrying the server's own paths.
import { afterAll, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN } from "../lib/http-fixtures.ts";
import { freePort } from "../lib/servers.ts";
import { need } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

const dir = scratch("inetboot-serve-perms-");
let proc: ReturnType<typeof Bun.spawn> | undefined;
afterAll(() => proc?.kill(9));

test("a file the server may not read: 403 and a log line naming it; GET, HEAD and the access log agree", async () => {
  const setpriv = need("setpriv", "util-linux");
  const www = join(dir, "www");
  mkdirSync(www, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(www, 0o755);
  writeFileSync(join(www, "open.txt"), "hello\n");
  chmodSync(join(www, "open.txt"), 0o644);
  writeFileSync(join(www, "secret.txt"), "s3cret\n");
  chownSync(join(www, "secret.txt"), 0, 0);
  chmodSync(join(www, "secret.txt"), 0o600);
  const port = freePort();
  proc = Bun.spawn([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", BIN, "serve", www, "--port", String(port)], {
    stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/" },
  });
  const base = `http://127.0.0.1:${port}/`;
  for (let i = 0; !(await fetch(base + "open.txt").then((r) => r.ok, () => false)); i++) {
    if (i > 100 || proc.exitCode !== null) throw new Error(`serve did not start: ${await new Response(proc.stderr as ReadableStream).text()}`);
    await Bun.sleep(50);
  }
  const get = await fetch(base + "secret.txt");
  const body = await get.text();
  expect(get.status).toBe(403);
  expect(body).not.toContain(www); // no path of the server's machine
  expect((await fetch(base + "secret.txt", { method: "HEAD" })).status).toBe(403);
  proc.kill("SIGTERM");
  await proc.exited;
  const log = await new Response(proc.stderr as ReadableStream).text();
  expect(log).toContain("serve: /secret.txt: not readable by the server (check its permissions)");
  expect(log).toMatch(/"GET \/secret\.txt" 403 /);
  expect(log).toMatch(/"HEAD \/secret\.txt" 403 /);
  expect(log).not.toMatch(/"GET \/secret\.txt" 200 /);
});
