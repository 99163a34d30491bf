// `inetboot initramfs`: lay out the boot archive (pre-init, agent + its shared libraries, kernel
// modules with a restricted modules.dep/alias, extra files, optional busybox) as an in-memory
// tree, then stream it as newc cpio through lz4 (default) or zstd. No root needed: device nodes are cpio entries.
// Deterministic: entries sorted by path, inode numbers in that order, one mtime, uid/gid 0.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../sys/errors.ts";
import { CpioEncoder } from "./cpio.ts";
import { isElfFile } from "./elf.ts";
import { mirrorHostPath, sharedLibClosure } from "./libs.ts";
import { openSink, DEFAULT_COMPRESSION, type Compression } from "./sink.ts";
import { onInterrupt } from "../sys/interrupt.ts";
import { ArchiveTree } from "./tree.ts";
import { ALLOW_UNSIGNED_PATH, formatPublicKey, readPublicKeyFile, TRUSTED_DIR } from "../manifest/keys.ts";
import { loadKernelModules, type KernelModules } from "../kmod/tree.ts";
import { formatModulesAlias, formatModulesDep, formatModulesSoftdep, loadOrder, moduleName, UnknownModuleError, type ModuleTable } from "../kmod/modules-dep.ts";

export interface FileSpec {
  src: string;
  dest: string;
}

export interface InitramfsOptions {
  /** Output file. */
  out: string;
  /** The agent executable, installed as /inetboot (default: this executable when compiled, else build/inetboot). */
  agent?: string;
  /** The static pre-init, installed as /init (default build/init). */
  init?: string;
  /** Directory holding lib/modules/VER (an unpacked linux-image package). */
  kernel?: string;
  /** Kernel version (default: the only one in KERNEL/lib/modules). */
  kver?: string;
  /** Modules to include, with their dependencies. */
  modules?: string[];
  /** Extra files: {src,dest} or "SRC:DEST" strings. A directory is copied recursively. */
  files?: Array<FileSpec | string>;
  /** Public key files (KEY.pub) the agent trusts for manifests and scripts: /etc/inetboot/trusted/<key id>.pub. */
  trust?: string[];
  /** Let the agent accept unsigned manifests (writes /etc/inetboot/allow-unsigned). */
  allowUnsigned?: boolean;
  /** Add /bin/busybox (from `busybox`, default /bin/busybox) and /bin/sh. */
  withBusybox?: boolean;
  busybox?: string;
  /** Add /usr/sbin/fsck.fat (from `fsckFat`, default /usr/sbin/fsck.fat, dosfstools): the agent
   *  repairs a FAT cache stick that was cut off while written (boot/fsck-fat.ts). */
  withFsckFat?: boolean;
  fsckFat?: string;
  /** lz4 (default), zstd or none. */
  compress?: Compression;
  /** zstd level 1..19 (default 3); only with compress "zstd". */
  level?: number;
  /** mtime of every entry (default SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /** One-line notes for the user (stderr in the CLI). */
  log?: (msg: string) => void;
  /** Called as archive bytes are produced: (bytes written, total uncompressed bytes). */
  progress?: (done: number, total: number) => void;
}

export interface InitramfsResult {
  path: string;
  compressedBytes: number;
  unpackedBytes: number;
  /** Number of archive entries (files, directories, symlinks, device nodes). */
  files: number;
  /** Kernel modules included, in load order. */
  modules: string[];
}

/** Directories every boot needs (mount points and scratch), with their modes. */
const BASE_DIRS: Array<[string, number]> = [
  ["dev", 0o755],
  ["etc", 0o755],
  ["mnt", 0o755],
  ["proc", 0o555],
  ["root", 0o700],
  ["run", 0o755],
  ["sys", 0o555],
  ["sysroot", 0o755],
  ["tmp", 0o1777],
];

/** Nodes the kernel and the agent need before devtmpfs is mounted. */
const BASE_DEVICES: Array<[string, number, number, number]> = [
  ["dev/console", 5, 1, 0o600],
  ["dev/null", 1, 3, 0o666],
  ["dev/tty", 5, 0, 0o666],
];

/** True when running as a `bun build --compile` executable (its modules live under /$bunfs/). */
export function isCompiledExecutable(): boolean {
  return Bun.main.startsWith("/$bunfs/") || import.meta.path.startsWith("/$bunfs/");
}

export function defaultAgentPath(): string {
  return isCompiledExecutable() ? process.execPath : "build/inetboot";
}

/** "SRC:DEST" → {src, dest}; the first ':' separates them. */
export function parseFileSpec(spec: string): FileSpec {
  const i = spec.indexOf(":");
  if (i <= 0 || i === spec.length - 1) throw new UserError(`bad --file ${JSON.stringify(spec)}: expected SRC:DEST`);
  return { src: spec.slice(0, i), dest: spec.slice(i + 1) };
}

