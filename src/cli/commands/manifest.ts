// `inetboot manifest`: build a boot manifest from a kernel (+ initrd) with sizes and SHA-256, or
// (--check) verify one the way the agent does and print its entries.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { UserError } from "../../sys/errors.ts";
import { CA_OPTION, collectRepeated, NETRC_OPTION, useUrlOptions } from "../options.ts";

/** Options that only build a manifest (--check ignores them). */
const BUILD_ONLY = ["name", "version", "kernel", "initrd", "cmdline", "root", "rootfstype", "rootpath", "root-sha256", "entry-name", "title", "default", "expires", "base-url", "mirror", "timeout", "add-to", "out"] as const;

export default defineCommand({
  meta: { name: "manifest", description: "Build a boot manifest (one entry per run; --add-to appends), or --check one as the agent would" },
  args: {
    name: { type: "string", description: "Manifest name (letters, digits, . _ -)" },
    version: { type: "string", description: "Manifest version: an integer, raise it on every release (rollback protection)" },
    kernel: { type: "string", description: "Kernel file of the entry" },
    initrd: { type: "string", description: "Initrd file of the entry" },
    cmdline: { type: "string", description: "Kernel command line of the entry" },
    root: { type: "string", description: "Block store URL to use as root after kexec (relative or absolute)" },
    rootfstype: { type: "string", description: "Filesystem type of the root image" },
    rootpath: { type: "string", description: "Path inside the root image to loop-mount" },
    "root-sha256": { type: "string", description: "SHA-256 of the root store's index (default: read from the store, local beside the manifest or over http)" },
    "entry-name": { type: "string", description: "Entry id for inetboot.entry= (default: the manifest name; required with --add-to)" },
    title: { type: "string", description: "Menu title of the entry (default: the entry name)" },
    default: { type: "boolean", description: "Make this the default entry" },
    expires: { type: "string", description: "Expiry: 30d, 12h, 2w or an ISO time (default 30d; --add-to keeps the old one)" },
    "base-url": { type: "string", description: "Absolute payload URLs BASE/<file name> (default: URLs relative to the manifest)" },
    mirror: { type: "string", description: "A mirror base URL (repeatable)" },
    timeout: { type: "string", description: "Menu timeout in seconds (default 5)" },
    "add-to": { type: "string", description: "Append the entry to this existing manifest (rewritten unless --out)" },
    out: { type: "string", description: "Write the manifest here (default: stdout)" },
    check: { type: "string", description: "Verify this manifest (file or http(s) URL) and print its entries" },
    sig: { type: "string", description: "With --check: the signature file (default: X.json → X.sig)" },
    trust: { type: "string", description: "With --check: a trusted KEY.pub (repeatable; default /etc/inetboot/trusted/*.pub)" },
    "allow-unsigned": { type: "boolean", description: "With --check: accept an unsigned manifest" },
    "min-version": { type: "string", description: "With --check: refuse versions lower than this (rollback)" },
    now: { type: "string", description: "With --check: the time to check expiry against (ISO)" },
    json: { type: "boolean", description: "With --check: print the verified manifest as JSON" },
    ca: { ...CA_OPTION, description: `With --check: ${CA_OPTION.description}` },
    netrc: { ...NETRC_OPTION, description: `With --check: ${NETRC_OPTION.description}` },
  },
  async run(ctx) {
    await guarded(async (a: typeof ctx.args) => {
      const cli = await import("../../manifest/cli.ts");
      if (a.check !== undefined) {
        if (a.check === "") throw new UserError("--check needs a manifest file or URL");
        // a build option beside --check would be ignored: say so rather than check something else
        const building = BUILD_ONLY.filter((k) => a[k] !== undefined);
        if (building.length) throw new UserError(`--check verifies a manifest; it does not take ${building.map((k) => `--${k}`).join(", ")}`);
        useUrlOptions(a);
        await cli.runCheck(a.check, {
          sig: a.sig,
          trust: collectRepeated(ctx.rawArgs, "trust"),
          allowUnsigned: !!a["allow-unsigned"],
          minVersion: a["min-version"],
          now: a.now,
          json: !!a.json,
        });
        return;
      }
      await cli.runBuild({
        name: a.name,
        version: a.version,
        kernel: a.kernel,
        initrd: a.initrd,
        cmdline: a.cmdline,
        root: a.root,
        rootfstype: a.rootfstype,
        rootpath: a.rootpath,
        rootSha256: a["root-sha256"],
        entryName: a["entry-name"],
        title: a.title,
        default: !!a.default,
        expires: a.expires,
        baseUrl: a["base-url"],
        mirrors: collectRepeated(ctx.rawArgs, "mirror"),
        timeout: a.timeout,
        addTo: a["add-to"],
        out: a.out,
      });
    })({ args: ctx.args });
  },
});
