// rseq(2): glibc registers every thread's area at start (so sched_getcpu reads it),
// the registration rules (EBUSY for the same area again, EPERM for a wrong
// signature, EINVAL for another area, a bad length, alignment or flags),
// unregistration (cpu_id back to RSEQ_CPU_ID_UNINITIALIZED), a fresh
// registration of the program's own area, and the abort of a registered
// critical section by a signal delivered while the thread runs in it.
// e2e: stdout=glibc registered: yes
// e2e: stdout=cpu_id valid: yes, matches sched_getcpu: yes, cpu_id_start: yes
// e2e: stdout=child thread registered: yes
// e2e: stdout=same again: -1 EBUSY
// e2e: stdout=wrong sig: -1 EPERM
// e2e: stdout=other area: -1 EINVAL
// e2e: stdout=unregister wrong sig: -1 EPERM
// e2e: stdout=unregister wrong len: -1 EINVAL
// e2e: stdout=unregister: 0, cpu_id now -1
// e2e: stdout=short len: -1 EINVAL
// e2e: stdout=misaligned: -1 EINVAL
// e2e: stdout=bad flags: -1 EINVAL
// e2e: stdout=own area: 0, cpu_id valid: yes
// e2e: stdout=signal in critical section: aborted, rseq_cs cleared: yes
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(int e) {
    return e == EBUSY ? "EBUSY" : e == EPERM ? "EPERM" : e == EINVAL ? "EINVAL" : strerror(e);
}

/* The length glibc registers (its __rseq_size tells the fields it uses: 20). */
#define REG_LEN 32

static long sys_rseq(void *area, uint32_t len, int flags, uint32_t sig) {
    return syscall(SYS_rseq, area, len, flags, sig);
}

static void show(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? err(errno) : "");
}

/* The critical section: spins while *flag is 0 (rdi = flag, rsi = &rseq_cs).
 * Returns 0 through its commit, 1 through its abort handler. */
int cs_spin(volatile int *flag, volatile __u64 *rseq_cs);
extern char cs_start[], cs_commit[], cs_abort[];
asm(".pushsection .text\n"
    ".globl cs_spin\n"
    "cs_spin:\n"
    "  leaq cs_desc(%rip), %rax\n"
    "  movq %rax, (%rsi)\n"
    ".globl cs_start\n"
    "cs_start:\n"
    "1: cmpl $0, (%rdi)\n"
    "  je 1b\n"
    ".globl cs_commit\n"
    "cs_commit:\n"
    "  movq $0, (%rsi)\n"
    "  xorl %eax, %eax\n"
    "  ret\n"
    "  .long 0x53053053\n"
    ".globl cs_abort\n"
    "cs_abort:\n"
    "  movl $1, %eax\n"
    "  ret\n"
    ".popsection\n"
    ".pushsection .data\n"
    ".balign 32\n"
    "cs_desc:\n"
    "  .long 0, 0\n"
    "  .quad cs_start\n"
    "  .quad cs_commit - cs_start\n"
    "  .quad cs_abort\n"
    ".popsection\n");

static volatile int flag;
static void on_usr1(int s) {
    (void)s;
    flag = 1;
}

static pthread_t spinner;
static void *kicker(void *arg) {
    (void)arg;
    usleep(100 * 1000);
    pthread_kill(spinner, SIGUSR1);
    return NULL;
}

static void *child_thread(void *arg) {
    struct rseq *r = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    *(int *)arg = (int)r->cpu_id >= 0 && sys_rseq(r, REG_LEN, 0, RSEQ_SIG) == -1 && errno == EBUSY;
    return NULL;
}

static struct rseq own __attribute__((aligned(32)));

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct rseq *r = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    printf("glibc registered: %s\n", __rseq_size > 0 ? "yes" : "no");
    if (__rseq_size == 0)
        return 0;
    int cpu = -2, id = -3;
    /* A migration between the two reads would differ: a few tries. */
    for (int i = 0; i < 10 && cpu != id; i++) {
        cpu = sched_getcpu();
        id = (int)r->cpu_id;
    }
    printf("cpu_id valid: %s, matches sched_getcpu: %s, cpu_id_start: %s\n",
           id >= 0 && id < CPU_SETSIZE ? "yes" : "no", id == cpu ? "yes" : "no",
           r->cpu_id_start == (uint32_t)id ? "yes" : "no");

    /* glibc registers a new thread while its creator's area is registered. */
    int ok = 0;
    pthread_t c;
    pthread_create(&c, NULL, child_thread, &ok);
    pthread_join(c, NULL);
    printf("child thread registered: %s\n", ok ? "yes" : "no");
    show("same again", sys_rseq(r, REG_LEN, 0, RSEQ_SIG));
    show("wrong sig", sys_rseq(r, REG_LEN, 0, RSEQ_SIG + 1));
    show("other area", sys_rseq(&own, sizeof own, 0, RSEQ_SIG));
    show("unregister wrong sig", sys_rseq(r, REG_LEN, RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1));
    show("unregister wrong len", sys_rseq(r, REG_LEN + 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG));
    long u = sys_rseq(r, REG_LEN, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    printf("unregister: %ld, cpu_id now %d\n", u, (int)r->cpu_id);
    show("short len", sys_rseq(&own, 16, 0, RSEQ_SIG));
    show("misaligned", sys_rseq((char *)&own + 8, 32, 0, RSEQ_SIG));
    show("bad flags", sys_rseq(&own, 32, 2, RSEQ_SIG));
    long o = sys_rseq(&own, 32, 0, RSEQ_SIG);
    printf("own area: %ld, cpu_id valid: %s\n", o, (int)own.cpu_id >= 0 ? "yes" : "no");

    /* A signal while the thread spins in its critical section aborts it. */
    signal(SIGUSR1, on_usr1);
    spinner = pthread_self();
    pthread_t k;
    pthread_create(&k, NULL, kicker, NULL);
    int aborted = cs_spin(&flag, &own.rseq_cs);
    pthread_join(k, NULL);
    printf("signal in critical section: %s, rseq_cs cleared: %s\n",
           aborted ? "aborted" : "committed", own.rseq_cs == 0 ? "yes" : "no");

    return 0;
}