function sourceDateEpoch(): number {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === "") return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new UserError(`bad SOURCE_DATE_EPOCH ${JSON.stringify(v)}`);
  return n;
}

/** An executable from the host at a fixed archive path, with its shared-library closure at host paths. */
function addExecutable(tree: ArchiveTree, src: string, dest: string, role: string): void {
  if (!existsSync(src)) throw new UserError(`${role} not found: ${src}`);
  if (!statSync(src).isFile()) throw new UserError(`${role} is not a regular file: ${src}`);
  if (!isElfFile(src)) throw new UserError(`${role} is not an ELF executable: ${src}`);
  let libs: string[];
  try {
    libs = sharedLibClosure(resolve(src));
  } catch (e) {
    throw new UserError(`${role} ${src}: ${(e as Error).message}`);
  }
  for (const l of libs) mirrorHostPath(tree, l);
  tree.addFile(dest, resolve(src), statSync(src).size, 0o755);
}

/** Copy an extra file or directory tree. Symlinks are followed (like `cp -rL`): a link into the
 *  host's filesystem, e.g. /etc/ssl/certs/*.pem, would dangle inside the initramfs. */
function addExtra(tree: ArchiveTree, spec: FileSpec, builders: Set<string>): void {
  const label = `${spec.src}:${spec.dest}`;
  if (!existsSync(spec.src)) throw new UserError(`bad --file ${label}: ${spec.src} does not exist`);
  let dest: string;
  try {
    dest = ArchiveTree.clean(spec.dest);
  } catch (e) {
    throw new UserError(`bad --file ${label}: ${(e as Error).message}`);
  }
  const copy = (src: string, to: string, depth: number) => {
    if (depth > 64) throw new UserError(`bad --file ${label}: directory nesting too deep at ${src} (symlink loop?)`);
    if (!existsSync(src)) throw new UserError(`bad --file ${label}: dangling symlink ${src}`);
    const st = statSync(src);
    if (st.isDirectory()) {
      tree.addDir(to, st.mode & 0o7777);
      for (const n of readdirSync(src).sort()) copy(join(src, n), `${to}/${n}`, depth + 1);
    } else if (st.isFile()) {
      refuseBuilderPath(tree, to, label, builders);
      tree.addFile(to, resolve(src), st.size, st.mode & 0o7777);
    }
    else throw new UserError(`bad --file ${label}: ${src} is not a regular file or directory`);
  };
  copy(spec.src, dest, 0);
}

/** What the builder itself writes at a path, for the refusal's hint. */
const BUILDER_HINTS: Record<string, string> = {
  init: "the pre-init; choose it with --init PATH",
  inetboot: "the agent; choose it with --agent PATH",
};

/** An extra file may not replace one the builder wrote (the agent, the pre-init, their
 *  libraries, busybox, modules, keys): the archive would build fine and not boot. */
function refuseBuilderPath(tree: ArchiveTree, to: string, label: string, builders: Set<string>): void {
  let at: string;
  try {
    at = tree.resolve(to); // where the file would land: through /lib -> usr/lib and the like
  } catch (e) {
    throw new UserError(`bad --file ${label}: ${(e as Error).message}`);
  }
  if (!builders.has(at)) return;
  throw new UserError(`bad --file ${label}: the builder writes /${at} itself (${BUILDER_HINTS[at] ?? "pick another destination"})`);
}

/** Kernel modules plus the dependency closure, and the module index files for coldplug. */
function addModules(tree: ArchiveTree, kernelDir: string, kver: string | undefined, names: string[], log: (m: string) => void): string[] {
  if (!existsSync(kernelDir)) throw new UserError(`kernel dir not found: ${kernelDir}`);
  const k = loadKernelModules(kernelDir, kver);
  const wanted: string[] = [];
  for (const n of names) {
    const m = moduleName(n);
    if (k.table.has(m)) wanted.push(m);
    else if (k.builtin.has(m)) log(`module ${m} is built into kernel ${k.version}; skipped`);
    else throw new UserError(`unknown module ${n}: not in ${k.dir}`);
  }
  let order: string[];
  try {
    order = loadOrder(k.table, wanted, { builtin: k.builtin, resolveSoft: (w) => k.aliases.lookup(w) });
  } catch (e) {
    if (e instanceof UnknownModuleError) throw new UserError(`${e.message} (in ${k.dir})`);
    throw e;
  }
  const base = `lib/modules/${k.version}`;
  for (const m of order) {
    const r = k.table.get(m)!;
    const src = join(k.dir, r.path);
    tree.addFile(`${base}/${r.path}`, src, statSync(src).size, 0o644);
  }
  const text = (s: string) => new TextEncoder().encode(s);
  const gen: Array<[string, string]> = [
    ["modules.dep", formatModulesDep(k.table, order)],
    ["modules.alias", formatModulesAlias(k.table, order)],
    ["modules.softdep", formatModulesSoftdep(resolvedSoftdeps(k, order), order)],
    // The agent's load order, deps first: what a coldplug without modprobe needs.
    ["modules.order", order.map((m) => k.table.get(m)!.path + "\n").join("")],
  ];
  const builtin = join(k.dir, "modules.builtin");
  if (existsSync(builtin)) gen.push(["modules.builtin", readFileSync(builtin, "utf8")]);
  for (const [name, s] of gen) {
    const b = text(s);
    tree.addFile(`${base}/${name}`, b, b.length, 0o644);
  }
  log(`${order.length} kernel modules for ${k.version} (${k.source === "modinfo" ? "dependencies from .modinfo" : "modules.dep"}): ${order.join(" ")}`);
  return order;
}

