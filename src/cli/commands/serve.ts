// `inetboot serve DIR`: static HTTP server for stores and payloads (see src/serve/server.ts).
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { runServeCli, type ServeCliArgs } from "../../serve/cli.ts";

export default defineCommand({
  meta: {
    name: "serve",
    description:
      "Serve DIR over HTTP or HTTPS (GET/HEAD, single byte ranges, ETag/304; no directory listings) until SIGINT/SIGTERM",
  },
  args: {
    dir: { type: "positional", required: true, description: "directory to serve" },
    port: { type: "string", alias: "p", description: "TCP port (default 8080; 0 picks a free one)" },
    host: { type: "string", description: "address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces)" },
    quiet: { type: "boolean", alias: "q", description: "no access log on stderr" },
    cert: { type: "string", description: "serve https://: the certificate chain (PEM), with --key" },
    key: { type: "string", description: "the certificate's private key (PEM)" },
  },
  run: guarded<ServeCliArgs>((args) => runServeCli(args)),
});
