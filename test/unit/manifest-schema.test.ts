// Manifest schema: a valid manifest parses with defaults filled in; each bad input gives one clear
// line naming the field; the strict JSON reader reports positions and refuses duplicate keys.
import { describe, expect, test } from "bun:test";
import { ManifestError } from "../../src/manifest/errors.ts";
import { parseJsonStrict } from "../../src/manifest/json.ts";
import { candidateUrls, formatManifest, parseManifest, pickEntry } from "../../src/manifest/schema.ts";

const H = "ab".repeat(32);

function good(): any {
  return {
    format: 1,
    name: "debian",
    version: 7,
    expires: "2030-01-31T00:00:00Z",
    timeout: 3,
    mirrors: ["https://mirror.example/boot/"],
    entries: [
      { name: "live", title: "Debian live", kernel: { url: "vmlinuz", size: 100, sha256: H }, initrd: { url: "initrd.img", size: 5, sha256: H }, cmdline: "quiet", root: { url: "store/", fstype: "squashfs", rootpath: "/live/fs" } },
      { name: "rescue", default: true, kernel: { url: "https://cdn.example/k", size: 0, sha256: H.toUpperCase() } },
    ],
  };
}

function problem(doc: unknown): ManifestError {
  const text = typeof doc === "string" ? doc : JSON.stringify(doc);
  try {
    parseManifest(new TextEncoder().encode(text));
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    const me = e as ManifestError;
    expect(me.reason).toBe("schema");
    expect(me.message.split("\n")).toHaveLength(1);
    return me;
  }
  throw new Error(`accepted: ${text}`);
}

function mutate(f: (d: any) => void): any {
  const d = good();
  f(d);
  return d;
}

