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
let swapped = "v8";
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
  // an old manifest of another product, signed by the same key
  ib("manifest", "--name", "other-os", "--version", "1", "--kernel", join(tmp, "vmlinuz"), "--out", join(www, "other.json"));
  ib("sign", join(www, "other.json"), "--key", join(tmp, "k.key"));
  writeFileSync(join(www, "huge.json"), " ".repeat(2 << 20));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (r) => {
      const path = new URL(r.url).pathname;
      // /swap/boot.json (and .sig) serves whatever `swapped` names: a server that changes hands
      if (path.startsWith("/swap/")) return new Response(Bun.file(join(www, path.replace("/swap/boot", swapped))));
      if (path.startsWith("/moved/")) return Response.redirect(`/${path.slice(7)}`, 302);
      const f = Bun.file(join(www, path));
      return f.size ? new Response(f) : new Response("not found", { status: 404 });
    },
  });
});
afterAll(() => server.stop(true));

test("a lower version than the highest seen is refused; higher ones pass and raise the mark", async () => {
  const keys = [readPublicKey(readFileSync(join(tmp, "k.pub"), "utf8"))];
  const url = (v: number) => `http://127.0.0.1:${server.port}/v${v}.json`;
  expect((await loadVerifiedManifest(url(7), state, keys)).manifest.version).toBe(7);
  const refused = await loadVerifiedManifest(url(6), state, keys).catch((e) => e);
  expect(refused).toBeInstanceOf(ManifestError);
  expect((refused as ManifestError).reason).toBe("rollback");
  expect((await loadVerifiedManifest(url(7), state, keys)).manifest.version).toBe(7); // the same version is fine
  expect((await loadVerifiedManifest(url(8), state, keys)).manifest.version).toBe(8);
  expect(await loadVerifiedManifest(url(7), state, keys).catch((e) => (e as ManifestError).reason)).toBe("rollback");
  // Without a medium there is nothing to remember: version 6 passes.
  expect((await loadVerifiedManifest(url(6), undefined, keys)).manifest.version).toBe(6);
});

test("another manifest name served at the same URL does not start a count of its own (rollback by name swap)", async () => {
  const keys = [readPublicKey(readFileSync(join(tmp, "k.pub"), "utf8"))];
  const dir = join(tmp, "stick-swap");
  mkdirSync(dir);
  const url = `http://127.0.0.1:${server.port}/swap/boot.json`;
  swapped = "v8";
  expect((await loadVerifiedManifest(url, dir, keys)).manifest.version).toBe(8);
  swapped = "other";
  const e = await loadVerifiedManifest(url, dir, keys).catch((x) => x);
  expect((e as ManifestError).reason).toBe("rollback");
  // the same manifest at a URL of its own is not a rollback
  expect((await loadVerifiedManifest(`http://127.0.0.1:${server.port}/other.json`, dir, keys)).manifest.name).toBe("other-os");
});

test("a redirected manifest: its payload URLs resolve against where it finally came from; a huge one is refused unread", async () => {
  const keys = [readPublicKey(readFileSync(join(tmp, "k.pub"), "utf8"))];
  const r = await loadVerifiedManifest(`http://127.0.0.1:${server.port}/moved/v7.json`, undefined, keys);
  expect(r.base).toBe(`http://127.0.0.1:${server.port}/v7.json`);
  const big = await loadVerifiedManifest(`http://127.0.0.1:${server.port}/huge.json`, undefined, keys).catch((x) => x);
  expect((big as Error).message).toContain(`too large: ${2 << 20} bytes, at most ${1 << 20} expected`);
});
