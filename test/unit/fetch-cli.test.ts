// `inetboot fetch` as a user runs it: a subprocess of the real CLI against a local server.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { scratch } from "../lib/tmp.ts";

const BODY = crypto.getRandomValues(new Uint8Array(300_000));
const SHA = new Bun.CryptoHasher("sha256").update(BODY).digest("hex");
const ROOT = join(import.meta.dir, "../..");
let srv: ReturnType<typeof Bun.serve>;
let base: string;
let dir: string;

beforeAll(() => {
  dir = scratch("fetch-cli-");
  srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (r) => {
      const path = new URL(r.url).pathname;
      if (path === "/f.bin") return new Response(BODY);
      // part of a body, then nothing: a download still running
      if (path === "/stall.bin")
        return new Response(new ReadableStream({ start(c) { c.enqueue(BODY.subarray(0, 100_000)); } }), { headers: { "content-length": String(BODY.length) } });
      return new Response("no", { status: 404 });
    },
  });
  base = `http://127.0.0.1:${srv.port}`;
});
afterAll(() => {
  srv.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function cli(...args: string[]) {
  const p = Bun.spawn([process.execPath, "src/main.ts", "fetch", ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text(), p.exited]);
  return { out: new Uint8Array(out), err, code };
}

test("--out saves the file and prints sha256, size and path", async () => {
  const dest = join(dir, "a.bin");
  const r = await cli(`${base}/f.bin`, "--out", dest, "--sha256", SHA);
  expect(r.code).toBe(0);
  expect(new TextDecoder().decode(r.out)).toBe(`${SHA} ${BODY.length} ${dest}\n`);
  expect(await Bun.file(dest).bytes()).toEqual(BODY);
});

test("stdout not a terminal and no --out: the body goes to stdout, the summary to stderr", async () => {
  const r = await cli(`${base}/f.bin`);
  expect(r.code).toBe(0);
  expect(r.out).toEqual(BODY);
  expect(r.err).toContain(`${SHA} ${BODY.length}`);
});

test("wrong sha256: one line, exit 1, nothing saved", async () => {
  const dest = join(dir, "bad.bin");
  const r = await cli(`${base}/f.bin`, "-o", dest, "--sha256", "0".repeat(64));
  expect(r.code).toBe(1);
  expect(r.err).toBe(`inetboot: fetch ${base}/f.bin: sha256 mismatch: expected ${"0".repeat(64)}, got ${SHA}\n`);
  expect(existsSync(dest)).toBe(false);
  expect(existsSync(`${dest}.part`)).toBe(false);
});

test("wrong sha256 with the body on stdout: no bytes are emitted", async () => {
  const r = await cli(`${base}/f.bin`, "--sha256", "0".repeat(64));
  expect(r.code).toBe(1);
  expect(r.out.length).toBe(0);
});

test("Ctrl-C while the body for stdout is staged: the temp dir goes, nothing reaches stdout", async () => {
  const tmp = join(dir, "tmpdir");
  mkdirSync(tmp, { recursive: true });
  const p = Bun.spawn([process.execPath, "src/main.ts", "fetch", `${base}/stall.bin`, "--quiet"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, TMPDIR: tmp } });
  const out = new Response(p.stdout).arrayBuffer();
  for (let i = 0; i < 100 && !readdirSync(tmp).some((d: string) => existsSync(join(tmp, d, "body.part"))); i++) await Bun.sleep(50);
  expect(readdirSync(tmp).length).toBe(1); // staging
  p.kill("SIGINT");
  expect(await p.exited).toBe(130);
  expect((await out).byteLength).toBe(0);
  expect(readdirSync(tmp)).toEqual([]);
});

test("404: one line, exit 1", async () => {
  const r = await cli(`${base}/missing`, "-o", join(dir, "m"));
  expect(r.code).toBe(1);
  expect(r.err).toBe(`inetboot: fetch ${base}/missing: HTTP 404 Not Found\n`);
});

test("bad option value", async () => {
  const r = await cli(`${base}/f.bin`, "--retries", "many");
  expect(r.code).toBe(1);
  expect(r.err).toBe(`inetboot: --retries must be a non-negative number, got "many"\n`);
});
