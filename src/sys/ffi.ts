// The one place for bun:ffi bindings. Everything that needs a syscall goes through here so the
// rest of the code can be tested with a fake of the small wrappers below (seams, as u-root does).
import { dlopen, FFIType, ptr, read, CString } from "bun:ffi";

const { i32, i64, u64, ptr: P } = FFIType;
const usize = FFIType.u64; // size_t on x86-64

let lib: ReturnType<typeof open> | undefined;
function open() {
  return dlopen("libc.so.6", {
    __errno_location: { args: [], returns: P },
    strerror: { args: [i32], returns: FFIType.cstring },
    syscall: { args: [i64, i64, i64, i64, i64, i64], returns: i64 },
    mount: { args: [P, P, P, u64, P], returns: i32 },
    umount2: { args: [P, i32], returns: i32 },
    chroot: { args: [P], returns: i32 },
    reboot: { args: [i32], returns: i32 },
    sync: { args: [], returns: FFIType.void },
    syncfs: { args: [i32], returns: i32 },
    socket: { args: [i32, i32, i32], returns: i32 },
    bind: { args: [i32, P, u64], returns: i32 },
    connect: { args: [i32, P, u64], returns: i32 },
    setsockopt: { args: [i32, i32, i32, P, u64], returns: i32 },
    sendto: { args: [i32, P, usize, i32, P, u64], returns: i64 },
    recvfrom: { args: [i32, P, usize, i32, P, P], returns: i64 },
    ioctl: { args: [i32, u64, P], returns: i32 },
    poll: { args: [P, u64, i32], returns: i32 },
    close: { args: [i32], returns: i32 },
    waitpid: { args: [i32, P, i32], returns: i32 },
    prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
    execve: { args: [P, P, P], returns: i32 },
    fork: { args: [], returns: i32 },
    setsid: { args: [], returns: i32 },
    dup2: { args: [i32, i32], returns: i32 },
    getpid: { args: [], returns: i32 },
    mknod: { args: [P, u64, u64], returns: i32 },
    lseek: { args: [i32, i64, i32], returns: i64 },
  });
}
/** libc symbols, opened on first use (the host CLI never pays for it unless it needs it). */
export function libc() {
  lib ??= open();
  return lib.symbols;
}

export function errno(): number {
  return read.i32(libc().__errno_location()!);
}

export function strerror(e: number): string {
  return String(libc().strerror(e));
}

