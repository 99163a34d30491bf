import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { collectRepeated, URL_OPTIONS, useUrlOptions } from "../options.ts";

export default defineCommand({
  meta: { name: "nbd", description: "Serve a disk image, block store or image URL over NBD" },
  args: {
    source: { type: "positional", required: true, description: "local image file, store dir, or http(s) URL" },
    listen: { type: "string", default: "tcp:127.0.0.1:10809", description: "unix:PATH or tcp:HOST:PORT" },
    mirror: { type: "string", description: "another base URL serving the same data (repeatable)" },
    cache: { type: "string", description: "persistent chunk cache directory" },
    fill: { type: "boolean", default: false, description: "with --cache: fetch the chunks the cache lacks while no client reads" },
    prefetch: { type: "boolean", default: false, description: "fetch the chunks of the boot profile published beside the index ahead of any client (with --cache: all of them, onto the cache)" },
    "cache-size": { type: "string", description: "with --cache: its size cap, e.g. 2G; least recently used chunks go past it (default: the disk's room)" },
    cow: { type: "boolean", default: false, description: "accept writes into a RAM copy-on-write overlay" },
    "cow-file": { type: "string", description: "copy-on-write overlay in this local sparse file (implies --cow)" },
    name: { type: "string", default: "", description: "export name" },
    timeout: { type: "string", description: "seconds before a read no mirror answers fails with EIO (default 30)" },
    ...URL_OPTIONS,
  },
  async run(ctx) {
    const a = ctx.args as Record<string, string | boolean | undefined>;
    await guarded(async () => {
      useUrlOptions(a);
      const { runNbd } = await import("../../nbd/cli.ts");
      await runNbd({
        source: String(a.source),
        listen: String(a.listen ?? "tcp:127.0.0.1:10809"),
        mirrors: collectRepeated(ctx.rawArgs, "mirror"),
        cacheDir: (a.cache as string | undefined) || undefined,
        cow: a.cow === true,
        cowFile: (a["cow-file"] as string | undefined) || undefined,
        name: String(a.name ?? ""),
        timeoutSec: a.timeout === undefined ? undefined : Number(a.timeout),
        fill: a.fill === true,
        cacheSize: (a["cache-size"] as string | undefined) || undefined,
        prefetch: a.prefetch === true,
      });
    })({ args: {} });
  },
});
