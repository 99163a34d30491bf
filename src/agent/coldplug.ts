// Module coldplug like udev: read every device's modalias under /sys, match modules.alias, load
// the matches with their dependencies (deps first) via finit_module, and repeat while loading
// made new devices appear (virtio_pci → virtio devices → virtio_net).
import { existsSync, openSync, closeSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { finitModule, SysError } from "../sys/ffi.ts";
import { UserError } from "../sys/errors.ts";
import { tokenize } from "../boot/cmdline.ts";
import { applySoftdeps, parseModulesDep, loadOrder, moduleName, type ModuleTable } from "../kmod/modules-dep.ts";
import { parseModulesAlias, AliasIndex } from "../kmod/modalias.ts";

export interface ModuleTree {
  dir: string; // /lib/modules/VER
  dep: ModuleTable;
  aliases: AliasIndex;
}

export function kernelRelease(): string {
  return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
}

const trees = new Map<string, ModuleTree>();

/** The module tree under `root`, parsed once per process (coldplug, cache medium and root all need it). */
export function openModuleTree(root = "/"): ModuleTree | null {
  const dir = join(root, "lib/modules", kernelRelease());
  const known = trees.get(dir);
  if (known) return known;
  if (!existsSync(join(dir, "modules.dep"))) return null;
  const dep = parseModulesDep(readFileSync(join(dir, "modules.dep"), "utf8"));
  const soft = join(dir, "modules.softdep");
  if (existsSync(soft)) applySoftdeps(dep, readFileSync(soft, "utf8"));
  const aliasFile = join(dir, "modules.alias");
  const aliases = new AliasIndex(parseModulesAlias(existsSync(aliasFile) ? readFileSync(aliasFile, "utf8") : ""));
  const tree = { dir, dep, aliases };
  trees.set(dir, tree);
  return tree;
}

/** Names of loaded modules, from /proc/modules. */
export function loadedModules(): Set<string> {
  try {
    return new Set(readFileSync("/proc/modules", "utf8").split("\n").filter(Boolean).map((l) => l.split(" ")[0]!));
  } catch {
    return new Set();
  }
}

/**
 * Every modalias string under /sys/bus/x/devices/y/modalias. `wantBus` skips buses no module
 * could match; `seen` (device paths already read) makes later coldplug rounds read only new devices.
 */
export function deviceModaliases(sys = "/sys", wantBus: (bus: string) => boolean = () => true, seen?: Set<string>): string[] {
  const out = new Set<string>();
  let buses: string[] = [];
  try {
    buses = readdirSync(join(sys, "bus"));
  } catch {
    return [];
  }
  for (const bus of buses) {
    if (!wantBus(bus)) continue;
    let devs: string[] = [];
    try {
      devs = readdirSync(join(sys, "bus", bus, "devices"));
    } catch {
      continue;
    }
    for (const d of devs) {
      const path = join(sys, "bus", bus, "devices", d);
      if (seen?.has(path)) continue;
      try {
        const m = readFileSync(join(path, "modalias"), "utf8").trim();
        seen?.add(path);
        if (m) out.add(m);
      } catch {
        seen?.add(path); // device without modalias
      }
    }
  }
  return [...out];
}

/**
 * Parameters the agent loads a module with unless the kernel command line sets them.
 * usb_storage waits delay_use=1 s after a stick enumerates before using it, for old devices that
 * need time to settle; the agent already waits for the disk to show, and on the warm-cache boot
 * that second was 1/9 of the time before switch_root. `usb_storage.delay_use=1` restores it.
 */
export const AGENT_MODULE_PARAMS: Record<string, Record<string, string>> = { usb_storage: { delay_use: "0" } };

/**
 * `module.param=value` words of the kernel command line for `mod` (as modprobe applies them to
 * modules loaded after boot), over the agent's defaults; "" when none.
 */
export function moduleParams(mod: string, cmdline: string, defaults = AGENT_MODULE_PARAMS): string {
  const params = new Map(Object.entries(defaults[mod] ?? {}));
  for (const p of tokenize(cmdline)) {
    const dot = p.name.indexOf(".");
    if (dot <= 0 || p.value === undefined) continue;
    if (moduleName(p.name.slice(0, dot)) !== mod) continue;
    params.set(p.name.slice(dot + 1), p.value);
  }
  return [...params].map(([k, v]) => (/[\s"]/.test(v) ? `${k}="${v}"` : `${k}=${v}`)).join(" ");
}

let cmdlineText: string | undefined;
function kernelCmdline(): string {
  try {
    cmdlineText ??= readFileSync("/proc/cmdline", "utf8");
  } catch {
    cmdlineText = "";
  }
  return cmdlineText;
}

export interface LoadResult {
  loaded: string[];
  failed: { name: string; error: string }[];
}

/** Loads one module and its dependencies (deps first). Already-loaded modules are skipped. */
export function modprobe(tree: ModuleTree, name: string, result: LoadResult = { loaded: [], failed: [] }, params = ""): LoadResult {
  const have = loadedModules();
  const target = moduleName(name);
  let order: string[];
  try {
    order = loadOrder(tree.dep, [target]);
  } catch (e) {
    result.failed.push({ name: target, error: (e as Error).message });
    return result;
  }
  for (const mod of order) {
    if (have.has(mod)) continue;
    const path = join(tree.dir, tree.dep.get(mod)!.path);
    let fd = -1;
    try {
      fd = openSync(path, "r");
      finitModule(fd, mod === target && params ? params : moduleParams(mod, kernelCmdline()), mod);
      result.loaded.push(mod);
      have.add(mod);
    } catch (e) {
      if (e instanceof SysError && e.code === "EEXIST") continue;
      result.failed.push({ name: mod, error: (e as Error).message });
      break;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
  return result;
}

/** Coldplug rounds until no new module loads (or `rounds` is reached). */
export async function coldplug(tree: ModuleTree, extra: string[] = [], rounds = 4): Promise<LoadResult> {
  const result: LoadResult = { loaded: [], failed: [] };
  for (const m of extra) modprobe(tree, m, result);
  const tried = new Set<string>();
  const seen = new Set<string>();
  const wantBus = (bus: string) => tree.aliases.mayMatchBus(bus);
  for (let r = 0; r < rounds; r++) {
    const wanted = new Set<string>();
    for (const alias of deviceModaliases("/sys", wantBus, seen)) for (const m of tree.aliases.lookup(alias)) wanted.add(m);
    const fresh = [...wanted].filter((m) => !tried.has(m));
    if (fresh.length === 0) break;
    for (const m of fresh) {
      tried.add(m);
      modprobe(tree, m, result);
    }
    // New buses (virtio) may register their devices asynchronously; give them a moment.
    await Bun.sleep(20);
  }
  return result;
}

/**
 * Loads modules by name for a boot step (nbd, a filesystem, loop, overlay). Without a module tree
 * (built-in kernel) it does nothing: the step's own syscall will say what is missing. With
 * `required`, a failure throws one line; otherwise failures are left to the step.
 */
export function loadModulesByName(names: string[], required = true): void {
  const tree = openModuleTree();
  if (!tree) return;
  for (const name of names) {
    const r = modprobe(tree, name);
    if (required && r.failed.length) throw new UserError(`modprobe ${name}: ${r.failed.map((f) => f.error).join("; ")}`);
  }
}
