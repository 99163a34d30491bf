// netrc parsing and the credentials it puts into a request's URL (pure logic; the e2e test
// test/e2e/netrc.test.ts reads a store behind nginx's auth_basic, on the host and in a boot).
import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { authorize, netrcFileFor, parseNetrc, readNetrcFile, useNetrcFile, withNetrc } from "../../src/fetch/netrc.ts";
import { scratch } from "../lib/tmp.ts";

test("machine, login, password; default; comments, quoted words, account and macdef", () => {
  const text = `# stores
machine Store.Example.org login boot password s3cret
machine mirror.example login "user name" password "pa ss\\"word" account ignored
macdef init
cd /pub
bin

default login anon password ""
machine nologin.example password x
`;
  expect(parseNetrc(text)).toEqual([
    { machine: "store.example.org", login: "boot", password: "s3cret" },
    { machine: "mirror.example", login: "user name", password: 'pa ss"word' },
    { machine: null, login: "anon", password: "" },
  ]);
  expect(parseNetrc("machine a.example login u password p machine b.example login v password q")).toHaveLength(2); // one line works too
  expect(parseNetrc("")).toEqual([]);
  // "#" starts a comment wherever a word starts (indented, after an entry); quoted, it is a character
  expect(parseNetrc('  # indented\nmachine h login u password "#p" # trailing\n')).toEqual([{ machine: "h", login: "u", password: "#p" }]);
});

test("a malformed netrc is an error that says what is wrong", () => {
  expect(() => parseNetrc("login x")).toThrow('"login" before any "machine"');
  expect(() => parseNetrc("machine a.example login")).toThrow('"login" has no value');
  expect(() => parseNetrc("machine a.example user x")).toThrow('unknown word "user"');
  expect(() => parseNetrc('machine a.example login "x')).toThrow("a quoted word is not closed");
});

test("credentials go into the URL of a matching host only, encoded, and never over the URL's own", () => {
  const e = parseNetrc('machine store.example login boot password "s3c:r@t/"\nmachine other.example login o password p');
  expect(withNetrc("https://store.example/s/index", e)).toBe("https://boot:s3c%3Ar%40t%2F@store.example/s/index");
  expect(withNetrc("http://STORE.example:8080/s/", e)).toBe("http://boot:s3c%3Ar%40t%2F@store.example:8080/s/"); // any port, any case
  expect(withNetrc("https://me:mine@store.example/s/", e)).toBe("https://me:mine@store.example/s/");
  expect(withNetrc("https://cdn.example/s/", e)).toBe("https://cdn.example/s/");
  expect(withNetrc("https://cdn.example/s/", [...e, ...parseNetrc("default login anon password x")])).toBe("https://anon:x@cdn.example/s/");
  expect(withNetrc("file:///etc/passwd", parseNetrc("default login a password b"))).toBe("file:///etc/passwd");
  // the first machine entry for a host wins over a later one and over default
  expect(withNetrc("http://h/", parseNetrc("default login d password d machine h login one password 1 machine h login two password 2"))).toBe("http://one:1@h/");
});

const dir = scratch("ib-netrc-");
afterEach(() => {
  delete process.env.INETBOOT_NETRC;
});

test("--netrc FILE and INETBOOT_NETRC: a missing or malformed file is one line naming it", () => {
  expect(() => readNetrcFile(join(dir, "none"))).toThrow(`netrc file ${join(dir, "none")}: no such file`);
  writeFileSync(join(dir, "bad"), "machine x.example frobnicate y\n");
  expect(() => useNetrcFile(join(dir, "bad"))).toThrow(`netrc file ${join(dir, "bad")}: unknown word "frobnicate"`);
  writeFileSync(join(dir, "env"), "machine env.example login e password f\n");
  expect(authorize("http://env.example/x")).toBe("http://env.example/x"); // nothing chosen yet
  process.env.INETBOOT_NETRC = join(dir, "env");
  expect(authorize("http://env.example/x")).toBe("http://e:f@env.example/x");
  expect(netrcFileFor("http://env.example/x")).toBe(join(dir, "env"));
  expect(netrcFileFor("http://elsewhere.example/x")).toBeNull();
});
