// Rollback protection at the agent's boundary: the agent's own manifest loader, against a real
// HTTP server, with a state directory standing in for the cache medium. Once version 7 booted,
// version 6 is refused (reason "rollback"), and the state survives as a file on the medium.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadVerifiedManifest } from "../../src/boot/manifest-boot.ts";
import { readPublicKey, ManifestError } from "../../src/manifest/index.ts";
import { ROOT } from "../lib/qemu.ts";
import { run } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

const tmp = scratch("inetboot-rollback-");
const www = join(tmp, "www");
const state = join(tmp, "stick");
let server: ReturnType<typeof Bun.serve>;
const ib = (...a: string[]) => run([process.execPath, join(ROOT, "src/main.ts"), ...a]);

beforeAll(() => {
  mkdirSync(www);
  mkdirSync(state);
  writeFileSync(join(tmp, "vmlinuz"), "not really a kernel");
  ib("keygen", "--out", join(tmp, "k"));
  for (const v of [6, 7, 8]) {
    ib("manifest", "--name", "os", "--version", String(v), "--kernel", join(tmp, "vmlinuz"), "--out", join(www, `v${v}.json`));
    ib("sign", join(www, `v${v}.json`), "--key", join(tmp, "k.key"));
  }
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (r) => new Response(Bun.file(join(www, new URL(r.url).pathname))) });
});
afterAll(() => server.stop(true));

test("a lower version than the highest seen is refused; higher ones pass and raise the mark", async () => {
  const keys = [readPublicKey(readFileSync(join(tmp, "k.pub"), "utf8"))];
  const url = (v: number) => `http://127.0.0.1:${server.port}/v${v}.json`;
  expect((await loadVerifiedManifest(url(7), state, keys)).version).toBe(7);
  const refused = await loadVerifiedManifest(url(6), state, keys).catch((e) => e);
  expect(refused).toBeInstanceOf(ManifestError);
  expect((refused as ManifestError).reason).toBe("rollback");
  expect((await loadVerifiedManifest(url(7), state, keys)).version).toBe(7); // the same version is fine
  expect((await loadVerifiedManifest(url(8), state, keys)).version).toBe(8);
  expect(await loadVerifiedManifest(url(7), state, keys).catch((e) => (e as ManifestError).reason)).toBe("rollback");
  // Without a medium there is nothing to remember: version 6 passes.
  expect((await loadVerifiedManifest(url(6), undefined, keys)).version).toBe(6);
});
