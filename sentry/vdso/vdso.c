/*
 * rvisor's vDSO: the clock and CPU-number calls an application makes without
 * entering the sentry. Built freestanding (no headers of the build host) by
 * sentry/build.rs into a position-independent shared object that the sentry maps
 * into every process, one page after its data page (vvar).
 *
 * The clocks are one line per sandbox, published by the sentry in the vvar page
 * (sentry/src/kernel/vdso.rs writes it, and reads it the same way to answer the
 * clock_gettime syscall, so both agree to the nanosecond):
 *
 *     mono_fp(tsc) = base_ns * 2^32 + base_frac + (tsc - tsc_ref) * mult
 *
 * in units of 2^-32 ns; CLOCK_REALTIME, CLOCK_BOOTTIME and CLOCK_TAI add an offset
 * to CLOCK_MONOTONIC. A process in a time namespace has its namespace's page
 * here instead (the same line, kept in step by the sentry), whose W_NS_MONO and
 * W_NS_BOOT offsets move CLOCK_MONOTONIC and CLOCK_BOOTTIME (zero on the
 * sandbox's own page). A sequence word is odd while the sentry rewrites the
 * parameters; readers retry until they read one even value before and after, and
 * after a while give up and make the real system call (which traps to the sentry
 * like any other). Anything not served here (CPU-time clocks, unknown ids, the raw
 * clock, a page the sentry has not enabled) is that system call too.
 */

typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;

/* Word indices in the vvar page: keep in step with sentry/src/kernel/vdso.rs. */
enum {
	W_SEQ = 0,
	W_FLAGS = 1,
	W_TSC_REF = 2,
	W_BASE_NS = 3,
	W_BASE_FRAC = 4,
	W_MULT = 5,
	W_REALTIME_OFF = 6,
	W_BOOTTIME_OFF = 7,
	W_TAI_OFF = 8,
	W_COARSE_RES = 9,
	W_NCPUS = 10,
	W_NS_MONO = 11,
	W_NS_BOOT = 12,
};

/* W_FLAGS: the line may be used. */
#define FLAG_CLOCKS 1UL

#define NR_gettimeofday 96
#define NR_time 201
#define NR_clock_gettime 228
#define NR_clock_getres 229
#define NR_getcpu 309

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7
#define CLOCK_TAI 11

/* How many times a reader looks at an odd sequence before trapping instead. */
#define SPINS 1000

struct timespec {
	i64 tv_sec;
	i64 tv_nsec;
};

struct timeval {
	i64 tv_sec;
	i64 tv_usec;
};

struct timezone {
	int tz_minuteswest;
	int tz_dsttime;
};

/* Defined by vdso.lds one page below the first byte of this object. */
extern const volatile u64 rv_vvar[512] __attribute__((visibility("hidden")));

#define barrier() __asm__ __volatile__("" ::: "memory")

static inline long sys2(long nr, long a, long b)
{
	long ret;
	__asm__ __volatile__("syscall"
			     : "=a"(ret)
			     : "0"(nr), "D"(a), "S"(b)
			     : "rcx", "r11", "memory");
	return ret;
}

static inline long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ __volatile__("syscall"
			     : "=a"(ret)
			     : "0"(nr), "D"(a), "S"(b), "d"(c)
			     : "rcx", "r11", "memory");
	return ret;
}

