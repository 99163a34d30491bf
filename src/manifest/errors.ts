// Why a manifest (or a signed script) was refused. Each reason is one stable code the agent puts in
// its `error` event and the tests assert on; the message is one line naming the specifics.
import { UserError } from "../sys/errors.ts";

export type RefusalReason =
  | "no-signature" // unsigned, and unsigned boot is not allowed
  | "bad-signature" // malformed signature file, or a trusted key's signature does not match the bytes
  | "unknown-key" // signed only by keys that are not trusted (the ids are named)
  | "expired" // the manifest's `expires` is in the past
  | "rollback" // version lower than the highest version seen before for this name
  | "schema"; // not a valid manifest (JSON syntax, missing field, wrong type…)

export class ManifestError extends UserError {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    /** For "schema": every problem found, one line each (message holds the first). */
    readonly problems: string[] = [message],
  ) {
    super(message);
    this.name = "ManifestError";
  }
}

/** Malformed key file, wrong key kind, key id mismatch. */
export class KeyError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}
