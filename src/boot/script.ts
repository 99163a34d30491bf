// Boot scripts (the seed's iscript=): a JavaScript/TypeScript module, signed like a manifest, run
// inside the agent. Its default export gets the small API below (docs/scripts.md).
import { mkdirSync, writeFileSync } from "node:fs";
import type { BootPlan } from "./cmdline.ts";
import type { NetResult } from "../net/setup.ts";
import { emit } from "../agent/events.ts";
import { UserError } from "../sys/errors.ts";
import { fetchFile, type FetchFileOptions } from "../fetch/fetch.ts";
import { loadTrustedKeys, ManifestError, signaturePathFor, unsignedAllowed, verifyDetached } from "../manifest/index.ts";
import { fetchSignature, warnIfUnsigned } from "./manifest-boot.ts";

export interface ScriptApi {
  /** The parsed kernel command line. */
  plan: BootPlan;
  /** The network configuration (null without network). */
  net: NetResult | null;
  log(message: string): void;
  /** Downloads a URL (to `dest` when given) with retries; checks `sha256` when given. */
  fetch(url: string, opts?: Pick<FetchFileOptions, "dest" | "sha256" | "size">): Promise<{ path?: string; bytes?: Uint8Array; sha256: string; size: number }>;
  /** Verifies a detached signature against the trusted keys; throws when it does not hold. */
  verify(bytes: Uint8Array, signature: string): void;
  /** Warm-boots a kernel file (and initrd file) with this command line. Does not return. */
  kexec(o: { kernel: string; initrd?: string; cmdline: string }): Promise<never>;
  /** Boots a signed manifest as inetboot.url= would. */
  bootManifest(url: string, entry?: string): Promise<never>;
  /** Boots a block store as the root filesystem as inetboot.root= would. */
  bootRoot(url: string, o?: { fstype?: string; rootpath?: string; mirrors?: string[] }): Promise<never>;
  /** Opens the rescue shell (returns when its input ends). */
  shell(reason?: string): Promise<void>;
}

export interface ScriptHooks {
  bootRoot: (plan: BootPlan) => Promise<never>;
  bootManifest: (plan: BootPlan) => Promise<never>;
  shell: (reason?: string) => Promise<void>;
}

/** Fetches and verifies a script; returns the path of the verified copy. */
export async function loadScript(url: string): Promise<string> {
  const [r, sig] = await Promise.all([fetchFile(url, { retries: 3, deadlineMs: 60_000 }), fetchSignature(url)]);
  const bytes = r.bytes!;
  const allow = unsignedAllowed();
  warnIfUnsigned(allow);
  if (sig === null) {
    if (!allow) throw new ManifestError("no-signature", `boot script ${url}: no signature (${signaturePathFor(url)} not found)`);
  } else {
    try {
      verifyDetached(bytes, sig, loadTrustedKeys(), `boot script ${url}`);
    } catch (e) {
      if (!(allow && e instanceof ManifestError && e.reason === "unknown-key")) throw e;
    }
  }
  emit("script.verified", { url, size: bytes.byteLength, sha256: r.sha256 }, `boot script ${url} verified`);
  const dir = "/run/inetboot/scripts";
  mkdirSync(dir, { recursive: true });
  const ext = /\.ts$/.test(new URL(url).pathname) ? "ts" : "js";
  const path = `${dir}/script-${r.sha256.slice(0, 16)}.${ext}`;
  writeFileSync(path, bytes);
  return path;
}

export function scriptApi(plan: BootPlan, net: NetResult | null, hooks: ScriptHooks): ScriptApi {
  return {
    plan,
    net,
    log: (message) => emit("script.log", { message }, `script: ${message}`),
    fetch: async (url, o = {}) => {
      const r = await fetchFile(url, { ...o, retries: 3 });
      return { path: r.path, bytes: r.bytes, sha256: r.sha256, size: r.size };
    },
    verify: (bytes, signature) => void verifyDetached(bytes, signature, loadTrustedKeys(), "script data"),
    kexec: async ({ kernel, initrd, cmdline }) => {
      const { kexecLoad, kexecReboot } = await import("./kexec.ts");
      kexecLoad(kernel, initrd ?? null, cmdline);
      emit("kexec.start", { kernel, initrd: initrd ?? null, cmdline, from: "script" }, "kexec (from boot script)");
      await Bun.sleep(50);
      return kexecReboot();
    },
    bootManifest: (url, entry) => hooks.bootManifest({ ...plan, url, entry: entry ?? plan.entry }),
    bootRoot: (url, o = {}) => hooks.bootRoot({ ...plan, root: url, rootfstype: o.fstype, rootpath: o.rootpath, mirrors: o.mirrors ?? plan.mirrors }),
    shell: (reason) => hooks.shell(reason),
  };
}

/** Runs a verified script module's default export with the API. */
export async function runScript(path: string, api: ScriptApi): Promise<void> {
  const mod = await import(path);
  const main = mod.default ?? mod.main;
  if (typeof main !== "function") throw new UserError(`boot script: no default export function in ${path}`);
  emit("script.start", { path });
  await main(api);
  emit("script.done", {});
}