/** Error carrying the call that failed, e.g. `mount(/dev/nbd0 → /sysroot, squashfs): EINVAL`. */
export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${ERRNO_NAMES[errno] ?? `errno ${errno}`} (${strerrorSafe(errno)})`);
    this.name = "SysError";
  }
  get code(): string {
    return ERRNO_NAMES[this.errno] ?? `E${this.errno}`;
  }
}
function strerrorSafe(e: number): string {
  try {
    return strerror(e);
  } catch {
    return "unknown";
  }
}

export const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
  9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 15: "ENOTBLK",
  16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 24: "EMFILE",
  25: "ENOTTY", 28: "ENOSPC", 30: "EROFS", 32: "EPIPE", 38: "ENOSYS", 61: "ENODATA", 71: "EPROTO",
  74: "EBADMSG", 75: "EOVERFLOW", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT", 98: "EADDRINUSE",
  99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH", 104: "ECONNRESET", 110: "ETIMEDOUT",
  111: "ECONNREFUSED", 113: "EHOSTUNREACH", 129: "EKEYREJECTED",
};

/** Throws SysError when a libc call returned a negative value. */
export function check<T extends number | bigint>(ret: T, call: string): T {
  if (ret < 0) throw new SysError(call, errno());
  return ret;
}

/** NUL-terminated copy of a string for a `const char *` argument. */
export function cstr(s: string): Buffer {
  return Buffer.from(s + "\0", "utf8");
}
const NULL = null as unknown as ReturnType<typeof ptr>;
function cstrOrNull(s: string | null | undefined) {
  return s == null ? NULL : cstr(s);
}

// ---- syscall numbers (x86-64) ----
export const SYS = { finit_module: 313, kexec_file_load: 320, pivot_root: 155, setpriority: 141 } as const;

// ---- mount ----
export const MS = {
  RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, REMOUNT: 32, NOSYMFOLLOW: 256, BIND: 4096, MOVE: 8192, REC: 16384,
  PRIVATE: 1 << 18, SILENT: 32768,
} as const;

export function mount(source: string, target: string, fstype: string | null, flags = 0, data: string | null = null) {
  const r = libc().mount(cstr(source), cstr(target), cstrOrNull(fstype), flags, cstrOrNull(data));
  check(r, `mount(${source} → ${target}${fstype ? `, ${fstype}` : ""})`);
}
export function umount(target: string, flags = 0) {
  check(libc().umount2(cstr(target), flags), `umount(${target})`);
}
export function chroot(path: string) {
  check(libc().chroot(cstr(path)), `chroot(${path})`);
}
export function mknod(path: string, mode: number, major: number, minor: number) {
  // glibc makedev: ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12) for small numbers
  const dev = BigInt(((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12));
  check(libc().mknod(cstr(path), mode, dev), `mknod(${path})`);
}

// ---- modules ----
/** finit_module(2): load a kernel module from an open file descriptor. */
export function finitModule(fd: number, params: string, name: string) {
  const r = libc().syscall(SYS.finit_module, fd, ptr(cstr(params)), 0, 0, 0);
  if (r < 0n) throw new SysError(`finit_module(${name})`, errno());
}

// ---- kernel log ----
/** syslog(SYSLOG_ACTION_READ_ALL): the kernel ring buffer, as dmesg prints it. */
export function readKernelLog(): string {
  const buf = new Uint8Array(1 << 20);
  const r = libc().syscall(103 /* SYS_syslog */, 3 /* READ_ALL */, ptr(buf), buf.byteLength, 0, 0);
  if (r < 0n) throw new SysError("syslog(READ_ALL)", errno());
  return new TextDecoder().decode(buf.subarray(0, Number(r)));
}

// ---- kexec ----
export const KEXEC_FILE_NO_INITRAMFS = 4;
/** kexec_file_load(2): stages a kernel (and initrd) for LINUX_REBOOT_CMD_KEXEC. */
export function kexecFileLoad(kernelFd: number, initrdFd: number, cmdline: string, flags = 0) {
  const c = cstr(cmdline);
  const r = libc().syscall(SYS.kexec_file_load, kernelFd, initrdFd, c.byteLength, ptr(c), flags);
  if (r < 0n) throw new SysError("kexec_file_load", errno());
}

// ---- reboot ----
export const REBOOT = { RESTART: 0x01234567, HALT: 0xcdef0123, POWER_OFF: 0x4321fedc, KEXEC: 0x45584543 } as const;
export function reboot(cmd: number) {
  libc().sync();
  check(libc().reboot(cmd), "reboot");
}
export function sync() {
  libc().sync();
}
/** Flushes the one filesystem holding fd (data, metadata and the device's write cache). Blocks the
 *  calling thread for as long as the medium takes; see SYNCFS_WORKER_SRC for the async form. */
export function syncfs(fd: number, what = "syncfs") {
  check(libc().syncfs(fd), what);
}
/** A Worker's source (started from a Blob URL: no extra entry point for `bun build --compile`)
 *  that runs syncfs(fd) for {id, fd} messages and answers {id, errno}: a flush of a slow USB stick
 *  then does not stop the event loop of the NBD daemon. errno is per thread, so it is read there. */
export const SYNCFS_WORKER_SRC = `
import { dlopen, FFIType, read } from "bun:ffi";
const c = dlopen("libc.so.6", {
  syncfs: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;
self.onmessage = (e) => {
  const { id, fd } = e.data;
  const r = c.syncfs(fd);
  postMessage({ id, errno: r < 0 ? read.i32(c.__errno_location()) : 0 });
};
`;

// ---- processes ----
export const WNOHANG = 1;
/** waitpid(pid, WNOHANG): returns the reaped pid, 0 when still running. */
export function waitpidNoHang(pid: number): number {
  const status = new Int32Array(1);
  return libc().waitpid(pid, ptr(status), WNOHANG);
}
export const PR = { SET_NAME: 15, SET_IO_FLUSHER: 57, SET_CHILD_SUBREAPER: 36 } as const;
export function prctl(option: number, arg2 = 0) {
  check(libc().prctl(option, arg2, 0, 0, 0), `prctl(${option})`);
}
/** setpriority(PRIO_PROCESS, tid, nice): on Linux the nice value belongs to one thread (tid 0 = the caller). */
export function setThreadNice(tid: number, nice: number) {
  const r = libc().syscall(SYS.setpriority, 0, tid, nice, 0, 0, 0);
  if (Number(r) < 0) throw new SysError(`setpriority(${tid}, ${nice})`, errno());
}
/** execve(2) that only returns by throwing. */
export function execve(path: string, argv: string[], envp: string[]): never {
  const keep: Buffer[] = [];
  const vec = (items: string[]) => {
    const arr = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      arr[i] = BigInt(ptr(b));
    });
    return arr;
  };
  const a = vec(argv), e = vec(envp);
  libc().execve(cstr(path), ptr(a), ptr(e));
  throw new SysError(`execve(${path})`, errno());
}

// ---- sockets ----
export const AF = { UNIX: 1, INET: 2, NETLINK: 16, PACKET: 17 } as const;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const SOL = { SOCKET: 1, IP: 0 } as const;
export const SO = { REUSEADDR: 2, BROADCAST: 6, BINDTODEVICE: 25, RCVBUF: 8, RCVTIMEO: 20 } as const;

/** SO_RCVTIMEO: a blocking receive on `fd` fails (EAGAIN) after `seconds`; 0 waits forever. */
export function setReceiveTimeout(fd: number, seconds: number) {
  const tv = new BigInt64Array([BigInt(Math.floor(seconds)), 0n]); // struct timeval (64-bit)
  setsockopt(fd, SOL.SOCKET, SO.RCVTIMEO, new Uint8Array(tv.buffer), "SO_RCVTIMEO");
}

export function socket(domain: number, type: number, protocol = 0): number {
  return check(libc().socket(domain, type, protocol), `socket(${domain}, ${type})`);
}
export function closeFd(fd: number) {
  libc().close(fd);
}
export function setsockopt(fd: number, level: number, name: number, value: Uint8Array, what = `${level}/${name}`) {
  check(libc().setsockopt(fd, level, name, ptr(value), value.byteLength), `setsockopt(${what})`);
}
export function setsockoptInt(fd: number, level: number, name: number, v: number, what?: string) {
  setsockopt(fd, level, name, new Uint8Array(new Int32Array([v]).buffer), what);
}
export function bind(fd: number, addr: Uint8Array, what = "bind") {
  check(libc().bind(fd, ptr(addr), addr.byteLength), what);
}
export function connect(fd: number, addr: Uint8Array, what = "connect") {
  check(libc().connect(fd, ptr(addr), addr.byteLength), what);
}
export function sendto(fd: number, data: Uint8Array, addr: Uint8Array | null, what = "sendto"): number {
  const r = libc().sendto(fd, ptr(data), data.byteLength, 0, addr ? ptr(addr) : NULL, addr ? addr.byteLength : 0);
  return Number(check(r, what));
}
/** recvfrom(2); returns the byte count, or -1 with EAGAIN on a non-blocking socket with nothing queued. */
export function recvfrom(fd: number, buf: Uint8Array, from?: Uint8Array, what = "recvfrom"): number {
  const len = new Uint32Array([from ? from.byteLength : 0]);
  const r = libc().recvfrom(fd, ptr(buf), buf.byteLength, 0, from ? ptr(from) : NULL, from ? ptr(len) : NULL);
  if (r < 0n) {
    const e = errno();
    if (e === 11) return -1;
    throw new SysError(what, e);
  }
  return Number(r);
}
/** ioctl with a pointer argument (struct ifreq, rtentry, ...). */
export function ioctl(fd: number, request: number, arg: Uint8Array, what = `ioctl(0x${request.toString(16)})`) {
  check(libc().ioctl(fd, request, ptr(arg)), what);
}
/** ioctl with an integer argument (NBD_SET_SOCK and friends). */
export function ioctlInt(fd: number, request: number, arg: number, what = `ioctl(0x${request.toString(16)})`) {
  const r = libc().syscall(16 /* SYS_ioctl */, fd, request, arg, 0, 0);
  if (r < 0n) throw new SysError(what, errno());
  return Number(r);
}
/** poll(2) on one fd for POLLIN; returns true when readable within timeoutMs. */
export function pollIn(fd: number, timeoutMs: number): boolean {
  const pfd = new Uint8Array(8);
  const dv = new DataView(pfd.buffer);
  dv.setInt32(0, fd, true);
  dv.setInt16(4, 1 /* POLLIN */, true);
  const r = libc().poll(ptr(pfd), 1, timeoutMs);
  if (r < 0) {
    const e = errno();
    if (e === 4) return false;
    throw new SysError("poll", e);
  }
  return r > 0 && (dv.getInt16(6, true) & 1) !== 0;
}

/** struct sockaddr_in for an IPv4 address (dotted quad) and port. */
export function sockaddrIn(ip: string, port: number): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF.INET, true);
  dv.setUint16(2, port, false);
  ip.split(".").forEach((o, i) => (b[4 + i] = Number(o)));
  return b;
}
/** struct sockaddr_un for a filesystem path. */
export function sockaddrUn(path: string): Uint8Array {
  const b = new Uint8Array(110);
  new DataView(b.buffer).setUint16(0, AF.UNIX, true);
  b.set(Buffer.from(path), 2);
  return b;
}


// ---- files (sparse-file maps for NBD base:allocation) ----
export const SEEK = { DATA: 3, HOLE: 4 } as const;
/** lseek(2) with SEEK_DATA/SEEK_HOLE; returns -1 when there is no data past `offset` (ENXIO). */
export function lseek(fd: number, offset: number, whence: number, what = "lseek"): number {
  const r = libc().lseek(fd, offset, whence);
  if (r < 0n) {
    const e = errno();
    if (e === 6 /* ENXIO */) return -1;
    throw new SysError(what, e);
  }
  return Number(r);
}

export { ptr, read, CString };
