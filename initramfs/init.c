/*
 * /init: the tiny static pre-init. The kernel starts /init with nothing mounted, and a Bun
 * standalone executable aborts without /proc ("no /proc/self/exe available"), so this mounts
 * /proc, /sys and devtmpfs on /dev, then execs /inetboot with the same argv and environment, plus
 * two JavaScriptCore options (see jsc_defaults).
 * If that fails it says why and halts: returning from init would panic the kernel.
 * Raw syscalls, no libc: the binary stays a few KB.
 */
typedef unsigned long u64;

#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_dup2 33
#define SYS_execve 59
#define SYS_mkdir 83
#define SYS_mount 165
#define SYS_reboot 169
#define SYS_pause 34
#define O_RDWR 2
#define EEXIST 17
#define EBUSY 16

static long sys6(long n, long a, long b, long c, long d, long e) {
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
	return ret;
}
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0)

static unsigned slen(const char *s) { unsigned n = 0; while (s[n]) n++; return n; }
static void say(const char *s) { sys3(SYS_write, 2, s, slen(s)); }
static void say_num(long v) {
	char buf[24]; int i = 23; buf[i] = 0;
	if (v < 0) v = -v;
	do { buf[--i] = '0' + v % 10; v /= 10; } while (v && i > 0);
	say(buf + i);
}

static void mount_one(const char *src, const char *dst, const char *type) {
	long r = sys3(SYS_mkdir, dst, 0755, 0);
	(void)r;
	r = sys6(SYS_mount, (long)src, (long)dst, (long)type, 0x2 /* MS_NOSUID */, 0);
	if (r < 0 && r != -EBUSY) { say("init: mount "); say(dst); say(" failed: errno "); say_num(r); say("\n"); }
}

static void halt(void) {
	say("init: halting (the rescue path needs /inetboot; rebuild the initramfs)\n");
	sys6(SYS_reboot, 0xfee1dead, 672274793, 0xcdef0123 /* HALT */, 0, 0);
	for (;;) sys6(SYS_pause, 0, 0, 0, 0, 0);
}

/*
 * JavaScriptCore options for the agent and, inherited, the NBD daemon; a setting of the same name on
 * the kernel command line wins (BUN_JSC_useDFGJIT=1 turns the optimizing JIT back on).
 * - useDFGJIT=0: the optimizing JIT compiles hot functions on helper threads, but these processes
 *   spend their time in native code (zstd, SHA-256, syscalls): with it off, `inetboot nbd` moves as
 *   many bytes (host: 1.2 GB/s warm, 0.8 GB/s cold either way) and a boot under QEMU/TCG reaches
 *   its marker 0.5-1 s sooner (bench/README.md).
 * - useConcurrentJIT=0: the baseline JIT compiles on the thread that needs the code instead of a
 *   helper it then waits for; on one CPU the agent reaches switch_root ~0.3 s sooner.
 */
static const char *const jsc_defaults[] = { "BUN_JSC_useDFGJIT=0", "BUN_JSC_useConcurrentJIT=0" };
#define N_DEFAULTS (sizeof jsc_defaults / sizeof jsc_defaults[0])
#define MAX_ENV 256

/* Does `env` set the variable that `def` ("NAME=value") names? */
static int same_name(const char *env, const char *def) {
	while (*def && *def != '=' && *env == *def) env++, def++;
	return *def == '=' && *env == '=';
}

int main(int argc, char **argv, char **envp) {
	(void)argc;
	mount_one("proc", "/proc", "proc");
	mount_one("sysfs", "/sys", "sysfs");
	mount_one("devtmpfs", "/dev", "devtmpfs");
	/* Without /dev/console in the archive the kernel gave us no stdio: open it now. */
	if (sys3(SYS_write, 1, "", 0) < 0) {
		long fd = sys3(SYS_open, "/dev/console", O_RDWR, 0);
		if (fd >= 0) { sys3(SYS_dup2, fd, 0, 0); sys3(SYS_dup2, fd, 1, 0); sys3(SYS_dup2, fd, 2, 0); if (fd > 2) sys3(SYS_close, fd, 0, 0); }
	}
	const char *agent = "/inetboot";
	argv[0] = (char *)agent;
	char *env[MAX_ENV + N_DEFAULTS + 1];
	unsigned n = 0;
	for (; envp[n] && n < MAX_ENV; n++) env[n] = envp[n];
	for (unsigned d = 0, e, given = n; d < N_DEFAULTS; d++) {
		for (e = 0; e < given && !same_name(env[e], jsc_defaults[d]); e++) {}
		if (e == given) env[n++] = (char *)jsc_defaults[d];
	}
	env[n] = 0;
	long r = sys3(SYS_execve, agent, argv, env);
	say("init: execve(/inetboot) failed: errno ");
	say_num(r);
	say(r == -2 ? " (ENOENT: missing file or its ELF interpreter/libraries)\n" : "\n");
	halt();
	return 0;
}

/* Entry point without libc: the stack holds argc, argv[], NULL, envp[]. */
__asm__(".global _start\n_start:\n xor %rbp,%rbp\n mov (%rsp),%rdi\n lea 8(%rsp),%rsi\n lea 16(%rsp,%rdi,8),%rdx\n and $-16,%rsp\n call main\n ud2\n");
