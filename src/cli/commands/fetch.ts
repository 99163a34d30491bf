// `inetboot fetch URL`: download and verify one file over HTTP(S) (see src/fetch/cli.ts).
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { NETRC_OPTION } from "../options.ts";
import { runFetchCli, type FetchCliArgs } from "../../fetch/cli.ts";

export default defineCommand({
  meta: {
    name: "fetch",
    description:
      "Download a file over HTTP(S) with retries and verification; prints \"SHA256 SIZE [FILE]\" " +
      "(to stderr when the body itself goes to stdout)",
  },
  args: {
    url: { type: "positional", required: true, description: "http:// or https:// URL" },
    out: {
      type: "string",
      alias: "o",
      description: "save to FILE (atomically); '-' for stdout, once verified (default when stdout is not a terminal; on a terminal without --out only the digest and size are printed)",
    },
    sha256: { type: "string", description: "expected sha256 (hex); a mismatch fails and keeps nothing" },
    ca: { type: "string", description: "PEM file of extra CA certificates to trust" },
    netrc: NETRC_OPTION,
    timeout: { type: "string", description: "fail an attempt after S seconds without data (default 30)" },
    deadline: { type: "string", description: "give up after S seconds overall (default none)" },
    retries: { type: "string", description: "retries for transient errors (default 3)" },
    quiet: { type: "boolean", alias: "q", description: "no progress lines" },
  },
  run: guarded<FetchCliArgs>((args) => runFetchCli(args)),
});
