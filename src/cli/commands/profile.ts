// `inetboot profile extract|import|show|pack`: publish a boot profile (recorded with inetboot.record)
// next to a store's index so later boots prefetch the chunks it lists (docs/prefetch.md).
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { URL_OPTIONS, useUrlOptions } from "../options.ts";

const extract = defineCommand({
  meta: { name: "extract", description: "Rebuild the profile a boot printed on its console; write it next to STORE's index and/or to --out" },
  args: {
    log: { type: "positional", required: true, description: "captured console log (- for stdin)" },
    store: { type: "positional", required: false, description: "local store directory or NAME.index to publish into" },
    out: { type: "string", description: "also write the profile to this file" },
    until: { type: "string", description: "keep only chunks first read within SECONDS of the recording's start (e.g. up to a boot marker)" },
  },
  run: guarded(async (a: { log: string; store?: string; out?: string; until?: string }) =>
    (await import("../../store/profile-cli.ts")).runProfileExtract(a.log, a.store, { out: a.out, until: a.until }),
  ),
});

const importCmd = defineCommand({
  meta: { name: "import", description: "Publish a profile file (or the one a cache stick recorded) next to STORE's index" },
  args: {
    file: { type: "positional", required: true, description: "a .profile file, or a cache folder / stick mount point holding profiles/" },
    store: { type: "positional", required: true, description: "local store directory or NAME.index" },
    until: { type: "string", description: "keep only chunks first read within SECONDS of the recording's start" },
  },
  run: guarded(async (a: { file: string; store: string; until?: string }) =>
    (await import("../../store/profile-cli.ts")).runProfileImport(a.file, a.store, { until: a.until }),
  ),
});

const show = defineCommand({
  meta: { name: "show", description: "Summarize a store's published profile (or a .profile file)" },
  args: {
    spec: { type: "positional", required: true, description: "store directory, NAME.index, store URL, or a .profile file" },
    entries: { type: "boolean", description: "also list every entry (chunk number, ms)" },
    ...URL_OPTIONS,
  },
  run: guarded(async (a: { spec: string; entries?: boolean; ca?: string; netrc?: string }) => {
    useUrlOptions(a);
    await (await import("../../store/profile-cli.ts")).runProfileShow(a.spec, { entries: a.entries });
  }),
});

const pack = defineCommand({
  meta: { name: "pack", description: "Put the chunks of STORE's published profile into one file beside it (<index>.bootpack): boots prefetch them with one GET" },
  args: {
    store: { type: "positional", required: true, description: "local store directory or NAME.index (with a published profile)" },
  },
  run: guarded(async (a: { store: string }) => (await import("../../store/profile-cli.ts")).runProfilePack(a.store)),
});

export default defineCommand({
  meta: { name: "profile", description: "Boot profiles: record with inetboot.record, publish next to the index, prefetched on later boots" },
  subCommands: { extract, import: importCmd, show, pack },
});