/**
 * The included modules with softdep words (names or aliases such as "crypto-crc32c") replaced by
 * the included modules they resolve to, so a loader on the target needs no alias lookup for them.
 */
function resolvedSoftdeps(k: KernelModules, order: string[]): ModuleTable {
  const inc = new Set(order);
  const res = (w: string) => {
    const n = moduleName(w);
    return (k.table.has(n) ? [n] : k.aliases.lookup(w)).filter((m) => inc.has(m));
  };
  const t: ModuleTable = new Map();
  for (const m of order) {
    const r = k.table.get(m)!;
    t.set(m, { ...r, softPre: [...new Set(r.softPre.flatMap(res))], softPost: [...new Set(r.softPost.flatMap(res))] });
  }
  return t;
}

/** Trusted signing keys, checked and written in canonical form under the key id, and the unsigned switch. */
function addTrust(tree: ArchiveTree, pubs: string[], allowUnsigned: boolean): void {
  const text = (s: string) => new TextEncoder().encode(s);
  for (const p of pubs) {
    let k;
    try {
      k = readPublicKeyFile(p);
    } catch (e) {
      const msg = (e as Error).message;
      throw new UserError(`bad --trust ${p}: ${msg.startsWith(`${p}: `) ? msg.slice(p.length + 2) : msg}`);
    }
    const b = text(formatPublicKey(k));
    tree.addFile(`${TRUSTED_DIR}/${k.id}.pub`, b, b.length, 0o644);
  }
  if (allowUnsigned) {
    const b = text("unsigned manifests and scripts are accepted (inetboot initramfs --allow-unsigned)\n");
    tree.addFile(ALLOW_UNSIGNED_PATH, b, b.length, 0o644);
  }
}

/** Lay out the archive tree (no bytes written yet). */
export function planInitramfs(opts: InitramfsOptions): { tree: ArchiveTree; modules: string[] } {
  const log = opts.log ?? (() => {});
  const tree = new ArchiveTree();
  const init = opts.init ?? "build/init";
  const agent = opts.agent ?? defaultAgentPath();
  if (!existsSync(init)) throw new UserError(`pre-init not found: ${init} (build it with make, or pass --init PATH)`);
  if (!existsSync(agent)) throw new UserError(`agent executable not found: ${agent} (build it with make, or pass --agent PATH)`);
  const specs = (opts.files ?? []).map((f) => (typeof f === "string" ? parseFileSpec(f) : f));
  // Order matters only for conflicts: host library paths first (they may make /lib a symlink),
  // then everything that may live under them.
  addExecutable(tree, init, "init", "pre-init");
  addExecutable(tree, agent, "inetboot", "agent executable");
  if (opts.withBusybox) {
    const bb = opts.busybox ?? "/bin/busybox";
    if (!existsSync(bb)) throw new UserError(`busybox not found: ${bb} (install busybox-static)`);
    addExecutable(tree, bb, "bin/busybox", "busybox");
    tree.addSymlink("bin/sh", "busybox");
  }
  if (opts.withFsckFat) {
    const f = opts.fsckFat ?? "/usr/sbin/fsck.fat";
    if (!existsSync(f)) throw new UserError(`fsck.fat not found: ${f} (install dosfstools)`);
    addExecutable(tree, f, "usr/sbin/fsck.fat", "fsck.fat");
  }
  for (const [d, perm] of BASE_DIRS) tree.addDir(d, perm);
  for (const [p, maj, min, perm] of BASE_DEVICES) tree.addDevice(p, "char", maj, min, perm);
  let modules: string[] = [];
  const names = (opts.modules ?? []).map((s) => s.trim()).filter(Boolean);
  if (names.length || opts.kernel) {
    if (!opts.kernel) throw new UserError("--modules needs --kernel DIR (a directory holding lib/modules/VERSION)");
    if (!existsSync(opts.kernel)) throw new UserError(`kernel dir not found: ${opts.kernel}`);
    if (names.length) modules = addModules(tree, opts.kernel, opts.kver, names, log);
  }
  addTrust(tree, opts.trust ?? [], !!opts.allowUnsigned);
  // Every non-directory entry so far is the builder's own; extras come last and may not replace one.
  const builders = new Set([...tree.nodes].filter(([, n]) => n.kind !== "dir").map(([p]) => p));
  for (const s of specs) addExtra(tree, s, builders);
  return { tree, modules };
}

