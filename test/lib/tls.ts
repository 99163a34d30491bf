// A private CA and a server certificate it signs (openssl), for TLS servers in tests and benches.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./sh.ts";

export interface TestCertificates {
  /** the CA's certificate (what clients are told to trust) */
  ca: string;
  /** the server's certificate and key */
  cert: string;
  key: string;
}

/** Writes ca.pem, server.pem and server.key into `dir`: P-256 keys, valid 2 days, the server
 *  certificate naming the given IP addresses (subjectAltName) and nothing else. */
export function makeTestCertificates(dir: string, ips: string[]): TestCertificates {
  const o = (...a: string[]) => run(["openssl", ...a], { cwd: dir });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  o("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=inetboot test CA");
  o("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${ips[0]}`);
  writeFileSync(join(dir, "san.ext"), `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}\n`);
  o("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext");
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
}
