// Building manifests from files: sizes and digests computed from the bytes, URLs, expiry specs.
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { addEntry, buildEntry, hashFile, newManifest, parseExpires, urlFor } from "../../src/manifest/build.ts";
import { parseManifest } from "../../src/manifest/schema.ts";
import { scratch } from "../lib/tmp.ts";

const d = scratch("ib-build-");
mkdirSync(join(d, "boot"));
writeFileSync(join(d, "boot", "vmlinuz"), "abc");
writeFileSync(join(d, "boot", "initrd img"), new Uint8Array(300000).fill(7));

describe("manifest build", () => {
  test("hashFile: size and SHA-256 of the bytes", async () => {
    expect(await hashFile(join(d, "boot", "vmlinuz"))).toEqual({ size: 3, sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" });
    const big = await hashFile(join(d, "boot", "initrd img"));
    expect(big.size).toBe(300000);
    expect(big.sha256).toBe(new Bun.CryptoHasher("sha256").update(new Uint8Array(300000).fill(7)).digest("hex"));
    await expect(hashFile(join(d, "nope"))).rejects.toThrow(/file not found: .*nope/);
    await expect(hashFile(d)).rejects.toThrow(/not a regular file/);
  });

  test("URLs: relative to the manifest's directory (escaped), or under a base URL", () => {
    expect(urlFor(join(d, "boot", "initrd img"), { relativeTo: d })).toBe("boot/initrd%20img");
    expect(urlFor(join(d, "boot", "vmlinuz"), { relativeTo: join(d, "boot") })).toBe("vmlinuz");
    expect(urlFor(join(d, "boot", "vmlinuz"), { relativeTo: d, baseUrl: "https://cdn.example/os" })).toBe("https://cdn.example/os/vmlinuz");
    expect(() => urlFor("x", { relativeTo: d, baseUrl: "not a url" })).toThrow(/bad base URL/);
  });

  test("a built manifest parses back identically; entries are appended, defaults move", async () => {
    const e = await buildEntry({ name: "live", kernel: join(d, "boot", "vmlinuz"), initrd: join(d, "boot", "initrd img"), cmdline: "quiet", default: true }, { relativeTo: d });
    const m = newManifest({ name: "debian", version: 3, expires: "2030-01-01T00:00:00Z", entries: [e] });
    expect(m.entries[0]!.kernel).toEqual({ url: "boot/vmlinuz", size: 3, sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" });
    const e2 = await buildEntry({ name: "rescue", kernel: join(d, "boot", "vmlinuz"), default: true }, { relativeTo: d });
    const m2 = addEntry(m, e2);
    expect(m2.entries.map((x) => [x.name, x.default])).toEqual([["live", false], ["rescue", true]]);
    expect(() => addEntry(m2, e2)).toThrow(/already has an entry named "rescue"/);
    expect(() => newManifest({ name: "bad name", version: 1, expires: "2030-01-01T00:00:00Z", entries: [e] })).toThrow(/name: bad name "bad name"/);
    expect(parseManifest(JSON.stringify(m2))).toEqual(m2);
  });

  test("expiry: durations from now, or an ISO time, normalised to UTC seconds", () => {
    const now = new Date("2029-01-01T00:00:00.500Z");
    expect(parseExpires("30d", now)).toBe("2029-01-31T00:00:00Z");
    expect(parseExpires("12h", now)).toBe("2029-01-01T12:00:00Z");
    expect(parseExpires("2w", now)).toBe("2029-01-15T00:00:00Z");
    expect(parseExpires("2030-05-01T10:00:00+02:00", now)).toBe("2030-05-01T08:00:00Z");
    for (const bad of ["soon", "30", "30y", "tomorrow 10am"]) expect(() => parseExpires(bad, now)).toThrow(/bad --expires/);    // a time already past: every agent would refuse the manifest, so building one is refused
    expect(() => parseExpires("2020-01-01T00:00:00Z", now)).toThrow('bad --expires "2020-01-01T00:00:00Z": that time has passed (now 2029-01-01T00:00:00Z)');
  });
});
