// Which CAs https:// trusts (src/fetch/trust.ts) and how a refused certificate is reported
// (tlsFailure in src/fetch/errors.ts). The real TLS handshakes are in test/e2e/https.test.ts.
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { tlsFailure } from "../../src/fetch/errors.ts";
import { readCaFile, tlsOptions } from "../../src/fetch/trust.ts";
import { UserError } from "../../src/sys/errors.ts";
import { scratch } from "../lib/tmp.ts";

const dir = scratch("inetboot-trust-");
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

describe("CA files", () => {
  const saved = process.env.INETBOOT_CA_FILE;
  afterEach(() => {
    if (saved === undefined) delete process.env.INETBOOT_CA_FILE;
    else process.env.INETBOOT_CA_FILE = saved;
  });

  test("a missing file or one without a PEM certificate is a one-line UserError naming the file", () => {
    const missing = join(dir, "missing.pem");
    expect(() => readCaFile(missing)).toThrow(new UserError(`CA file ${missing}: no such file`));
    const text = join(dir, "text.pem");
    writeFileSync(text, "hello\n");
    expect(() => readCaFile(text)).toThrow(new UserError(`CA file ${text}: no PEM certificate in it`));
  });

  test("the extra CAs come on top of Bun's built-in roots; none given means the built-in store alone", () => {
    delete process.env.INETBOOT_CA_FILE;
    expect(tlsOptions()).toBeUndefined();
    const f = join(dir, "ca.pem");
    writeFileSync(f, PEM);
    process.env.INETBOOT_CA_FILE = f; // what the agent sets from /etc/inetboot/ca.pem
    const t = tlsOptions()!;
    expect(t.ca.length).toBe(rootCertificates.length + 1);
    expect(t.ca.at(-1)).toBe(PEM);
    expect(tlsOptions()).toBe(t); // read once
    expect(tlsOptions(f)!.ca.at(-1)).toBe(PEM);
  });
});

describe("tlsFailure", () => {
  const err = (code: string, message = "x") => Object.assign(new TypeError(message), { code });
  test("a refused certificate names the host and how to trust its CA", () => {
    expect(tlsFailure(err("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate"), "https://10.0.2.2:8443/root/index")).toBe(
      "TLS failure with 10.0.2.2: certificate issuer not trusted (pass its CA with --ca FILE; a boot trusts the one built in with inetboot initramfs --ca)",
    );
    expect(tlsFailure(err("DEPTH_ZERO_SELF_SIGNED_CERT"), "https://h/x")).toMatch(/^TLS failure with h: self-signed certificate not trusted/);
    expect(tlsFailure(err("CERT_HAS_EXPIRED"), "https://h/x")).toBe("TLS failure with h: certificate has expired");
    expect(tlsFailure(err("ERR_TLS_CERT_ALTNAME_INVALID"), "https://h/x")).toBe("TLS failure with h: certificate does not match the host name");
  });
  test("anything else is not a TLS failure", () => {
    expect(tlsFailure(err("ECONNREFUSED"), "https://h/x")).toBeNull();
    expect(tlsFailure(new Error("boom"), "https://h/x")).toBeNull();
    expect(tlsFailure(undefined, "https://h/x")).toBeNull();
  });
});
