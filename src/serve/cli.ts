// `inetboot serve DIR`: run the static server until SIGINT/SIGTERM.
import { UserError } from "../sys/errors.ts";
import { PEM_CERTIFICATE, PEM_PRIVATE_KEY, readPemFile } from "../sys/pem.ts";
import { startServer } from "./server.ts";

export interface ServeCliArgs {
  dir: string;
  port?: string;
  host?: string;
  quiet?: boolean;
  cert?: string;
  key?: string;
}

/** --cert and --key, both or neither; each a readable PEM file of its kind. */
function readTls(a: ServeCliArgs): { cert: string; key: string } | undefined {
  if (!a.cert && !a.key) return undefined;
  if (!a.cert || !a.key) throw new UserError("--cert and --key go together (the certificate chain and its private key, PEM)");
  return { cert: readPemFile(a.cert, "certificate", "certificate", PEM_CERTIFICATE), key: readPemFile(a.key, "key", "key", PEM_PRIVATE_KEY) };
}

export async function runServeCli(a: ServeCliArgs): Promise<void> {
  const port = a.port === undefined ? 8080 : Number(a.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port must be 0..65535, got "${a.port}"`);
  const s = await startServer({ dir: a.dir, port, host: a.host ?? "127.0.0.1", quiet: a.quiet, tls: readTls(a) });
  process.stderr.write(`serving ${a.dir} at ${s.url}\n`);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
  await s.stop();
  process.exit(0);
}