const CHUNK = 1 << 20;

/** --out checked before the slow work: its directory exists and it is new or a regular file
 *  (renaming the finished archive over a directory fails only at the very end). */
function checkOut(out: string): void {
  const outDir = dirname(resolve(out));
  if (!existsSync(outDir) || !statSync(outDir).isDirectory()) throw new UserError(`output directory does not exist: ${outDir}`);
  const st = statSync(out, { throwIfNoEntry: false });
  if (st?.isDirectory()) throw new UserError(`--out ${out}: is a directory (name the file to write, e.g. ${join(out, "initramfs.cpio.zst")})`);
  if (st && !st.isFile()) throw new UserError(`--out ${out}: exists and is not a regular file`);
}

/** The writing loop only awaits settled promises (sync reads and writes, lz4 on this thread): a
 *  turn of the event loop now and then lets a signal's handler run mid-build. */
const yieldToSignals = () => new Promise<void>((r) => setImmediate(r));

/** Build the initramfs file. */
export async function buildInitramfs(opts: InitramfsOptions): Promise<InitramfsResult> {
  const mtime = opts.mtime ?? sourceDateEpoch();
  checkOut(opts.out);
  const { tree, modules } = planInitramfs(opts);
  const entries = tree.sorted();
  let total = 0;
  for (const [, n] of entries) total += n.kind === "file" ? n.size : 0;
  const compress = opts.compress ?? DEFAULT_COMPRESSION;
  const sink = openSink(opts.out, compress, opts.level);
  // Ctrl-C: the partial output goes (the sink's temporary file, its zstd child)
  const forget = onInterrupt(() => sink.abort());
  // High levels on a ~110 MB agent take a minute or more (zstd -19 -T0: ~75 s on 2 cores).
  if (compress === "zstd" && (opts.level ?? 0) >= 10) opts.log?.(`compressing with zstd -${opts.level} (slow for a large agent)`);
  const enc = new CpioEncoder();
  let done = 0;
  try {
    for (const [path, n] of entries) {
      const common = { path, mtime };
      if (n.kind === "dir") {
        for (const c of enc.entry({ ...common, kind: "dir", perm: n.perm })) await sink.write(c);
      } else if (n.kind === "symlink") {
        for (const c of enc.entry({ ...common, kind: "symlink", perm: 0o777 }, new TextEncoder().encode(n.target))) await sink.write(c);
      } else if (n.kind !== "file") {
        for (const c of enc.entry({ ...common, kind: n.kind, perm: n.perm, major: n.major, minor: n.minor })) await sink.write(c);
      } else {
        await sink.write(enc.header({ ...common, kind: "file", perm: n.perm, size: n.size }));
        if (typeof n.source === "string") {
          // Stream from disk in fresh 1 MiB buffers (a pipe write may still hold the previous one).
          const fd = openSync(n.source, "r");
          try {
            let off = 0;
            while (off < n.size) {
              const b = new Uint8Array(Math.min(CHUNK, n.size - off));
              const got = readSync(fd, b, 0, b.length, off);
              if (got <= 0) throw new Error(`${n.source} shrank while being archived`);
              await sink.write(got === b.length ? b : b.subarray(0, got));
              await yieldToSignals();
              off += got;
              done += got;
              opts.progress?.(done, total);
            }
          } finally {
            closeSync(fd);
          }
        } else {
          await sink.write(n.source);
          done += n.size;
        }
        enc.data(n.size);
        await sink.write(enc.dataPadding());
      }
    }
    await sink.write(enc.trailer());
  } catch (e) {
    forget();
    sink.abort();
    throw e;
  }
  let compressedBytes: number;
  try {
    compressedBytes = await sink.close();
  } catch (e) {
    sink.abort(); // a rename that failed leaves OUT.tmp-PID: the whole archive
    throw e;
  } finally {
    forget();
  }
  opts.progress?.(total, total);
  return { path: opts.out, compressedBytes, unpackedBytes: enc.position, files: entries.length, modules };
}