describe("manifest schema", () => {
  test("a valid manifest parses, with defaults and lowercase digests", () => {
    const m = parseManifest(new TextEncoder().encode(JSON.stringify(good())));
    expect(m.name).toBe("debian");
    expect(m.version).toBe(7);
    expect(m.timeout).toBe(3);
    expect(m.entries[0]).toEqual({
      name: "live", title: "Debian live", kernel: { url: "vmlinuz", size: 100, sha256: H }, initrd: { url: "initrd.img", size: 5, sha256: H },
      cmdline: "quiet", root: { url: "store/", fstype: "squashfs", rootpath: "/live/fs" }, default: false,
    });
    expect(m.entries[1]).toEqual({ name: "rescue", title: "rescue", kernel: { url: "https://cdn.example/k", size: 0, sha256: H }, cmdline: "", default: true });
    const min = parseManifest(JSON.stringify({ format: 1, name: "x", version: 0, expires: "2030-01-01T00:00+02:00", entries: [{ name: "a", kernel: { url: "k", size: 1, sha256: H } }] }));
    expect(min.timeout).toBe(5);
    expect(min.mirrors).toEqual([]);
  });

  test("formatManifest round-trips and leaves defaults out", () => {
    const m = parseManifest(JSON.stringify(good()));
    const text = formatManifest(m);
    expect(parseManifest(text)).toEqual(m);
    expect(text.endsWith("}\n")).toBe(true);
    expect(text).not.toContain('"default": false');
    expect(text).not.toContain('"title": "rescue"');
  });

  const cases: Array<[string, unknown, RegExp]> = [
    ["bad JSON with position", '{\n  "format": 1,\n  "name": x\n}', /JSON syntax error at line 3 column 11: unexpected "x"/],
    ["trailing comma", '{"format": 1,}', /line 1 column 14: trailing comma in object/],
    ["truncated", '{"format": 1, "entries": [', /line 1 column 27: unexpected end of input/],
    ["duplicate key", '{"format": 1, "format": 1}', /line 1 column 15: duplicate key "format"/],
    ["not an object", "[1]", /manifest: expected an object, got an array/],
    ["missing nested field", mutate((d) => delete d.entries[1].kernel.sha256), /^bad manifest: missing field entries\[1\]\.kernel\.sha256$/],
    ["missing top field", mutate((d) => delete d.expires), /^bad manifest: missing field expires$/],
    ["wrong type", mutate((d) => (d.entries[0].kernel.size = "100")), /entries\[0\]\.kernel\.size: expected an integer from 0 to \d+, got the string "100"/],
    ["negative size", mutate((d) => (d.entries[0].kernel.size = -1)), /entries\[0\]\.kernel\.size: expected an integer/],
    ["fractional version", mutate((d) => (d.version = 1.5)), /version: expected an integer from 0/],
    ["short hex", mutate((d) => (d.entries[0].initrd.sha256 = H.slice(1))), /entries\[0\]\.initrd\.sha256: expected 64 hex digits, got 63$/],
    ["non-hex", mutate((d) => (d.entries[0].kernel.sha256 = "z".repeat(64))), /entries\[0\]\.kernel\.sha256: expected 64 hex digits, got non-hex/],
    ["duplicate entry names", mutate((d) => (d.entries[1].name = "live")), /entries\[1\]\.name: duplicate entry name "live" \(also entries\[0\]\.name\)/],
    ["no entries", mutate((d) => (d.entries = [])), /entries: no entries/],
    ["entries not an array", mutate((d) => (d.entries = {})), /entries: expected an array of entries, got an object/],
    ["unknown field (typo)", mutate((d) => (d.entries[0].inird = d.entries[0].initrd)), /unknown field entries\[0\]\.inird/],
    ["future format", mutate((d) => (d.format = 2)), /format: unsupported format 2 \(this build reads format 1\)/],
    ["bad expiry", mutate((d) => (d.expires = "next tuesday")), /expires: expected an ISO 8601 time/],
    ["expiry without zone", mutate((d) => (d.expires = "2030-01-01T00:00:00")), /expires: expected an ISO 8601 time/],
    ["bad entry name", mutate((d) => (d.entries[0].name = "two words")), /entries\[0\]\.name: bad name "two words"/],
    ["two defaults", mutate((d) => (d.entries[0].default = true)), /entries\[1\]\.default: more than one default entry \(also entries\[0\]\)/],
    ["default not boolean", mutate((d) => (d.entries[0].default = "yes")), /entries\[0\]\.default: expected true or false/],
    ["ftp URL", mutate((d) => (d.entries[0].kernel.url = "ftp://x/k")), /entries\[0\]\.kernel\.url: URL "ftp:\/\/x\/k" is not http or https/],
    ["relative mirror", mutate((d) => (d.mirrors = ["boot/"])), /mirrors\[0\]: not an absolute URL/],
    ["cmdline too long", mutate((d) => (d.entries[0].cmdline = "a".repeat(2048))), /entries\[0\]\.cmdline: longer than 2047 bytes/],
    ["cmdline newline", mutate((d) => (d.entries[0].cmdline = "a\nb")), /entries\[0\]\.cmdline: contains a control character/],
    ["timeout too big", mutate((d) => (d.timeout = 99999)), /timeout: expected an integer from 0 to 3600/],
    ["root without url", mutate((d) => delete d.entries[0].root.url), /missing field entries\[0\]\.root\.url/],
    ["bad fstype", mutate((d) => (d.entries[0].root.fstype = "Ext4 !")), /entries\[0\]\.root\.fstype: bad filesystem type/],
    // rootpath and the root URL become words of stage 2's command line: no parameters smuggled in
    ["rootpath with a space", mutate((d) => (d.entries[0].root.rootpath = "/live/fs inetboot.url=http://evil.example/x.json")), /entries\[0\]\.root\.rootpath: bad rootpath .*without spaces or quotes/],
    ["rootpath with quotes", mutate((d) => (d.entries[0].root.rootpath = '/a "b c"')), /entries\[0\]\.root\.rootpath: bad rootpath/],
    ["relative rootpath", mutate((d) => (d.entries[0].root.rootpath = "live/fs")), /entries\[0\]\.root\.rootpath: bad rootpath/],
    ["root URL with a quote", mutate((d) => (d.entries[0].root.url = 'store/"x')), /entries\[0\]\.root\.url: URL .* contains white space or a quote/],
  ];
  for (const [what, doc, re] of cases) {
    test(`refuses: ${what}`, () => {
      expect(problem(doc).message).toMatch(re);
    });
  }

  test("every problem is listed; the message names the first and counts the rest", () => {
    const e = problem(mutate((d) => {
      delete d.entries[1].kernel.sha256;
      d.version = "7";
      d.entries[0].kernel.size = -3;
    }));
    expect(e.problems).toHaveLength(3);
    expect(e.message).toMatch(/^bad manifest: version: .* \(and 2 more problems\)$/);
    expect(e.problems).toContain("missing field entries[1].kernel.sha256");
  });

  test("bytes: not UTF-8, too large, BOM accepted", () => {
    expect(() => parseManifest(new Uint8Array([0x7b, 0xff, 0x7d]))).toThrow(/not UTF-8/);
    expect(() => parseManifest(new Uint8Array((1 << 20) + 1).fill(0x20))).toThrow(/too large for a manifest/);
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(JSON.stringify(good()))]);
    expect(parseManifest(bom).name).toBe("debian");
  });

  test("pickEntry: by name, else default, else first; unknown names list the choices", () => {
    const m = parseManifest(JSON.stringify(good()));
    expect(pickEntry(m).name).toBe("rescue");
    expect(pickEntry(m, "live").name).toBe("live");
    expect(() => pickEntry(m, "nope")).toThrow(/no entry "nope" \(entries: live, rescue\)/);
    const noDefault = parseManifest(JSON.stringify(mutate((d) => delete d.entries[1].default)));
    expect(pickEntry(noDefault).name).toBe("live");
  });

  test("candidateUrls: relative to the manifest, then each mirror; absolute URLs stay", () => {
    const m = { mirrors: ["https://m1.example/a/", "https://m2.example/b"] };
    expect(candidateUrls("https://boot.example/x/boot.json", m, "k/vmlinuz")).toEqual([
      "https://boot.example/x/k/vmlinuz", "https://m1.example/a/k/vmlinuz", "https://m2.example/b/k/vmlinuz",
    ]);
    expect(candidateUrls("https://boot.example/x/boot.json", m, "http://cdn.example/k")).toEqual(["http://cdn.example/k"]);
  });
});

