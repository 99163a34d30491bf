// Rollback state: highest version per name, persisted atomically in one JSON file.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSeen, recordSeen, SEEN_FILE } from "../../src/manifest/rollback.ts";
import { scratch } from "../lib/tmp.ts";

const fresh = () => scratch("ib-seen-");

describe("rollback state", () => {
  test("nothing seen in a new or missing directory", () => {
    expect(readSeen(fresh(), "debian")).toBeUndefined();
    expect(readSeen(join(fresh(), "not", "there"), "debian")).toBeUndefined();
  });

  test("records per name, only ever raises, survives a re-read from disk", () => {
    const d = join(fresh(), "cache"); // created on first record
    expect(recordSeen(d, "debian", 5)).toBe(5);
    expect(recordSeen(d, "fedora", 2)).toBe(2);
    expect(recordSeen(d, "debian", 3)).toBe(5);
    expect(recordSeen(d, "debian", 9)).toBe(9);
    expect(readSeen(d, "debian")).toBe(9);
    expect(readSeen(d, "fedora")).toBe(2);
    expect(readSeen(d, "other")).toBeUndefined();
    expect(JSON.parse(readFileSync(join(d, SEEN_FILE), "utf8"))).toEqual({ format: 1, seen: { debian: 9, fedora: 2 } });
    // tmp + rename: no leftovers beside the file.
    expect(readdirSync(d)).toEqual([SEEN_FILE]);
  });

  test("a damaged file is an error naming it, not an empty history", () => {
    for (const junk of ["{", "null", '{"format":1,"seen":[]}', '{"format":1,"seen":{"a":"7"}}', '{"format":2,"seen":{}}']) {
      const d = fresh();
      writeFileSync(join(d, SEEN_FILE), junk);
      expect(() => readSeen(d, "a")).toThrow(new RegExp(`${SEEN_FILE} is damaged`));
      expect(() => recordSeen(d, "a", 1)).toThrow(/is damaged/);
      expect(readFileSync(join(d, SEEN_FILE), "utf8")).toBe(junk);
    }
  });

  test("bad versions are refused", () => {
    const d = fresh();
    for (const v of [-1, 1.5, Number.NaN]) expect(() => recordSeen(d, "a", v)).toThrow(/bad manifest version/);
    expect(existsSync(join(d, SEEN_FILE))).toBe(false);
  });
});

describe("a hostile cache stick (its files are anyone's)", () => {
  test("a FIFO or a huge file as the record is 'damaged' at once, not a read that never returns; a FIFO at the tmp name is not written through", () => {
    const dir = fresh();
    const fifo = join(dir, SEEN_FILE);
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const t0 = performance.now();
    expect(() => readSeen(dir, "debian")).toThrow(/is damaged \(not a regular file/);
    expect(performance.now() - t0).toBeLessThan(1000);
    const big = fresh();
    writeFileSync(join(big, SEEN_FILE), " ".repeat(100_000));
    expect(() => readSeen(big, "debian")).toThrow(/is damaged \(not a regular file of at most 65536 bytes\)/);
    // "constructor" and friends are not versions seen
    expect(readSeen(fresh(), "constructor")).toBeUndefined();
    const tmpFifo = fresh();
    expect(Bun.spawnSync(["mkfifo", join(tmpFifo, `${SEEN_FILE}.tmp-${process.pid}`)]).exitCode).toBe(0);
    expect(recordSeen(tmpFifo, "debian", 3)).toBe(3);
    expect(readSeen(tmpFifo, "debian")).toBe(3);
  });
});
