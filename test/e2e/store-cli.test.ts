// The pack/info/verify commands as a user runs them: data on stdout, one-line errors, exit codes.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import { makeImage, tmp } from "../unit/store-fixtures.ts";

function cli(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: join(import.meta.dir, "../.."), stderr: "pipe", stdout: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("store CLI", () => {
  const dir = tmp("ibstore-cli-");
  const img = join(dir, "disk.img");
  writeFileSync(img, makeImage(65536));
  const store = join(dir, "store");

  test("pack prints totals on stdout and progress on stderr", () => {
    const r = cli("pack", img, store, "--chunk-size", "64K", "--level", "1");
    expect(r.code).toBe(0);
    expect(r.out).toContain("chunks: 8\n");
    expect(r.out).toContain("stored: 4\n");
    expect(r.out).toContain("deduplicated: 2\n");
    expect(r.out).toContain("zero: 2\n");
    expect(r.out).toMatch(/compression ratio: \d+\.\d\d/);
    expect(r.err).toContain("pack 100%");
    const files = readdirSync(join(store, "chunks")).flatMap((d) => readdirSync(join(store, "chunks", d)));
    expect(files.length).toBe(4);
    const again = cli("pack", img, store, "--chunk-size", "64K", "--name", "second");
    expect(again.out).toContain("stored: 0\n");
  });

  test("pack - reads the image from a pipe: the same index as packing the file", () => {
    const piped = join(dir, "piped");
    const p = Bun.spawnSync(["sh", "-c", `cat "$1" | "$2" src/main.ts pack - "$3" --chunk-size 64K`, "sh", img, process.execPath, piped], {
      cwd: join(import.meta.dir, "../.."), stdout: "pipe", stderr: "pipe",
    });
    expect(p.exitCode).toBe(0);
    expect(p.stdout.toString()).toContain("chunks: 8\n");
    expect(Buffer.from(readFileSync(join(piped, "index"))).equals(readFileSync(join(store, "index")))).toBe(true);
    const empty = Bun.spawnSync(["sh", "-c", `: | "$1" src/main.ts pack - "$2"`, "sh", process.execPath, join(dir, "nothing")], { cwd: join(import.meta.dir, "../.."), stderr: "pipe" });
    expect(empty.exitCode).toBe(1);
    expect(empty.stderr.toString()).toBe("inetboot: image is empty: standard input\n");
  });

  test("info and verify on a directory", () => {
    const i = cli("info", store);
    expect(i.code).toBe(0);
    expect(i.out).toContain("chunks: 8\nzero chunks: 2\nunique chunks: 4\n");
    expect(cli("info", join(store, "second.index")).code).toBe(0);
    const v = cli("verify", store);
    expect(v.code).toBe(0);
    expect(v.out).toContain("checked: 4 chunks, 0 missing, 0 bad");
  });

  test("bad input: one line, exit 1", () => {
    for (const args of [
      ["pack", join(dir, "missing.img"), store],
      ["pack", img, store, "--chunk-size", "100K"],
      ["pack", img, store, "--chunk-size", "8M"],
      ["pack", img, store, "--level", "fast"],
      ["info", join(dir, "nowhere")],
      ["verify", dir], // a dir without an index
      ["info", img], // a file that is not an index
    ]) {
      const r = cli(...args);
      expect(r.code).toBe(1);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toStartWith("inetboot: ");
    }
    writeFileSync(join(dir, "corrupt.index"), Buffer.concat([Buffer.from("IBSTORE\0\x01\x00", "latin1"), Buffer.alloc(100, 7)]));
    const c = cli("info", join(dir, "corrupt.index"));
    expect(c.code).toBe(1);
    expect(c.err).toContain("corrupt index");
  });
});
