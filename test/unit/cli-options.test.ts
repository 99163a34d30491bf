// src/cli/options.ts: unknown-option detection (what citty would silently ignore) and repeated
// options (citty keeps only the last).
import { expect, test } from "bun:test";
import { collectRepeated, unknownOption } from "../../src/cli/options.ts";

const defs = {
  source: { type: "positional" },
  listen: { type: "string" },
  cacheSize: { type: "string" },
  "cow-file": { type: "string" },
  prefetch: { type: "boolean" },
  quiet: { type: "boolean", alias: "q" },
  output: { type: "string", alias: ["o", "out"] },
};

test("declared options pass, in every spelling citty accepts", () => {
  for (const t of [
    ["x", "--listen", "unix:/s", "--prefetch"],
    ["--listen=tcp:1:2", "x"],
    ["--cache-size", "2G", "--cacheSize=3G", "--cow-file", "/f"],
    ["--no-prefetch", "-q", "-o", "file", "--out", "f2", "-qo", "f3"],
    ["--listen", "-weird-value"], // a string option's value, even one that looks like an option
    ["-5", "-"], // a negative number, stdin
    ["--", "--anything", "-z"], // positional after --
  ])
    expect(unknownOption(defs, t), t.join(" ")).toBeNull();
});

test("the first undeclared option is named as written", () => {
  expect(unknownOption(defs, ["x", "--cach", "/tmp"])).toBe("--cach");
  expect(unknownOption(defs, ["--listen=a", "--bogus=1"])).toBe("--bogus");
  expect(unknownOption(defs, ["--no-listen"])).toBe("--no-listen"); // not a boolean: no --no- form
  expect(unknownOption(defs, ["-qz"])).toBe("-z");
  expect(unknownOption(defs, ["--source", "x"])).toBe("--source"); // a positional is no option
  expect(unknownOption({}, ["--help-me"])).toBe("--help-me");
});

test("a repeated option: every value, both spellings, none after --; a missing value is an error", () => {
  expect(collectRepeated(["x", "--mirror", "http://a/", "--cache", "d", "--mirror=http://b/", "--", "--mirror", "c"], "mirror")).toEqual(["http://a/", "http://b/"]);
  expect(collectRepeated(["x"], "mirror")).toEqual([]);
  expect(() => collectRepeated(["x", "--mirror"], "mirror")).toThrow("--mirror needs a value");
  expect(() => collectRepeated(["--mirror", "--cache", "d"], "mirror")).toThrow("--mirror needs a value");
});
