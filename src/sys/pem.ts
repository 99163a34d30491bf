// PEM files named on the command line (a CA, a server certificate, its key): read whole, checked
// for the block they must hold, every failure one line naming the file.
import { readFileSync } from "node:fs";
import { readFailure, UserError } from "./errors.ts";

export const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
export const PEM_PRIVATE_KEY = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/;

/** The text of `file`, which must hold a PEM `kind` block: "LABEL file F: no such file", "… no PEM KIND in it". */
export function readPemFile(file: string, label: string, kind: string, marker: RegExp): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`${label} file ${file}: ${readFailure(e)}`);
  }
  if (!marker.test(text)) throw new UserError(`${label} file ${file}: no PEM ${kind} in it`);
  return text;
}
