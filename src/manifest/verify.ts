// Verification (agent side, pure: bytes in, verdict out; the caller fetches and keeps state).
// Order: signature over the raw bytes first (nothing untrusted is interpreted before that), then
// schema, then expiry, then rollback. Each refusal is a ManifestError with one reason code.
import { verifyBytes } from "./ed25519.ts";
import { ManifestError } from "./errors.ts";
import type { PublicKey } from "./keys.ts";
import { parseManifest, type Manifest } from "./schema.ts";
import { parseSignatures } from "./signature.ts";

/**
 * Check a detached signature (a .sig file's text) over `bytes`; returns the trusted key that signed.
 * `what` names the signed thing in errors ("manifest http://…/boot.json", "script boot.sh").
 * Refuses with "no-signature" (empty .sig), "bad-signature" (malformed, or a trusted key's signature
 * does not match: the bytes or the signature were altered) or "unknown-key" (no trusted key signed).
 */
export function verifyDetached(bytes: Uint8Array, sigText: string, trusted: PublicKey[], what = "data"): PublicKey {
  const sigs = parseSignatures(sigText, `${what}: signature file`);
  if (!sigs.length) throw new ManifestError("no-signature", `${what}: the signature file holds no signature`);
  let failed: string | undefined;
  for (const s of sigs) {
    for (const k of trusted) {
      if (k.id !== s.keyId) continue;
      if (verifyBytes(k.raw, bytes, s.sig)) return k;
      failed ??= k.id;
    }
  }
  if (failed) throw new ManifestError("bad-signature", `${what}: bad signature by trusted key ${failed} (altered in transit or signed over other bytes)`);
  const ids = [...new Set(sigs.map((s) => s.keyId))].join(", ");
  const have = trusted.length ? trusted.map((k) => k.id).join(", ") : "none";
  throw new ManifestError("unknown-key", `${what}: signed by unknown key ${ids} (trusted keys: ${have})`);
}

export interface VerifyOptions {
  /** The time to check `expires` against (the agent's best clock: RTC, or an HTTP Date header). */
  now: Date;
  /** The highest version seen before for this manifest's name (readSeen); lower versions are refused. */
  minVersion?: number;
  /** Accept a manifest without a signature (initramfs built with --allow-unsigned). */
  allowUnsigned?: boolean;
  /** Names the manifest in errors (e.g. its URL); default "manifest". */
  what?: string;
}

export interface VerifiedManifest {
  manifest: Manifest;
  /** The key that signed it; null when accepted unsigned. */
  key: PublicKey | null;
}

/**
 * Verify a manifest file's bytes against its .sig text (null/"" when the .sig was absent, e.g. HTTP
 * 404). With allowUnsigned a missing signature, or one by a key nobody trusts, is accepted (an attacker
 * could strip it anyway), but a trusted key's signature that does not match is still refused.
 */
export function verifyManifestDetailed(bytes: Uint8Array, sigText: string | null | undefined, trusted: PublicKey[], opts: VerifyOptions): VerifiedManifest {
  const what = opts.what ?? "manifest";
  let key: PublicKey | null = null;
  const unsigned = sigText === null || sigText === undefined || parseSignatures(sigText, `${what}: signature file`).length === 0;
  if (unsigned) {
    if (!opts.allowUnsigned) throw new ManifestError("no-signature", `${what}: not signed (no signature file), and this initramfs does not allow unsigned manifests`);
  } else {
    try {
      key = verifyDetached(bytes, sigText, trusted, what);
    } catch (e) {
      if (!(opts.allowUnsigned && e instanceof ManifestError && e.reason === "unknown-key")) throw e;
    }
  }
  let m: Manifest;
  try {
    m = parseManifest(bytes);
  } catch (e) {
    if (e instanceof ManifestError && what !== "manifest") throw new ManifestError(e.reason, `${what}: ${e.message}`, e.problems);
    throw e;
  }
  const exp = Date.parse(m.expires);
  if (opts.now.getTime() >= exp) {
    throw new ManifestError("expired", `${what}: ${m.name} version ${m.version} expired at ${m.expires} (now ${opts.now.toISOString()})`);
  }
  if (opts.minVersion !== undefined && m.version < opts.minVersion) {
    throw new ManifestError("rollback", `${what}: ${m.name} version ${m.version} is lower than version ${opts.minVersion} seen before (rollback refused)`);
  }
  return { manifest: m, key };
}

/** verifyManifestDetailed, returning just the manifest. */
export function verifyManifest(bytes: Uint8Array, sigText: string | null | undefined, trusted: PublicKey[], opts: VerifyOptions): Manifest {
  return verifyManifestDetailed(bytes, sigText, trusted, opts).manifest;
}
