// Kernel command line → typed boot plan. Tokenizing follows the kernel's own rules
// (lib/cmdline.c next_arg): spaces separate, double quotes group and are stripped, the first '='
// splits name from value, `--` ends the kernel's part.
import { parseSize } from "../store/format.ts";
import { parseIpParam } from "../net/ipconfig.ts";

export interface Param {
  name: string;
  value: string | undefined;
}

/** Splits a command line the way the kernel does. */
export function tokenize(cmdline: string): Param[] {
  const out: Param[] = [];
  let i = 0;
  const s = cmdline.replace(/\n$/, "");
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (i >= s.length) break;
    let inQuote = false;
    let tok = "";
    while (i < s.length && (inQuote || !/\s/.test(s[i]!))) {
      if (s[i] === '"') inQuote = !inQuote;
      else tok += s[i];
      i++;
    }
    const eq = tok.indexOf("=");
    out.push(eq < 0 ? { name: tok, value: undefined } : { name: tok.slice(0, eq), value: tok.slice(eq + 1) });
  }
  return out;
}

export type CacheSpec =
  | { kind: "auto" }
  | { kind: "off" }
  | { kind: "label"; value: string }
  | { kind: "uuid"; value: string }
  | { kind: "device"; value: string };

export interface BootPlan {
  /** Raw ip= value; parsed by the network layer (undefined = dhcp). */
  ip?: string;
  nodhcp: boolean;
  url?: string;
  root?: string;
  rootfstype?: string;
  rootpath?: string;
  /** inetboot.rootsha256=: the SHA-256 the root store's index must have (a signed manifest's
   *  root.sha256, passed on to the kexec'd stage 2) */
  rootSha256?: string;
  script?: string;
  mirrors: string[];
  cache: CacheSpec;
  entry?: string;
  shell: boolean;
  logJson: boolean;
  modules: string[];
  record: boolean;
  /** inetboot.record=SECONDS: how long the recording lasts (default: the recorder's own, 120 s). */
  recordSeconds?: number;
  /** inetboot.fill (default on): with a cache medium, fetch the rest of the image into it while
   *  the system is idle, so the next boot needs no network (src/store/fill.ts). */
  fill: boolean;
  /** inetboot.cachesize=SIZE: the cache folder's bytes at most; least recently used chunks are
   *  evicted past it (default: as much as the medium has, evicting when it runs low). */
  cacheSize?: number;
  /** init= for the booted root. */
  init?: string;
  /** Parameters after `--`: passed to the init we exec. */
  initArgs: string[];
  /** Problems to report (unknown inetboot.* names, bad values); never fatal on their own. */
  warnings: string[];
}

const KNOWN = new Set([
  "url", "root", "rootfstype", "rootpath", "rootsha256", "script", "mirror", "cache", "cachesize", "entry", "shell", "log", "modules", "record", "fill",
]);

function parseCache(v: string | undefined, warnings: string[]): CacheSpec {
  if (v === undefined || v === "" || v === "auto") return { kind: "auto" };
  if (v === "off" || v === "none") return { kind: "off" };
  if (v.startsWith("LABEL=")) return { kind: "label", value: v.slice(6) };
  if (v.startsWith("UUID=")) return { kind: "uuid", value: v.slice(5) };
  if (v.startsWith("/dev/")) return { kind: "device", value: v };
  warnings.push(`inetboot.cache=${v}: expected auto, off, LABEL=x, UUID=x or /dev/x; using auto`);
  return { kind: "auto" };
}

function isUrl(v: string) {
  return /^https?:\/\/[^\s/]+/.test(v);
}

