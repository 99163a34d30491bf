// Which certificate authorities https:// trusts: Bun's built-in store (Mozilla's roots) plus, when
// one is given, a PEM file of extra CAs: `--ca FILE` on the command line, or INETBOOT_CA_FILE (the
// agent sets it to the initramfs' /etc/inetboot/ca.pem, and the NBD daemon inherits it). One
// place, so every HTTPS request (a download, a store's index, its chunks, a profile) trusts the
// same set.
import { PEM_CERTIFICATE, readPemFile } from "../sys/pem.ts";

let chosen: string | undefined;
let loaded: { file: string; tls: { ca: string[] } } | null = null;

/** The PEM text of a CA file; a one-line UserError naming the file and what is wrong with it. */
export function readCaFile(file: string): string {
  return readPemFile(file, "CA", "certificate", PEM_CERTIFICATE);
}

/** `--ca FILE`: trust its CAs from now on, in this process. Checked at once, so a bad file is an
 *  error before any request is made. */
export function useCaFile(file: string | undefined): void {
  if (file === undefined || file === "") return;
  readCaFile(file);
  chosen = file;
}

/** The `tls` option for fetch(): undefined means Bun's built-in store alone. `file` overrides the
 *  process-wide choice (`inetboot fetch --ca`). */
export function tlsOptions(file: string | undefined = chosen ?? (process.env.INETBOOT_CA_FILE || undefined)): { ca: string[] } | undefined {
  if (file === undefined) return undefined;
  // (node:tls costs ~10 ms to load, more under TCG: only when a CA file is given)
  const { rootCertificates } = require("node:tls") as typeof import("node:tls");
  if (loaded?.file !== file) loaded = { file, tls: { ca: [...rootCertificates, readCaFile(file)] } };
  return loaded.tls;
}

