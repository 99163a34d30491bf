// Signing (host side): a detached Ed25519 signature over the exact bytes of a file.
import { signBytes } from "./ed25519.ts";
import type { PrivateKey } from "./keys.ts";
import { formatSignature } from "./signature.ts";

/** One signature line (with newline) for `bytes`, to write to (or append to) the .sig file. */
export function signDetached(bytes: Uint8Array, key: PrivateKey): string {
  return formatSignature({ keyId: key.id, sig: signBytes(key.seed, bytes) });
}
