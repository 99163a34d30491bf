// Keys, detached signatures and every refusal reason of verifyManifest, on real bytes.
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { publicFromSeed, signBytes, verifyBytes } from "../../src/manifest/ed25519.ts";
import { KeyError, ManifestError, type RefusalReason } from "../../src/manifest/errors.ts";
import {
  formatPrivateKey, formatPublicKey, generateKeyPair, keyIdOf, loadTrustedKeys, publicKeyOf, readPrivateKey, readPublicKey, unsignedAllowed,
} from "../../src/manifest/keys.ts";
import { signDetached } from "../../src/manifest/sign.ts";
import { parseSignatures, signaturePathFor } from "../../src/manifest/signature.ts";
import { verifyDetached, verifyManifest, verifyManifestDetailed } from "../../src/manifest/verify.ts";
import { scratch } from "../lib/tmp.ts";

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const enc = (s: string) => new TextEncoder().encode(s);
const NOW = new Date("2029-06-01T00:00:00Z");

const MANIFEST = enc(JSON.stringify({
  format: 1, name: "debian", version: 7, expires: "2030-01-01T00:00:00Z",
  entries: [{ name: "live", kernel: { url: "vmlinuz", size: 3, sha256: "cd".repeat(32) } }],
}, null, 2) + "\n");

const signer = generateKeyPair();
const other = generateKeyPair();
const trusted = [publicKeyOf(signer)];
const SIG = signDetached(MANIFEST, signer);

function refusal(f: () => unknown): ManifestError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    expect((e as Error).message.split("\n")).toHaveLength(1);
    return e as ManifestError;
  }
  throw new Error("not refused");
}

function expectRefused(reason: RefusalReason, f: () => unknown, re: RegExp): void {
  const e = refusal(f);
  expect([e.reason, e.message]).toEqual([reason, expect.stringMatching(re)]);
}

