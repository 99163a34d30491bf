// Ed25519 (RFC 8032) through node:crypto, which Bun implements with BoringSSL, synchronously, and
// which works inside `bun build --compile` (checked with Bun 1.4.5). Keys travel as raw bytes:
// the 32-byte public key and the 32-byte private seed; DER wrappers are only for node:crypto.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";

// Fixed DER prefixes: SubjectPublicKeyInfo and PKCS#8 for id-Ed25519 (OID 1.3.101.112), RFC 8410.
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

function check(bytes: Uint8Array, n: number, what: string): void {
  if (bytes.length !== n) throw new Error(`Ed25519 ${what} must be ${n} bytes, got ${bytes.length}`);
}

function publicKeyObject(pub: Uint8Array) {
  check(pub, 32, "public key");
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: "der", type: "spki" });
}

function privateKeyObject(seed: Uint8Array) {
  check(seed, 32, "private key");
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

/** A fresh key pair: 32-byte seed and 32-byte public key. */
export function generate(): { seed: Uint8Array; pub: Uint8Array } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const seed = new Uint8Array(der.subarray(der.length - 32));
  return { seed, pub: publicFromSeed(seed) };
}

export function publicFromSeed(seed: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

export function signBytes(seed: Uint8Array, msg: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, msg, privateKeyObject(seed)));
}

/** True only for a valid 64-byte signature of exactly `msg` by `pub`; never throws on bad input. */
export function verifyBytes(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64 || pub.length !== 32) return false;
  try {
    return verify(null, msg, publicKeyObject(pub), sig);
  } catch {
    return false; // e.g. a public key that is not a curve point
  }
}
