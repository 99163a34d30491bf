// src/cli/options.ts extraArgument: a positional word beyond those a command declares (citty would
// drop it silently), and restPositional, the last positional that takes all remaining words.
import { expect, test } from "bun:test";
import { extraArgument, restPositional } from "../../src/cli/options.ts";

const defs = {
  image: { type: "positional" },
  store: { type: "positional" },
  name: { type: "string", alias: "n" },
  quiet: { type: "boolean", alias: "q" },
};

test("declared positionals, options and their values are no extra argument", () => {
  for (const t of [
    ["img", "store"],
    ["img", "--name", "x", "store", "-q"],
    ["--name=x", "img", "-n", "y", "store"],
    ["img"], // a missing one is citty's error, not ours
    [],
    ["img", "--", "--store-looking"],
  ])
    expect(extraArgument(defs, t), t.join(" ")).toBeNull();
});

test("the first word past the declared ones is named, wherever it stands", () => {
  expect(extraArgument(defs, ["img", "store", "extra"])).toBe("extra");
  expect(extraArgument(defs, ["img", "store", "-q", "a", "b"])).toBe("a");
  expect(extraArgument(defs, ["a", "--name", "x", "b", "c"])).toBe("c");
  expect(extraArgument(defs, ["img", "--", "store", "--flag-like"])).toBe("--flag-like");
  expect(extraArgument({}, ["x"])).toBe("x");
});

test("a rest positional takes any number of words", () => {
  const rest = { line: restPositional({ type: "positional" }) };
  expect(extraArgument(rest, ["ip=dhcp", "inetboot.root=http://h/", "quiet"])).toBeNull();
});