/* The TSC, read after every earlier load and before every later one. */
static inline u64 tsc_ordered(void)
{
	u32 lo, hi;
	__asm__ __volatile__("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
	return ((u64)hi << 32) | lo;
}

/*
 * Nanoseconds of `clock` (one the line serves); 0 with *ok false when the line
 * is not enabled or the sentry seems stuck mid-update.
 */
static inline u64 line_ns(int clock, int *ok)
{
	int spins = 0;
	for (;;) {
		u64 seq = rv_vvar[W_SEQ];
		barrier();
		if (seq & 1) {
			if (++spins > SPINS) {
				*ok = 0;
				return 0;
			}
			__asm__ __volatile__("pause");
			continue;
		}
		u64 flags = rv_vvar[W_FLAGS];
		u64 ref = rv_vvar[W_TSC_REF];
		u64 base = rv_vvar[W_BASE_NS];
		u64 frac = rv_vvar[W_BASE_FRAC];
		u64 mult = rv_vvar[W_MULT];
		u64 off = 0;
		if (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)
			off = rv_vvar[W_REALTIME_OFF];
		else if (clock == CLOCK_BOOTTIME)
			off = rv_vvar[W_BOOTTIME_OFF] + rv_vvar[W_NS_BOOT];
		else if (clock == CLOCK_TAI)
			off = rv_vvar[W_TAI_OFF];
		else
			off = rv_vvar[W_NS_MONO];
		u64 now = tsc_ordered();
		barrier();
		if (rv_vvar[W_SEQ] != seq)
			continue;
		if (!(flags & FLAG_CLOCKS)) {
			*ok = 0;
			return 0;
		}
		/* A TSC read behind the reference (another CPU's, a hair late) reads
		 * as the reference: the clock never goes back. */
		u64 delta = now > ref ? now - ref : 0;
		unsigned __int128 p = (unsigned __int128)delta * mult + frac;
		*ok = 1;
		return base + (u64)(p >> 32) + off;
	}
}

static inline int served(int clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
	       clock == CLOCK_REALTIME_COARSE || clock == CLOCK_MONOTONIC_COARSE ||
	       clock == CLOCK_BOOTTIME || clock == CLOCK_TAI;
}

int __vdso_clock_gettime(int clock, struct timespec *ts)
{
	if (served(clock)) {
		int ok;
		u64 ns = line_ns(clock, &ok);
		/* Times before 1970 (a negative wall clock) go to the sentry. */
		if (ok && (i64)ns >= 0) {
			ts->tv_sec = (i64)(ns / 1000000000UL);
			ts->tv_nsec = (i64)(ns % 1000000000UL);
			return 0;
		}
	}
	return (int)sys2(NR_clock_gettime, clock, (long)ts);
}
int clock_gettime(int, struct timespec *) __attribute__((weak, alias("__vdso_clock_gettime")));

int __vdso_gettimeofday(struct timeval *tv, struct timezone *tz)
{
	if (tv) {
		int ok;
		u64 ns = line_ns(CLOCK_REALTIME, &ok);
		if (!ok || (i64)ns < 0)
			return (int)sys2(NR_gettimeofday, (long)tv, (long)tz);
		tv->tv_sec = (i64)(ns / 1000000000UL);
		tv->tv_usec = (i64)(ns % 1000000000UL / 1000);
	}
	if (tz) {
		/* The sandbox runs in UTC, as the syscall says. */
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}
int gettimeofday(struct timeval *, struct timezone *)
	__attribute__((weak, alias("__vdso_gettimeofday")));

i64 __vdso_time(i64 *t)
{
	int ok;
	u64 ns = line_ns(CLOCK_REALTIME, &ok);
	if (!ok || (i64)ns < 0)
		return sys2(NR_time, (long)t, 0);
	i64 secs = (i64)(ns / 1000000000UL);
	if (t)
		*t = secs;
	return secs;
}
i64 time(i64 *) __attribute__((weak, alias("__vdso_time")));

int __vdso_clock_getres(int clock, struct timespec *res)
{
	if (!served(clock) || !(rv_vvar[W_FLAGS] & FLAG_CLOCKS))
		return (int)sys2(NR_clock_getres, clock, (long)res);
	if (res) {
		u64 r = 1;
		if (clock == CLOCK_REALTIME_COARSE || clock == CLOCK_MONOTONIC_COARSE)
			r = rv_vvar[W_COARSE_RES];
		res->tv_sec = (i64)(r / 1000000000UL);
		res->tv_nsec = (i64)(r % 1000000000UL);
	}
	return 0;
}
int clock_getres(int, struct timespec *) __attribute__((weak, alias("__vdso_clock_getres")));

/*
 * The host kernel keeps each CPU's number in the limit of a per-CPU GDT segment
 * (selector 0x7b on x86-64 Linux); the sentry's getcpu reports the same number,
 * folded onto the sandbox's CPUs.
 */
long __vdso_getcpu(u32 *cpu, u32 *node, void *unused)
{
	u64 ncpus = rv_vvar[W_NCPUS];
	u32 limit = 0;
	unsigned char ok;
	__asm__ __volatile__("lsl %2, %0; setz %1" : "=r"(limit), "=qm"(ok) : "r"(0x7bU) : "cc");
	if (!ok || ncpus == 0)
		return sys3(NR_getcpu, (long)cpu, (long)node, (long)unused);
	if (cpu)
		*cpu = (u32)((limit & 0xfff) % ncpus);
	if (node)
		*node = 0;
	return 0;
}
long getcpu(u32 *, u32 *, void *) __attribute__((weak, alias("__vdso_getcpu")));
