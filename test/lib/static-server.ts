// Test helper: a minimal static file server (argv: DIR HOST PORT) that logs requests to stderr.
import { join, normalize } from "node:path";
const [dir, host, port] = process.argv.slice(2) as [string, string, string];
Bun.serve({
  hostname: host,
  port: Number(port),
  async fetch(req) {
    const p = normalize(new URL(req.url).pathname);
    if (p.includes("..")) return new Response("no", { status: 403 });
    const f = Bun.file(join(dir, p));
    process.stderr.write(`static-server: ${req.method} ${p}\n`);
    return (await f.exists()) ? new Response(f) : new Response("not found", { status: 404 });
  },
});
process.stdout.write("ready\n");
