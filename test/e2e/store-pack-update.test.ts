// Packing into a store that is already there, as a user updates an image: damaged chunk files are
// written again, and replacing an index (and the profile published for it) is said out loud.
import { expect, test } from "bun:test";
import { existsSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { removePackTemps } from "../../src/store/pack.ts";
import { join } from "node:path";
import { makeImage, prng, tmp } from "../unit/store-fixtures.ts";

function cli(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: join(import.meta.dir, "../.."), stderr: "pipe", stdout: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

test("a re-pack writes again chunk files that are empty or not a frame of their chunk; verify then passes", () => {
  const dir = tmp("ibpack-repair-");
  const img = join(dir, "disk.img");
  writeFileSync(img, makeImage(65536));
  const store = join(dir, "store");
  expect(cli("pack", img, store, "--chunk-size", "64K").code).toBe(0);
  const files = readdirSync(join(store, "chunks")).flatMap((d) => readdirSync(join(store, "chunks", d)).map((f) => join(store, "chunks", d, f)));
  truncateSync(files[0]!, 0); // what a power cut after the rename, before the data, leaves
  writeFileSync(files[1]!, "<html>not a chunk</html>");
  expect(cli("verify", store).code).toBe(1);
  const again = cli("pack", img, store, "--chunk-size", "64K");
  expect(again.code).toBe(0);
  expect(again.out).toContain("stored: 2 (2 of them replaced damaged chunk files)\n");
  expect(again.out).toContain("deduplicated: 4\n"); // the two intact ones, and two repeats inside the image
  const v = cli("verify", store);
  expect(v.out).toContain("checked: 4 chunks, 0 missing, 0 bad");
  expect(v.code).toBe(0);
});

test("packing another image over an index says so, and names the profile and boot pack made for the old one", () => {
  const dir = tmp("ibpack-replace-");
  const a = join(dir, "a.img");
  const b = join(dir, "b.img");
  writeFileSync(a, makeImage(65536));
  writeFileSync(b, prng(3 * 65536, 77));
  const store = join(dir, "store");
  const first = cli("pack", a, store, "--chunk-size", "64K");
  expect(first.err).not.toContain("warning");
  writeFileSync(join(store, "index.profile"), "recorded for a's index");
  writeFileSync(join(store, "index.bootpack"), "packed for a's index");
  const second = cli("pack", b, store, "--chunk-size", "64K");
  expect(second.code).toBe(0);
  const warnings = second.err.split("\n").filter((l) => l.startsWith("warning:"));
  expect(warnings).toEqual([
    `warning: pack: replaced the index that was at ${join(store, "index")} (its chunks stay in the store; pack with --name NAME to keep several images)`,
    `warning: pack: ${join(store, "index.profile")} was made for the replaced index and no longer matches: record and publish it again (docs/prefetch.md)`,
    `warning: pack: ${join(store, "index.bootpack")} was made for the replaced index and no longer matches: record and publish it again (docs/prefetch.md)`,
  ]);
  // under another name, nothing is replaced
  expect(cli("pack", a, store, "--chunk-size", "64K", "--name", "a").err).not.toContain("warning");
});

test("a pack that fails leaves no store it created; an existing store stays; Ctrl-C's tmp files go", () => {
  const dir = tmp("ibpack-fail-");
  const fresh = join(dir, "fresh");
  const empty = Bun.spawnSync(["sh", "-c", `: | "$1" src/main.ts pack - "$2"`, "sh", process.execPath, fresh], { cwd: join(import.meta.dir, "../.."), stderr: "pipe" });
  expect(empty.exitCode).toBe(1);
  expect(existsSync(fresh)).toBe(false);
  const kept = join(dir, "kept");
  writeFileSync(join(dir, "disk.img"), makeImage(65536));
  expect(cli("pack", join(dir, "disk.img"), kept, "--chunk-size", "64K").code).toBe(0);
  writeFileSync(join(dir, "empty.img"), "");
  expect(cli("pack", join(dir, "empty.img"), kept).code).toBe(1);
  expect(existsSync(join(kept, "index"))).toBe(true);
  // what Ctrl-C mid-write leaves: tmp files of this pid (removed), of another (left alone)
  const sub = join(kept, "chunks", readdirSync(join(kept, "chunks"))[0]!);
  for (const n of ["a.zst.tmp-4242-1", "b.zst.tmp-4242-17", "c.zst.tmp-4243-1"]) writeFileSync(join(sub, n), "partial");
  writeFileSync(join(kept, "index.tmp-4242-3"), "partial");
  removePackTemps(kept, 4242);
  expect(readdirSync(sub).filter((n) => n.includes(".tmp-"))).toEqual(["c.zst.tmp-4243-1"]);
  expect(existsSync(join(kept, "index.tmp-4242-3"))).toBe(false);
});