/** Builds the plan from /proc/cmdline's text. Never throws: bad values become warnings. */
export function parsePlan(cmdline: string): BootPlan {
  const plan: BootPlan = {
    nodhcp: false, mirrors: [], cache: { kind: "auto" }, shell: false, logJson: false, modules: [], record: false, fill: true,
    initArgs: [], warnings: [],
  };
  const params = tokenize(cmdline);
  const dd = cmdline.split(/\s+/).indexOf("--");
  let afterDashes = false;
  const url = (name: string, v: string | undefined): string | undefined => {
    if (!v) plan.warnings.push(`${name}: needs a URL`);
    else if (!isUrl(v)) plan.warnings.push(`${name}=${v}: not an http(s) URL`);
    else return v;
    return undefined;
  };
  for (const { name, value } of params) {
    if (afterDashes) {
      plan.initArgs.push(value === undefined ? name : `${name}=${value}`);
      continue;
    }
    if (name === "--" && value === undefined && dd >= 0) {
      afterDashes = true;
      continue;
    }
    switch (name) {
      case "ip":
        plan.ip = value ?? "";
        // (the network setup refuses it later, at boot: say it where the line is checked too)
        try {
          parseIpParam(plan.ip);
        } catch (e) {
          plan.warnings.push((e as Error).message);
        }
        continue;
      case "nodhcp": plan.nodhcp = true; continue;
      case "httpfuse": plan.root = url(name, value) ?? plan.root; continue;
      case "iscript": plan.script = url(name, value) ?? plan.script; continue;
      case "init": if (value) plan.init = value; continue;
    }
    if (!name.startsWith("inetboot.")) continue;
    const key = name.slice("inetboot.".length);
    if (!KNOWN.has(key)) {
      plan.warnings.push(`unknown parameter ${name} (known: ${[...KNOWN].map((k) => `inetboot.${k}`).join(", ")})`);
      continue;
    }
    switch (key) {
      case "url": plan.url = url(name, value) ?? plan.url; break;
      case "root": plan.root = url(name, value) ?? plan.root; break;
      case "script": plan.script = url(name, value) ?? plan.script; break;
      case "rootfstype": if (value) plan.rootfstype = value; break;
      case "rootpath": if (value) plan.rootpath = value; break;
      case "rootsha256":
        if (value && /^[0-9a-fA-F]{64}$/.test(value)) plan.rootSha256 = value.toLowerCase();
        // (unusable: the root is not booted unpinned when a pin was asked for, see root.ts)
        else (plan.rootSha256 = "invalid"), plan.warnings.push(`${name}=${value ?? ""}: expected 64 hex digits (the SHA-256 of the root store's index)`);
        break;
      case "mirror":
        for (const m of (value ?? "").split(",").filter(Boolean)) {
          const u = url(name, m);
          if (u) plan.mirrors.push(u);
        }
        break;
      case "cache": plan.cache = parseCache(value, plan.warnings); break;
      case "cachesize": {
        let bytes = 0;
        try {
          bytes = parseSize(value ?? "");
        } catch {
          /* warned below */
        }
        if (bytes > 0) plan.cacheSize = bytes;
        else plan.warnings.push(`inetboot.cachesize=${value ?? ""}: expected a size such as 512M or 4G; no cap`);
        break;
      }
      case "entry": if (value) plan.entry = value; break;
      case "shell": plan.shell = value === undefined || !/^(0|no|off|false)$/i.test(value); break;
      case "log":
        if (value === "json") plan.logJson = true;
        else plan.warnings.push(`inetboot.log${value === undefined ? "" : `=${value}`}: only inetboot.log=json is known`);
        break;
      case "modules": plan.modules.push(...(value ?? "").split(",").map((s) => s.trim()).filter(Boolean)); break;
      case "fill":
        if (value === undefined || value === "" || /^(1|yes|on|true)$/i.test(value)) plan.fill = true;
        else if (/^(0|no|off|false)$/i.test(value)) plan.fill = false;
        else plan.warnings.push(`inetboot.fill=${value}: expected on or off; filling the cache`);
        break;
      case "record": {
        // Bare, or the length of the recording window in seconds (inetboot.record=40).
        if (value === undefined || value === "") plan.record = true;
        else if (/^(0|no|off|false)$/i.test(value)) plan.record = false;
        else if (/^\d+(\.\d+)?$/.test(value) && Number(value) > 0) (plan.record = true), (plan.recordSeconds = Number(value));
        else plan.warnings.push(`inetboot.record=${value}: expected a number of seconds (or no value); not recording`);
        break;
      }
    }
  }
  return plan;
}