describe("strict JSON", () => {
  test("matches JSON.parse on valid input", () => {
    for (const s of ['{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n"],"b":{}}', "[]", ' "s" ', "0", '{"__proto__": 1}']) {
      expect(parseJsonStrict(s)).toEqual(JSON.parse(s));
    }
  });
  test("refuses what RFC 8259 refuses", () => {
    for (const s of ["01", "[1,]", "'a'", '"\t"', "NaN", "-", "1 2", '{"a" 1}', '"\\x"', "", "[".repeat(100) + "]".repeat(100)]) {
      expect(() => parseJsonStrict(s)).toThrow(/JSON syntax error at line \d+ column \d+/);
    }
  });
});

test("root.sha256 (the pin of the root store's index) round-trips, lowercased, and must be 64 hex digits; stage 2 gets it", async () => {
  const doc = mutate((d) => (d.entries[0].root.sha256 = "AB".repeat(32)));
  const m = parseManifest(new TextEncoder().encode(JSON.stringify(doc)));
  expect(m.entries[0]!.root!.sha256).toBe("ab".repeat(32));
  expect(parseManifest(new TextEncoder().encode(formatManifest(m))).entries[0]!.root!.sha256).toBe("ab".repeat(32));
  expect(problem(mutate((d) => (d.entries[0].root.sha256 = "12"))).message).toMatch(/entries\[0\]\.root\.sha256: expected 64 hex digits, got 2$/);
  const { stage2Cmdline } = await import("../../src/boot/manifest-boot.ts");
  const line = stage2Cmdline(m.entries[0]!, { logJson: false } as never, "http://h/store/");
  expect(line).toBe(`quiet inetboot.root=http://h/store/ inetboot.rootfstype=squashfs inetboot.rootpath=/live/fs inetboot.rootsha256=${"ab".repeat(32)}`);
});
