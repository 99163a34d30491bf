// The manifest API in one import for the agent and the host commands.
export { ManifestError, KeyError, type RefusalReason } from "./errors.ts";
export {
  parseManifest, formatManifest, pickEntry, candidateUrls, MANIFEST_FORMAT, DEFAULT_TIMEOUT, MAX_MANIFEST_BYTES,
  type Manifest, type Entry, type Payload, type RootSpec,
} from "./schema.ts";
export {
  readPublicKey, readPrivateKey, readPublicKeyFile, readPrivateKeyFile, loadTrustedKeys, unsignedAllowed, generateKeyPair,
  publicKeyOf, formatPublicKey, formatPrivateKey, keyIdOf, TRUSTED_DIR, ALLOW_UNSIGNED_PATH, type PublicKey, type PrivateKey,
} from "./keys.ts";
export { signDetached } from "./sign.ts";
export { signaturePathFor, parseSignatures, formatSignature } from "./signature.ts";
export { verifyDetached, verifyManifest, verifyManifestDetailed, type VerifyOptions, type VerifiedManifest } from "./verify.ts";
export { readSeen, recordSeen, SEEN_FILE } from "./rollback.ts";