describe("Ed25519", () => {
  test("RFC 8032 test vectors 1 and 2", () => {
    const seed1 = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    expect(Buffer.from(publicFromSeed(seed1)).toString("hex")).toBe("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    const sig1 = signBytes(seed1, new Uint8Array());
    expect(Buffer.from(sig1).toString("hex")).toBe(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    const seed2 = hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
    const pub2 = publicFromSeed(seed2);
    expect(Buffer.from(pub2).toString("hex")).toBe("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    const sig2 = hex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
    expect(Buffer.from(signBytes(seed2, hex("72"))).toString("hex")).toBe(Buffer.from(sig2).toString("hex"));
    expect(verifyBytes(pub2, hex("72"), sig2)).toBe(true);
    expect(verifyBytes(pub2, hex("73"), sig2)).toBe(false);
    expect(verifyBytes(pub2, hex("72"), sig2.subarray(1))).toBe(false);
  });
});

describe("key files", () => {
  test("round trip, id = first 8 bytes of sha256(public key)", () => {
    const k = generateKeyPair();
    expect(k.id).toBe(new Bun.CryptoHasher("sha256").update(k.pub).digest("hex").slice(0, 16));
    const pubText = formatPublicKey(publicKeyOf(k));
    expect(pubText).toBe(`inetboot-ed25519-public ${Buffer.from(k.pub).toString("base64")} ${k.id}\n`);
    expect(readPublicKey(pubText)).toEqual({ id: k.id, raw: k.pub });
    const back = readPrivateKey(formatPrivateKey(k));
    expect(back).toEqual(k);
    expect(readPublicKey(`# a comment\n\n  ${pubText}`).id).toBe(k.id);
  });

  test("bad key files: one clear line each", () => {
    const k = generateKeyPair();
    const pubText = formatPublicKey(publicKeyOf(k));
    const b64 = Buffer.from(k.pub).toString("base64");
    const cases: Array<[string, RegExp]> = [
      ["", /expected one "inetboot-ed25519-public …" line, found 0/],
      [pubText + pubText, /found 2 key lines/],
      [formatPrivateKey(k), /not an inetboot-ed25519-public key file \(this is a private key\)/],
      [`inetboot-ed25519-public ${b64}\n`, /expected "inetboot-ed25519-public <base64 key> <key id>"/],
      [`inetboot-ed25519-public ${b64.slice(4)} ${k.id}\n`, /not base64 of 32 bytes/],
      [`inetboot-ed25519-public ${b64} XYZ\n`, /key id "XYZ" is not 16 hex digits/],
      [`inetboot-ed25519-public ${b64} ${"0".repeat(16)}\n`, new RegExp(`key id 0{16} does not match the key \\(${k.id}\\)`)],
    ];
    for (const [text, re] of cases) {
      expect(() => readPublicKey(text, "k.pub")).toThrow(KeyError);
      expect(() => readPublicKey(text, "k.pub")).toThrow(re);
    }
    expect(() => readPrivateKey(pubText, "k.key")).toThrow(/k\.key: not an inetboot-ed25519-private key file \(this is a public key\)/);
  });

  test("loadTrustedKeys reads *.pub only; a missing dir is no keys; unsignedAllowed reads the switch file", () => {
    const d = scratch("ib-trust-");
    expect(loadTrustedKeys(join(d, "none"))).toEqual([]);
    writeFileSync(join(d, "b.pub"), formatPublicKey(publicKeyOf(other)));
    writeFileSync(join(d, "a.pub"), formatPublicKey(publicKeyOf(signer)));
    writeFileSync(join(d, "a.key"), formatPrivateKey(signer));
    expect(loadTrustedKeys(d).map((k) => k.id)).toEqual([signer.id, other.id]);
    writeFileSync(join(d, "c.pub"), "junk\n");
    expect(() => loadTrustedKeys(d)).toThrow(/c\.pub: not an inetboot-ed25519-public key file/);
    expect(unsignedAllowed(join(d, "allow-unsigned"))).toBe(false);
    writeFileSync(join(d, "allow-unsigned"), "");
    expect(unsignedAllowed(join(d, "allow-unsigned"))).toBe(true);
  });
});

describe("detached signatures", () => {
  test("format: one line with key id and base64 signature, over the exact bytes", () => {
    expect(SIG).toMatch(new RegExp(`^inetboot-ed25519-signature ${signer.id} [A-Za-z0-9+/]{86}==\\n$`));
    const [s] = parseSignatures(SIG);
    expect(verifyBytes(signer.pub, MANIFEST, s!.sig)).toBe(true);
    expect(keyIdOf(signer.pub)).toBe(s!.keyId);
  });

  test("signature file paths", () => {
    expect(signaturePathFor("boot/MANIFEST.json")).toBe("boot/MANIFEST.sig");
    expect(signaturePathFor("http://h/x/boot.json?v=2")).toBe("http://h/x/boot.sig?v=2");
    expect(signaturePathFor("boot.sh")).toBe("boot.sh.sig");
  });

  test("verifyDetached accepts the signer and any line of a multi-signature file", () => {
    expect(verifyDetached(MANIFEST, SIG, trusted).id).toBe(signer.id);
    const both = signDetached(MANIFEST, other) + "# rotation\n" + SIG;
    expect(verifyDetached(MANIFEST, both, trusted).id).toBe(signer.id);
    expect(verifyDetached(MANIFEST, both, [publicKeyOf(other)]).id).toBe(other.id);
  });

  test("refusals: no signature, malformed, unknown key named, flipped bytes", () => {
    expectRefused("no-signature", () => verifyDetached(MANIFEST, "\n# nothing\n", trusted), /holds no signature/);
    expectRefused("bad-signature", () => verifyDetached(MANIFEST, "hello world\n", trusted), /signature file line 1: expected "inetboot-ed25519-signature/);
    expectRefused("bad-signature", () => verifyDetached(MANIFEST, SIG.replace(/ \S+\n$/, " AAAA\n"), trusted), /not base64 of 64 bytes/);
    expectRefused("unknown-key", () => verifyDetached(MANIFEST, signDetached(MANIFEST, other), trusted),
      new RegExp(`signed by unknown key ${other.id} \\(trusted keys: ${signer.id}\\)`));
    expectRefused("unknown-key", () => verifyDetached(MANIFEST, SIG, []), /trusted keys: none/);
    // One flipped bit anywhere in the manifest.
    for (const at of [0, 20, MANIFEST.length - 1]) {
      const m = MANIFEST.slice();
      m[at]! ^= 1;
      expectRefused("bad-signature", () => verifyDetached(m, SIG, trusted), new RegExp(`bad signature by trusted key ${signer.id}`));
    }
    // One flipped bit in the signature itself (R half and S half).
    const [s] = parseSignatures(SIG);
    for (const at of [0, 40, 63]) {
      const sig = s!.sig.slice();
      sig[at]! ^= 0x10;
      const text = `inetboot-ed25519-signature ${signer.id} ${Buffer.from(sig).toString("base64")}\n`;
      expectRefused("bad-signature", () => verifyDetached(MANIFEST, text, trusted), /bad signature by trusted key/);
    }
  });
});

describe("verifyManifest", () => {
  test("a signed, current manifest is returned with its key", () => {
    const r = verifyManifestDetailed(MANIFEST, SIG, trusted, { now: NOW, minVersion: 7 });
    expect(r.key?.id).toBe(signer.id);
    expect(r.manifest.name).toBe("debian");
    expect(verifyManifest(MANIFEST, SIG, trusted, { now: NOW }).version).toBe(7);
  });

  test("each refusal reason", () => {
    const o = { now: NOW };
    expectRefused("no-signature", () => verifyManifest(MANIFEST, null, trusted, o), /not signed .* does not allow unsigned manifests/);
    expectRefused("no-signature", () => verifyManifest(MANIFEST, "", trusted, o), /not signed/);
    expectRefused("unknown-key", () => verifyManifest(MANIFEST, signDetached(MANIFEST, other), trusted, o), new RegExp(`unknown key ${other.id}`));
    const flipped = MANIFEST.slice();
    flipped[30]! ^= 4;
    expectRefused("bad-signature", () => verifyManifest(flipped, SIG, trusted, o), /bad signature/);
    expectRefused("expired", () => verifyManifest(MANIFEST, SIG, trusted, { now: new Date("2030-01-01T00:00:00Z") }),
      /debian version 7 expired at 2030-01-01T00:00:00Z \(now 2030-01-01T00:00:00\.000Z\)/);
    expectRefused("rollback", () => verifyManifest(MANIFEST, SIG, trusted, { now: NOW, minVersion: 8 }), /debian version 7 is lower than version 8 seen before/);
    const bad = enc('{"format": 1, "name": "x"}');
    expectRefused("schema", () => verifyManifest(bad, signDetached(bad, signer), trusted, o), /bad manifest: missing field version/);
    // The signature is checked before the content is interpreted: a bad signature wins over bad JSON.
    expectRefused("bad-signature", () => verifyManifest(enc("{"), SIG, trusted, o), /bad signature/);
  });

  test("allowUnsigned: accepts no signature or an unknown key, still refuses a broken trusted signature", () => {
    const o = { now: NOW, allowUnsigned: true };
    expect(verifyManifestDetailed(MANIFEST, null, trusted, o).key).toBeNull();
    expect(verifyManifestDetailed(MANIFEST, signDetached(MANIFEST, other), trusted, o).key).toBeNull();
    expect(verifyManifestDetailed(MANIFEST, SIG, trusted, o).key?.id).toBe(signer.id);
    const flipped = MANIFEST.slice();
    flipped[5]! ^= 1;
    expectRefused("bad-signature", () => verifyManifest(flipped, SIG, trusted, o), /bad signature/);
    expectRefused("expired", () => verifyManifest(MANIFEST, null, trusted, { ...o, now: new Date("2031-01-01T00:00:00Z") }), /expired/);
  });
});

test("the boot's clock for expiry: never before the agent's build, nor before the server's Date", async () => {
  const { bootClock } = await import("../../src/boot/manifest-boot.ts");
  const built = Date.parse("2030-01-01T00:00:00Z"); // later than this test's own clock
  expect(bootClock(undefined, built).getTime()).toBe(built); // a dead RTC (1970) is not believed
  expect(bootClock("Tue, 01 Jan 2031 00:00:00 GMT", built).toISOString()).toBe("2031-01-01T00:00:00.000Z");
  expect(bootClock("Mon, 01 Jan 1990 00:00:00 GMT", built).getTime()).toBe(built); // only ever later
  expect(bootClock("garbage", 0).getTime()).toBeGreaterThan(Date.parse("2026-01-01T00:00:00Z"));
});
