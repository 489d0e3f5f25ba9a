//! The systrap stub program, a one-page static ELF generated here, and the zygote
//! process every stub is forked from.
//!
//! The machine code is hand-assembled (the source is `stub.S` next to this file,
//! kept for review; `asm.py` there prints the bytes below, one instruction a line).
//! It holds four pieces:
//! - the *zygote* start-up and loop: unmap everything but the code page, map a
//!   scratch page, set `PR_SET_NO_NEW_PRIVS`, set SIGCHLD to `SIG_DFL` (no
//!   auto-reaping), then forever `recvmsg` from the sentry either a (command memfd,
//!   control socket) pair, and `fork`, or a pid without fds, and reap that child;
//! - the new stub process's set-up: die with the zygote, take the control socket as
//!   fd 0 and the command memfd as fd 1 (its first page mapped read-only at
//!   [`CMD`], its second writable at [`SYSRW`]), block every signal on this thread,
//!   install the handler for every signal and the base seccomp filter;
//! - the *syscall thread*: the process's first thread, which never runs application
//!   code. It waits on the command page's sequence word (spin, then futex), runs the
//!   system call written there and reports the result through the kernel, as the
//!   file offset of its command memfd (which only its own fd table holds). A `clone`
//!   command makes an application thread (`thread_start`: no fds, its alternate
//!   stack in its region, the stricter application filter, signals unblocked, then
//!   a `ud2` whose SIGILL reports it ready) or a fork (a copy of the syscall thread
//!   alone, which takes its own command memfd and socket, unmaps the parent's
//!   regions, maps its first thread's region and reports in; the parent closes its
//!   copies of those fds at once);
//! - the *signal handler* of application threads: it runs on the alternate stack
//!   inside the thread's shared region, so the kernel's signal frame (registers, FP
//!   state, siginfo) already lies in memory the sentry sees. It records the frame's
//!   pointers, flips the state word, and waits (spin, then futex; no spin when it
//!   just had to wake the sentry, nor once the sentry sets the no-spin word) until
//!   the sentry says "resume" (return through `rt_sigreturn`) or "run this system
//!   call" for the thread itself (`arch_prctl` of its thread pointer, `exit`: all
//!   the application filter lets an application thread make from the code page).
//!
//! Reused from the ptrace backend: the sealed-memfd image and the fork + `execveat`
//! start of a process from it.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::errno::SysResult;
use crate::platform::stub_process::{self, ChildExec};
use crate::platform::PAGE_SIZE;

use super::sys::last_errno;

/// Where the stub's code page lives (as in the ptrace backend: far below the top of
/// the user half, so exec's fixed mapping never meets the initial stack).
pub(super) const STUB_BASE: u64 = 0x7fff_fe00_0000;
#[cfg(test)]
/// The zygote's scratch page (msghdr of its `recvmsg`); children unmap it.
const ZSCRATCH: u64 = STUB_BASE + PAGE_SIZE;
/// The command page: the first page of a stub process's command memfd, mapped
/// read-only in the stub (the sentry writes it through its own mapping), so no
/// application thread can change a command. (The code has it as an immediate.)
#[cfg(test)]
pub(super) const CMD: u64 = STUB_BASE + 2 * PAGE_SIZE;
/// The syscall thread's writable page (the command memfd's second page): its
/// progress and sleeping words and the scratch of `recvmsg` commands. Application
/// threads can write it too; the sentry trusts nothing it reads there.
pub(super) const SYSRW: u64 = STUB_BASE + 3 * PAGE_SIZE;
/// Size of a command memfd: the command page and the writable page.
pub(super) const CMD_SIZE: u64 = 2 * PAGE_SIZE;
/// Where each stub maps the shared region of its application thread in slot 0; the
/// region of slot `i` lies at `REGION + i * REGION_SIZE`.
pub(super) const REGION: u64 = STUB_BASE + 0x1_0000;
/// Size of a shared region; it is aligned to its size, which is how the signal
/// handler finds its thread's region from its stack pointer.
pub(super) const REGION_SIZE: u64 = 0x1_0000;
/// How many thread slots (regions) fit below the top of the user address space: at
/// most this many threads per application process.
pub(super) const MAX_SLOTS: usize = ((USER_TOP - REGION) / REGION_SIZE) as usize;
/// One past the platform's reserved region (the code has `STUB_END - REGION` as an
/// immediate: a fork's child unmaps every slot).
#[cfg(test)]
pub(super) const STUB_END: u64 = REGION + MAX_SLOTS as u64 * REGION_SIZE;
/// One past the highest user address on x86-64 with 4-level paging.
const USER_TOP: u64 = abi::mem::TASK_SIZE;

// Layout of the command page (offsets; the stub reads it, only the sentry writes).
/// u32: the sequence number of the current command (the syscall thread's futex word).
pub(super) const C_SEQ: usize = 0;
/// u32: how many calls the current command holds (1 to [`C_MAX_CALLS`]).
pub(super) const C_COUNT: usize = 4;
/// u64: system call number of the command's first call, then its six arguments,
/// then (at [`C_EXPECT`]) the result it must have for the next call to run (0: any
/// non-error). Call `i` of a batch lies at `C_NR + i * C_STRIDE`.
pub(super) const C_NR: usize = 8;
/// Offset of a call's expected result from its number.
pub(super) const C_EXPECT: usize = 56;
/// Distance between the calls of a batch (they interleave with the fixed fields
/// below; the syscall thread finds a call's index from its offset, `>> 9`).
pub(super) const C_STRIDE: usize = 512;
/// The most calls one command may hold.
pub(super) const C_MAX_CALLS: usize = 4;
/// u64: the stub's fd number of its command memfd (whose file offset carries results).
pub(super) const C_CMDFD: usize = 72;
/// u64: for a fork command, the fd numbers (in the forking process) of the child's
/// control socket, command memfd and first application thread's region (slot 0);
/// the forking syscall thread closes its copies right after the fork.
pub(super) const C_CHILD_CTL: usize = 80;
pub(super) const C_CHILD_CMD: usize = 88;
pub(super) const C_CHILD_REGION: usize = 96;
/// `stack_t` a new application thread installs as its alternate signal stack.
pub(super) const C_ALTSTACK: usize = 104;
/// u64 zero: the empty signal mask of a new application thread.
const C_ZERO: usize = 128;
/// u64 all ones: the syscall thread's signal mask.
const C_ONES: usize = 136;
/// The kernel `struct sigaction` for every handler.
const C_SIGACTION: usize = 160;

// Layout of the syscall thread's writable page (offsets).
/// u32: the sequence number of the last command done (a hint: results come from the
/// kernel).
pub(super) const R_DONE: usize = 0;
/// u32: non-zero while the syscall thread sleeps on [`C_SEQ`].
pub(super) const R_STUB_SLEEPING: usize = 4;
/// u32: non-zero while the sentry sleeps on [`R_DONE`].
pub(super) const R_SENTRY_SLEEPING: usize = 8;
/// Scratch space for `recvmsg` commands (msghdr, iovec, data, cmsg buffer).
pub(super) const R_SCRATCH: usize = 64;

/// What the syscall thread adds to a result to make it a file offset (which cannot
/// be negative): errors become 1..4095, success values 4096 and up. The offset's
/// bits 0-47 hold the biased result, bits 48-59 the command's sequence number
/// (its low 12 bits) and bits 60-61 the index of the batch's last call that ran.
pub(super) const RESULT_BIAS: u64 = 4096;
/// Bits of the reported offset that carry the biased result.
pub(super) const RESULT_MASK: u64 = (1 << 48) - 1;

// Layout of an application thread's shared region (offsets). The first page is the
// header, the rest is the alternate signal stack.
/// u32: who holds the thread (see the `STATE_*` values).
pub(super) const OFF_STATE: usize = 0;
/// u32: non-zero while the sentry sleeps on the state futex.
pub(super) const OFF_SENTRY_SLEEPING: usize = 4;
/// u32: non-zero while the stub sleeps on the state futex.
pub(super) const OFF_STUB_SLEEPING: usize = 8;
/// u32: non-zero while the sentry's answer will not come soon (the task waits for
/// an event): the handler stops spinning and sleeps on the futex at once, leaving the
/// CPU to whoever will produce that event. Set or cleared with each hand-over: set
/// while the handler's recent spins ended asleep anyway (adaptive spinning).
pub(super) const OFF_STUB_NOSPIN: usize = 12;
/// u64: the signal number the handler got.
pub(super) const OFF_SIGNO: usize = 16;
/// u64: the handler's `siginfo_t *` (a stub address inside the region).
pub(super) const OFF_SIGINFO: usize = 24;
/// u64: the handler's `ucontext_t *` (a stub address inside the region).
pub(super) const OFF_UCONTEXT: usize = 32;
/// u32: the thread's id, set by the kernel at clone (`CLONE_CHILD_SETTID`) and
/// cleared, with a futex wake, when the thread exits (`CLONE_CHILD_CLEARTID`).
pub(super) const OFF_TID: usize = 56;
/// u64: system call number of a thread's own request, then its six arguments.
pub(super) const OFF_REQ_NR: usize = 64;
/// u64: the result of a thread's own request.
pub(super) const OFF_REQ_RESULT: usize = 120;
/// 16 random bytes the sentry writes into a fresh region before a new thread maps
/// it: reading them back through the tid the kernel reported for that thread shows
/// the number names a thread that maps this region.
pub(super) const OFF_NONCE: usize = 2048;
/// Length of the nonce at [`OFF_NONCE`].
pub(super) const NONCE_LEN: usize = 16;
/// Start of the alternate signal stack.
pub(super) const OFF_ALTSTACK_BASE: usize = 4096;

/// u64: the region's own stub address (set by the thread at start-up; its gs base
/// points here, which is how the trampoline finds its region). (The code has it as
/// an immediate.)
#[cfg(test)]
pub(super) const T_SELF: usize = 40;
/// u64: how many times the trampoline was entered on this region.
pub(super) const T_SEQ: usize = 48;
/// The trampoline's register save area: 18 u64 in `sigcontext` order (r8 .. r15,
/// rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags); the sentry writes the
/// result into the rax slot.
pub(super) const T_REGS: usize = 0xa00;
/// The trampoline parked with its registers in [`T_REGS`]: the sentry's turn.
pub(super) const STATE_FAST: u32 = 4;
/// The sentry tells a thread parked in the trampoline to return to the application
/// with the result in the rax slot (any other state: trap for a full frame).
pub(super) const STATE_FAST_RESUME: u32 = 5;
/// The sentry tells a thread parked in the trampoline to trap, for a full frame.
pub(super) const STATE_FAST_TRAP: u32 = 6;
/// The thread is parked in its handler: the sentry's turn.
pub(super) const STATE_PARKED: u32 = 1;
/// The sentry tells the thread to return to the application.
pub(super) const STATE_RESUME: u32 = 2;
/// The sentry asks the thread to run the system call in its request slots (for the
/// thread itself: `arch_prctl`, `exit`).
pub(super) const STATE_REQUEST: u32 = 3;

/// `clone` flags of a new application thread: a thread of the same process whose
/// region word [`OFF_TID`] tells the sentry when it has exited. Not `CLONE_FILES`:
/// it gets a copy of the syscall thread's fd table, which it closes before it runs
/// any application code.
pub(super) const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;
/// `clone` flags of a fork: a sibling (child of the zygote, which reaps it when the
/// sentry says so, and whose death kills it) with a copy-on-write copy of the
/// address space, made by the syscall thread, so it starts as a copy of that thread
/// alone.
pub(super) const FORK_FLAGS: u64 = (libc::CLONE_PARENT | libc::SIGCHLD) as u64;

/// Offset of the code in the image (right after the ELF and program headers).
const CODE_OFF: u64 = stub_process::ELF_HEADERS_SIZE;
/// Offsets inside [`CODE`] of the labels the sentry needs.
const CODE_READY: u64 = 0x6cc;
const CODE_HANDLER: u64 = 0x6d8;
/// The immediates of the handler's and the syscall thread's spin counts.
const CODE_SPIN_IMM: usize = 0x712;
const CODE_SYS_SPIN_IMM: usize = 0x3e1;
const CODE_RESTORER: u64 = 0x780;
/// Right after the syscall thread's command `syscall`: the only place a `clone` may
/// come from (the seccomp filter checks the exact address).
const CODE_SYS_RET: u64 = 0x447;
/// Right after the forked child's `prctl(PR_SET_PDEATHSIG)`: the only place a
/// `prctl` may come from.
const CODE_PRCTL_RET: u64 = 0x4e0;
/// Right after the forked child's `clone` of its first application thread: the
/// other place a `clone` (of a thread) may come from.
const CODE_SELF_CLONE_RET: u64 = 0x60b;
/// The handler's request path (loads a call and its arguments from `[rbx+64..]`).
#[cfg(test)]
const CODE_REQUEST: u64 = 0x758;
/// The syscall thread's command path (loads a call from the command page).
#[cfg(test)]
const CODE_SYS_CMD: u64 = 0x415;
/// The patched-syscall trampoline (see `stub.S`): its entry, the instruction after
/// which rsp is the region's stack, the one that first overwrites rcx, the first
/// one after rax was overwritten, the commit (`xchg`), the trap it takes when the
/// sentry wants a full signal frame, and its end.
const CODE_TRAMP: u64 = 0x788;
const CODE_TRAMP_LEA: u64 = 0x798;
const CODE_TRAMP_RCX: u64 = 0x809;
const CODE_TRAMP_RAX: u64 = 0x81f;
const CODE_TRAMP_COMMIT: u64 = 0x82c;
#[cfg(test)]
const CODE_TRAMP_TRAP: u64 = 0x903;
const CODE_TRAMP_END: u64 = 0x905;
/// The trampoline's futex wait (`syscall`): application code may jump there too.
#[cfg(test)]
const CODE_TRAMP_SLEEP_SYSCALL: u64 = 0x880;
/// The immediate of the trampoline's spin count.
const CODE_TRAMP_SPIN_IMM: usize = 0x84f;
/// Image offsets of the read-only data the code points at.
const ACT_CHLD_OFF: u64 = 0xa00;
const FPROG_OFF: u64 = 0xa20;
const FPROG2_OFF: u64 = 0xa30;
const FILTER_OFF: u64 = 0xa40;
/// Where the application threads' filter starts (the base filter ends before it).
const FILTER2_OFF: u64 = 0xc00;

/// Addresses of the command `syscall` and the forked child's `prctl` instruction.
#[cfg(test)]
pub(super) const CLONE_SITE: u64 = STUB_BASE + CODE_OFF + CODE_SYS_RET - 2;
#[cfg(test)]
pub(super) const PRCTL_SITE: u64 = STUB_BASE + CODE_OFF + CODE_PRCTL_RET - 2;
/// Address of the forked child's own `clone` instruction.
#[cfg(test)]
pub(super) const SELF_CLONE_SITE: u64 = STUB_BASE + CODE_OFF + CODE_SELF_CLONE_RET - 2;
/// Address of the restorer's `syscall` instruction: any call allowed from the code
/// page can be made there by application code that jumps to it.
#[cfg(test)]
pub(super) const RESTORER_SYSCALL: u64 = RESTORER + 5;
/// Address of the handler's request path.
#[cfg(test)]
pub(super) const REQUEST: u64 = STUB_BASE + CODE_OFF + CODE_REQUEST;
/// Address of the syscall thread's command path.
#[cfg(test)]
pub(super) const SYS_CMD: u64 = STUB_BASE + CODE_OFF + CODE_SYS_CMD;
/// Address of the `ud2` that reports a new application thread ready.
pub(super) const READY_RIP: u64 = STUB_BASE + CODE_OFF + CODE_READY;
/// Address of the trampoline's futex `syscall`.
#[cfg(test)]
pub(super) const TRAMP_SYSCALL: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP_SLEEP_SYSCALL;
/// Stub addresses of the trampoline's points (see [`CODE_TRAMP`]).
pub(super) const TRAMP: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP;
pub(super) const TRAMP_LEA: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP_LEA;
pub(super) const TRAMP_RCX: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP_RCX;
pub(super) const TRAMP_RAX: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP_RAX;
pub(super) const TRAMP_COMMIT: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP_COMMIT;
pub(super) const TRAMP_END: u64 = STUB_BASE + CODE_OFF + CODE_TRAMP_END;
/// The signal handler.
const HANDLER: u64 = STUB_BASE + CODE_OFF + CODE_HANDLER;
/// The signal restorer (`rt_sigreturn`).
const RESTORER: u64 = STUB_BASE + CODE_OFF + CODE_RESTORER;

/// How many `pause` iterations the handler spins on the state word before it sleeps
/// on the futex (a `pause` takes ~80 ns on this machine class: ~40 us).
const STUB_SPIN: u32 = 500;
/// How many the syscall thread spins on its command word after a command: none to
/// speak of, since it usually shares the CPU of the sentry thread that will send
/// the next command (see `syscaller`).
const SYS_SPIN: u32 = 1;

#[rustfmt::skip]
const CODE: &[u8] = &[
    // _start (+0x0):
    0x41, 0xbc, 0x01, 0x00, 0x00, 0x00, // mov r12d,0x1
    0xb8, 0x0b, 0x00, 0x00, 0x00, // mov eax,0xb
    0x31, 0xff, // xor edi,edi
    0x48, 0xbe, 0x00, 0x00, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rsi,0x7ffffe000000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x9a, 0x01, 0x00, 0x00, // jae 1bf
    0x41, 0xbc, 0x02, 0x00, 0x00, 0x00, // mov r12d,0x2
    0xb8, 0x0b, 0x00, 0x00, 0x00, // mov eax,0xb
    0x48, 0xbf, 0x00, 0x10, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe001000
    0x48, 0xbe, 0x00, 0xe0, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, // movabs rsi,0x1ffe000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x6d, 0x01, 0x00, 0x00, // jae 1bf
    0x41, 0xbc, 0x03, 0x00, 0x00, 0x00, // mov r12d,0x3
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0xbf, 0x00, 0x10, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe001000
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0xba, 0x03, 0x00, 0x00, 0x00, // mov edx,0x3
    0x41, 0xba, 0x32, 0x00, 0x00, 0x00, // mov r10d,0x32
    0x49, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, // mov r8,0xffffffffffffffff
    0x45, 0x31, 0xc9, // xor r9d,r9d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x30, 0x01, 0x00, 0x00, // jae 1bf
    0x41, 0xbc, 0x04, 0x00, 0x00, 0x00, // mov r12d,0x4
    0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax,0x9d
    0xbf, 0x26, 0x00, 0x00, 0x00, // mov edi,0x26
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0x31, 0xd2, // xor edx,edx
    0x45, 0x31, 0xd2, // xor r10d,r10d
    0x45, 0x31, 0xc0, // xor r8d,r8d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x05, 0x01, 0x00, 0x00, // jae 1bf
    0x41, 0xbc, 0x05, 0x00, 0x00, 0x00, // mov r12d,0x5
    0xb8, 0x0d, 0x00, 0x00, 0x00, // mov eax,0xd
    0xbf, 0x11, 0x00, 0x00, 0x00, // mov edi,0x11
    0x48, 0xbe, 0x00, 0x0a, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rsi,0x7ffffe000a00
    0x31, 0xd2, // xor edx,edx
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d,0x8
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0xd5, 0x00, 0x00, 0x00, // jae 1bf
    0x48, 0xbb, 0x00, 0x10, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rbx,0x7ffffe001000
    // zloop (+0xf4):
    0x48, 0x8d, 0x43, 0x40, // lea rax,[rbx+0x40]
    0x48, 0x89, 0x43, 0x10, // mov QWORD PTR [rbx+0x10],rax
    0x48, 0xc7, 0x43, 0x18, 0x01, 0x00, 0x00, 0x00, // mov QWORD PTR [rbx+0x18],0x1
    0x48, 0x8d, 0x83, 0xc0, 0x00, 0x00, 0x00, // lea rax,[rbx+0xc0]
    0x48, 0x89, 0x43, 0x20, // mov QWORD PTR [rbx+0x20],rax
    0x48, 0xc7, 0x43, 0x28, 0x18, 0x00, 0x00, 0x00, // mov QWORD PTR [rbx+0x28],0x18
    0x48, 0xc7, 0x43, 0x30, 0x00, 0x00, 0x00, 0x00, // mov QWORD PTR [rbx+0x30],0x0
    0x48, 0x8d, 0x83, 0x80, 0x00, 0x00, 0x00, // lea rax,[rbx+0x80]
    0x48, 0x89, 0x43, 0x40, // mov QWORD PTR [rbx+0x40],rax
    0x48, 0xc7, 0x43, 0x48, 0x08, 0x00, 0x00, 0x00, // mov QWORD PTR [rbx+0x48],0x8
    0x48, 0xc7, 0x83, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // mov QWORD PTR [rbx+0xc0],0x0
    0xb8, 0x2f, 0x00, 0x00, 0x00, // mov eax,0x2f
    0x31, 0xff, // xor edi,edi
    0x48, 0x89, 0xde, // mov rsi,rbx
    0xba, 0x00, 0x00, 0x00, 0x40, // mov edx,0x40000000
    0x0f, 0x05, // syscall
    0x48, 0x85, 0xc0, // test rax,rax
    0x7e, 0x69, // jle 1bc
    0x48, 0x83, 0xbb, 0xc0, 0x00, 0x00, 0x00, 0x18, // cmp QWORD PTR [rbx+0xc0],0x18
    0x74, 0x2c, // je 189
    0x48, 0x83, 0xbb, 0xc0, 0x00, 0x00, 0x00, 0x00, // cmp QWORD PTR [rbx+0xc0],0x0
    0x75, 0x8d, // jne f4
    0x48, 0x83, 0xf8, 0x08, // cmp rax,0x8
    0x75, 0x87, // jne f4
    0xb8, 0x3d, 0x00, 0x00, 0x00, // mov eax,0x3d
    0x8b, 0xbb, 0x80, 0x00, 0x00, 0x00, // mov edi,DWORD PTR [rbx+0x80]
    0x31, 0xf6, // xor esi,esi
    0xba, 0x00, 0x00, 0x00, 0x40, // mov edx,0x40000000
    0x45, 0x31, 0xd2, // xor r10d,r10d
    0x0f, 0x05, // syscall
    0xe9, 0x6b, 0xff, 0xff, 0xff, // jmp f4
    // zspawn (+0x189):
    0x44, 0x8b, 0xb3, 0xd0, 0x00, 0x00, 0x00, // mov r14d,DWORD PTR [rbx+0xd0]
    0x44, 0x8b, 0xbb, 0xd4, 0x00, 0x00, 0x00, // mov r15d,DWORD PTR [rbx+0xd4]
    0xb8, 0x39, 0x00, 0x00, 0x00, // mov eax,0x39
    0x0f, 0x05, // syscall
    0x48, 0x85, 0xc0, // test rax,rax
    0x74, 0x27, // je 1ca
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x44, 0x89, 0xf7, // mov edi,r14d
    0x0f, 0x05, // syscall
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x44, 0x89, 0xff, // mov edi,r15d
    0x0f, 0x05, // syscall
    0xe9, 0x38, 0xff, 0xff, 0xff, // jmp f4
    // zexit (+0x1bc):
    0x45, 0x31, 0xe4, // xor r12d,r12d
    // fail (+0x1bf):
    0x44, 0x89, 0xe7, // mov edi,r12d
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax,0xe7
    0x0f, 0x05, // syscall
    0xf4, // hlt
    // child (+0x1ca):
    0x41, 0xbc, 0x0b, 0x00, 0x00, 0x00, // mov r12d,0xb
    0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax,0x9d
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0xbe, 0x09, 0x00, 0x00, 0x00, // mov esi,0x9
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0xd6, // jae 1bf
    0x41, 0xbc, 0x0c, 0x00, 0x00, 0x00, // mov r12d,0xc
    0xb8, 0x21, 0x00, 0x00, 0x00, // mov eax,0x21
    0x44, 0x89, 0xff, // mov edi,r15d
    0x31, 0xf6, // xor esi,esi
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0xbc, // jae 1bf
    0x41, 0xbc, 0x0d, 0x00, 0x00, 0x00, // mov r12d,0xd
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0xbf, 0x00, 0x20, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe002000
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xf0, // mov r8d,r14d
    0x45, 0x31, 0xc9, // xor r9d,r9d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x87, // jae 1bf
    0x41, 0xbc, 0x0e, 0x00, 0x00, 0x00, // mov r12d,0xe
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0xbf, 0x00, 0x30, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe003000
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0xba, 0x03, 0x00, 0x00, 0x00, // mov edx,0x3
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xf0, // mov r8d,r14d
    0x41, 0xb9, 0x00, 0x10, 0x00, 0x00, // mov r9d,0x1000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x4b, 0xff, 0xff, 0xff, // jae 1bf
    0x41, 0xbc, 0x0f, 0x00, 0x00, 0x00, // mov r12d,0xf
    0xb8, 0x21, 0x00, 0x00, 0x00, // mov eax,0x21
    0x44, 0x89, 0xf7, // mov edi,r14d
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x2a, 0xff, 0xff, 0xff, // jae 1bf
    0x41, 0xbc, 0x10, 0x00, 0x00, 0x00, // mov r12d,0x10
    0xb8, 0xb4, 0x01, 0x00, 0x00, // mov eax,0x1b4
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0xbe, 0xff, 0xff, 0xff, 0xff, // mov esi,0xffffffff
    0x31, 0xd2, // xor edx,edx
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x05, 0xff, 0xff, 0xff, // jae 1bf
    0x41, 0xbc, 0x11, 0x00, 0x00, 0x00, // mov r12d,0x11
    0xb8, 0x0b, 0x00, 0x00, 0x00, // mov eax,0xb
    0x48, 0xbf, 0x00, 0x10, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe001000
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0xdd, 0xfe, 0xff, 0xff, // jae 1bf
    0x48, 0xbb, 0x00, 0x20, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rbx,0x7ffffe002000
    0x48, 0xbd, 0x00, 0x30, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rbp,0x7ffffe003000
    0x41, 0xbc, 0x12, 0x00, 0x00, 0x00, // mov r12d,0x12
    0xb8, 0x0e, 0x00, 0x00, 0x00, // mov eax,0xe
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0x48, 0x8d, 0xb3, 0x88, 0x00, 0x00, 0x00, // lea rsi,[rbx+0x88]
    0x31, 0xd2, // xor edx,edx
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d,0x8
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x9c, 0xfe, 0xff, 0xff, // jae 1bf
    0x41, 0xbd, 0x01, 0x00, 0x00, 0x00, // mov r13d,0x1
    // sigloop (+0x329):
    0xb8, 0x0d, 0x00, 0x00, 0x00, // mov eax,0xd
    0x44, 0x89, 0xef, // mov edi,r13d
    0x48, 0x8d, 0xb3, 0xa0, 0x00, 0x00, 0x00, // lea rsi,[rbx+0xa0]
    0x31, 0xd2, // xor edx,edx
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d,0x8
    0x0f, 0x05, // syscall
    0x41, 0xff, 0xc5, // inc r13d
    0x41, 0x83, 0xfd, 0x41, // cmp r13d,0x41
    0x75, 0xde, // jne 329
    0x41, 0xbc, 0x13, 0x00, 0x00, 0x00, // mov r12d,0x13
    0xb8, 0x3d, 0x01, 0x00, 0x00, // mov eax,0x13d
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0x31, 0xf6, // xor esi,esi
    0x48, 0xba, 0x20, 0x0a, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdx,0x7ffffe000a20
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x4a, 0xfe, 0xff, 0xff, // jae 1bf
    // sys_start (+0x375):
    0xb8, 0x27, 0x00, 0x00, 0x00, // mov eax,0x27
    0x0f, 0x05, // syscall
    0x44, 0x8b, 0x2b, // mov r13d,DWORD PTR [rbx]
    0x4c, 0x8d, 0x73, 0x08, // lea r14,[rbx+0x8]
    // report (+0x383):
    0x48, 0x8d, 0xb0, 0x00, 0x10, 0x00, 0x00, // lea rsi,[rax+0x1000]
    0x48, 0xc1, 0xe6, 0x10, // shl rsi,0x10
    0x48, 0xc1, 0xee, 0x10, // shr rsi,0x10
    0x4c, 0x89, 0xf2, // mov rdx,r14
    0x48, 0x29, 0xda, // sub rdx,rbx
    0xc1, 0xea, 0x09, // shr edx,0x9
    0x83, 0xe2, 0x03, // and edx,0x3
    0xc1, 0xe2, 0x0c, // shl edx,0xc
    0x44, 0x89, 0xe9, // mov ecx,r13d
    0x81, 0xe1, 0xff, 0x0f, 0x00, 0x00, // and ecx,0xfff
    0x09, 0xca, // or edx,ecx
    0x48, 0xc1, 0xe2, 0x30, // shl rdx,0x30
    0x48, 0x09, 0xd6, // or rsi,rdx
    0x8b, 0x7b, 0x48, // mov edi,DWORD PTR [rbx+0x48]
    0x31, 0xd2, // xor edx,edx
    0xb8, 0x08, 0x00, 0x00, 0x00, // mov eax,0x8
    0x0f, 0x05, // syscall
    0x44, 0x89, 0xe8, // mov eax,r13d
    0x87, 0x45, 0x00, // xchg DWORD PTR [rbp+0x0],eax
    0x83, 0x7d, 0x08, 0x00, // cmp DWORD PTR [rbp+0x8],0x0
    0x74, 0x15, // je 3e0
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x8d, 0x7d, 0x00, // lea rdi,[rbp+0x0]
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x0f, 0x05, // syscall
    // sys_wait (+0x3e0):
    0xb9, 0x78, 0x56, 0x34, 0x12, // mov ecx,0x12345678
    // sys_spin (+0x3e5):
    0x8b, 0x03, // mov eax,DWORD PTR [rbx]
    0x44, 0x39, 0xe8, // cmp eax,r13d
    0x75, 0x29, // jne 415
    0xf3, 0x90, // pause
    0xff, 0xc9, // dec ecx
    0x75, 0xf3, // jne 3e5
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x87, 0x45, 0x04, // xchg DWORD PTR [rbp+0x4],eax
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0x31, 0xf6, // xor esi,esi
    0x44, 0x89, 0xea, // mov edx,r13d
    0x45, 0x31, 0xd2, // xor r10d,r10d
    0x0f, 0x05, // syscall
    0xc7, 0x45, 0x04, 0x00, 0x00, 0x00, 0x00, // mov DWORD PTR [rbp+0x4],0x0
    0xeb, 0xcb, // jmp 3e0
    // sys_cmd (+0x415):
    0x41, 0x89, 0xc5, // mov r13d,eax
    0x4c, 0x8d, 0x73, 0x08, // lea r14,[rbx+0x8]
    0x44, 0x8b, 0x7b, 0x04, // mov r15d,DWORD PTR [rbx+0x4]
    0x41, 0xff, 0xcf, // dec r15d
    0x41, 0x83, 0xe7, 0x03, // and r15d,0x3
    // sys_next (+0x427):
    0x49, 0x8b, 0x06, // mov rax,QWORD PTR [r14]
    0x49, 0x89, 0xc4, // mov r12,rax
    0x49, 0x8b, 0x7e, 0x08, // mov rdi,QWORD PTR [r14+0x8]
    0x49, 0x8b, 0x76, 0x10, // mov rsi,QWORD PTR [r14+0x10]
    0x49, 0x8b, 0x56, 0x18, // mov rdx,QWORD PTR [r14+0x18]
    0x4d, 0x8b, 0x56, 0x20, // mov r10,QWORD PTR [r14+0x20]
    0x4d, 0x8b, 0x46, 0x28, // mov r8,QWORD PTR [r14+0x28]
    0x4d, 0x8b, 0x4e, 0x30, // mov r9,QWORD PTR [r14+0x30]
    0x0f, 0x05, // syscall
    // sys_ret (+0x447):
    0x49, 0x83, 0xfc, 0x38, // cmp r12,0x38
    0x74, 0x33, // je 480
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x2a, 0xff, 0xff, 0xff, // jae 383
    0x49, 0x8b, 0x4e, 0x38, // mov rcx,QWORD PTR [r14+0x38]
    0x48, 0x85, 0xc9, // test rcx,rcx
    0x74, 0x09, // je 46b
    0x48, 0x39, 0xc8, // cmp rax,rcx
    0x0f, 0x85, 0x18, 0xff, 0xff, 0xff, // jne 383
    // sys_more (+0x46b):
    0x45, 0x85, 0xff, // test r15d,r15d
    0x0f, 0x84, 0x0f, 0xff, 0xff, 0xff, // je 383
    0x41, 0xff, 0xcf, // dec r15d
    0x49, 0x81, 0xc6, 0x00, 0x02, 0x00, 0x00, // add r14,0x200
    0xeb, 0xa7, // jmp 427
    // sys_clone (+0x480):
    0x48, 0x85, 0xc0, // test rax,rax
    0x74, 0x3e, // je 4c3
    0x0f, 0x88, 0xf8, 0xfe, 0xff, 0xff, // js 383
    0xf7, 0xc7, 0x00, 0x00, 0x01, 0x00, // test edi,0x10000
    0x0f, 0x85, 0xec, 0xfe, 0xff, 0xff, // jne 383
    0x49, 0x89, 0xc7, // mov r15,rax
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x48, 0x8b, 0x7b, 0x58, // mov rdi,QWORD PTR [rbx+0x58]
    0x0f, 0x05, // syscall
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x48, 0x8b, 0x7b, 0x50, // mov rdi,QWORD PTR [rbx+0x50]
    0x0f, 0x05, // syscall
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x48, 0x8b, 0x7b, 0x60, // mov rdi,QWORD PTR [rbx+0x60]
    0x0f, 0x05, // syscall
    0x4c, 0x89, 0xf8, // mov rax,r15
    0xe9, 0xc0, 0xfe, 0xff, 0xff, // jmp 383
    // cloned (+0x4c3):
    0xf7, 0xc7, 0x00, 0x00, 0x01, 0x00, // test edi,0x10000
    0x0f, 0x85, 0x73, 0x01, 0x00, 0x00, // jne 642
    0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax,0x9d
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0xbe, 0x09, 0x00, 0x00, 0x00, // mov esi,0x9
    0x0f, 0x05, // syscall
    // prctl_ret (+0x4e0):
    0x4c, 0x8b, 0x73, 0x58, // mov r14,QWORD PTR [rbx+0x58]
    0x4c, 0x8b, 0x7b, 0x50, // mov r15,QWORD PTR [rbx+0x50]
    0x4c, 0x8b, 0x6b, 0x60, // mov r13,QWORD PTR [rbx+0x60]
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xf0, // mov r8d,r14d
    0x45, 0x31, 0xc9, // xor r9d,r9d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x1d, 0x01, 0x00, 0x00, // jae 635
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0x89, 0xef, // mov rdi,rbp
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0xba, 0x03, 0x00, 0x00, 0x00, // mov edx,0x3
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xf0, // mov r8d,r14d
    0x41, 0xb9, 0x00, 0x10, 0x00, 0x00, // mov r9d,0x1000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0xee, 0x00, 0x00, 0x00, // jae 635
    0xb8, 0x0b, 0x00, 0x00, 0x00, // mov eax,0xb
    0x48, 0xbf, 0x00, 0x00, 0x01, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe010000
    0xbe, 0x00, 0x00, 0xfe, 0x01, // mov esi,0x1fe0000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0xcc, 0x00, 0x00, 0x00, // jae 635
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0xbf, 0x00, 0x00, 0x01, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe010000
    0xbe, 0x00, 0x00, 0x01, 0x00, // mov esi,0x10000
    0xba, 0x03, 0x00, 0x00, 0x00, // mov edx,0x3
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xe8, // mov r8d,r13d
    0x45, 0x31, 0xc9, // xor r9d,r9d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x99, 0x00, 0x00, 0x00, // jae 635
    0xb8, 0x21, 0x00, 0x00, 0x00, // mov eax,0x21
    0x44, 0x89, 0xff, // mov edi,r15d
    0x31, 0xf6, // xor esi,esi
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x81, 0x00, 0x00, 0x00, // jae 635
    0xb8, 0x21, 0x00, 0x00, 0x00, // mov eax,0x21
    0x44, 0x89, 0xf7, // mov edi,r14d
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x6a, // jae 635
    0xb8, 0xb4, 0x01, 0x00, 0x00, // mov eax,0x1b4
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0xbe, 0xff, 0xff, 0xff, 0xff, // mov esi,0xffffffff
    0x31, 0xd2, // xor edx,edx
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x4f, // jae 635
    0xb8, 0x38, 0x00, 0x00, 0x00, // mov eax,0x38
    0xbf, 0x00, 0x0b, 0x25, 0x01, // mov edi,0x1250b00
    0x48, 0xbe, 0x00, 0x10, 0x01, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rsi,0x7ffffe011000
    0x31, 0xd2, // xor edx,edx
    0x49, 0xba, 0x38, 0x00, 0x01, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs r10,0x7ffffe010038
    0x45, 0x31, 0xc0, // xor r8d,r8d
    0x0f, 0x05, // syscall
    // self_clone_ret (+0x60b):
    0x48, 0x85, 0xc0, // test rax,rax
    0x74, 0x32, // je 642
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x1d, // jae 635
    0x49, 0x89, 0xc6, // mov r14,rax
    0xb8, 0x27, 0x00, 0x00, 0x00, // mov eax,0x27
    0x0f, 0x05, // syscall
    0x49, 0xc1, 0xe6, 0x18, // shl r14,0x18
    0x4c, 0x09, 0xf0, // or rax,r14
    0x44, 0x8b, 0x2b, // mov r13d,DWORD PTR [rbx]
    0x4c, 0x8d, 0x73, 0x08, // lea r14,[rbx+0x8]
    0xe9, 0x4e, 0xfd, 0xff, 0xff, // jmp 383
    // fork_fail (+0x635):
    0xbf, 0x11, 0x00, 0x00, 0x00, // mov edi,0x11
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax,0xe7
    0x0f, 0x05, // syscall
    0xf4, // hlt
    // thread_start (+0x642):
    0xb8, 0xb4, 0x01, 0x00, 0x00, // mov eax,0x1b4
    0x31, 0xff, // xor edi,edi
    0xbe, 0xff, 0xff, 0xff, 0xff, // mov esi,0xffffffff
    0x31, 0xd2, // xor edx,edx
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x74, // jae 6ce
    0xb8, 0x83, 0x00, 0x00, 0x00, // mov eax,0x83
    0x48, 0x8d, 0x7b, 0x68, // lea rdi,[rbx+0x68]
    0x31, 0xf6, // xor esi,esi
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x5f, // jae 6ce
    0x48, 0x89, 0xe6, // mov rsi,rsp
    0x48, 0x81, 0xe6, 0x00, 0x00, 0xff, 0xff, // and rsi,0xffffffffffff0000
    0x48, 0x89, 0x76, 0x28, // mov QWORD PTR [rsi+0x28],rsi
    0xbf, 0x01, 0x10, 0x00, 0x00, // mov edi,0x1001
    0xb8, 0x9e, 0x00, 0x00, 0x00, // mov eax,0x9e
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x3d, // jae 6ce
    0xb8, 0x3d, 0x01, 0x00, 0x00, // mov eax,0x13d
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0x31, 0xf6, // xor esi,esi
    0x48, 0xba, 0x30, 0x0a, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdx,0x7ffffe000a30
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x1d, // jae 6ce
    0xb8, 0x0e, 0x00, 0x00, 0x00, // mov eax,0xe
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0x48, 0x8d, 0xb3, 0x80, 0x00, 0x00, 0x00, // lea rsi,[rbx+0x80]
    0x31, 0xd2, // xor edx,edx
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d,0x8
    0x0f, 0x05, // syscall
    // ready (+0x6cc):
    0x0f, 0x0b, // ud2
    // thread_fail (+0x6ce):
    0x31, 0xff, // xor edi,edi
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax,0x3c
    0x0f, 0x05, // syscall
    0xf4, // hlt
    // handler (+0x6d8):
    0x48, 0x89, 0xe3, // mov rbx,rsp
    0x48, 0x81, 0xe3, 0x00, 0x00, 0xff, 0xff, // and rbx,0xffffffffffff0000
    0x48, 0x89, 0x7b, 0x10, // mov QWORD PTR [rbx+0x10],rdi
    0x48, 0x89, 0x73, 0x18, // mov QWORD PTR [rbx+0x18],rsi
    0x48, 0x89, 0x53, 0x20, // mov QWORD PTR [rbx+0x20],rdx
    // hreport (+0x6ee):
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x87, 0x03, // xchg DWORD PTR [rbx],eax
    0x83, 0x7b, 0x04, 0x00, // cmp DWORD PTR [rbx+0x4],0x0
    0x74, 0x16, // je 711
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x0f, 0x05, // syscall
    0xeb, 0x18, // jmp 729
    // hwait (+0x711):
    0xb9, 0x78, 0x56, 0x34, 0x12, // mov ecx,0x12345678
    // spin (+0x716):
    0x8b, 0x03, // mov eax,DWORD PTR [rbx]
    0x83, 0xf8, 0x01, // cmp eax,0x1
    0x75, 0x31, // jne 74e
    0x83, 0x7b, 0x0c, 0x00, // cmp DWORD PTR [rbx+0xc],0x0
    0x75, 0x06, // jne 729
    0xf3, 0x90, // pause
    0xff, 0xc9, // dec ecx
    0x75, 0xed, // jne 716
    // hsleep (+0x729):
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x87, 0x43, 0x08, // xchg DWORD PTR [rbx+0x8],eax
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0x31, 0xf6, // xor esi,esi
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x45, 0x31, 0xd2, // xor r10d,r10d
    0x0f, 0x05, // syscall
    0xc7, 0x43, 0x08, 0x00, 0x00, 0x00, 0x00, // mov DWORD PTR [rbx+0x8],0x0
    0xeb, 0xc3, // jmp 711
    // got (+0x74e):
    0x83, 0xf8, 0x02, // cmp eax,0x2
    0x74, 0x2c, // je 77f
    0x83, 0xf8, 0x03, // cmp eax,0x3
    0x75, 0x96, // jne 6ee
    // request (+0x758):
    0x48, 0x8b, 0x43, 0x40, // mov rax,QWORD PTR [rbx+0x40]
    0x48, 0x8b, 0x7b, 0x48, // mov rdi,QWORD PTR [rbx+0x48]
    0x48, 0x8b, 0x73, 0x50, // mov rsi,QWORD PTR [rbx+0x50]
    0x48, 0x8b, 0x53, 0x58, // mov rdx,QWORD PTR [rbx+0x58]
    0x4c, 0x8b, 0x53, 0x60, // mov r10,QWORD PTR [rbx+0x60]
    0x4c, 0x8b, 0x43, 0x68, // mov r8,QWORD PTR [rbx+0x68]
    0x4c, 0x8b, 0x4b, 0x70, // mov r9,QWORD PTR [rbx+0x70]
    0x0f, 0x05, // syscall
    0x48, 0x89, 0x43, 0x78, // mov QWORD PTR [rbx+0x78],rax
    0xe9, 0x6f, 0xff, 0xff, 0xff, // jmp 6ee
    // resume (+0x77f):
    0xc3, // ret
    // restorer (+0x780):
    0xb8, 0x0f, 0x00, 0x00, 0x00, // mov eax,0xf
    0x0f, 0x05, // syscall
    0xf4, // hlt
    // tramp (+0x788):
    0x65, 0x4c, 0x8b, 0x1c, 0x25, 0x28, 0x00, 0x00, 0x00, // mov r11,QWORD PTR gs:0x28
    0x49, 0x89, 0xa3, 0x78, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa78],rsp
    // tramp_lea (+0x798):
    0x49, 0x8d, 0xa3, 0x00, 0x0f, 0x00, 0x00, // lea rsp,[r11+0xf00]
    0x9c, // pushf
    0x4d, 0x89, 0x83, 0x00, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa00],r8
    0x4d, 0x89, 0x8b, 0x08, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa08],r9
    0x4d, 0x89, 0x93, 0x10, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa10],r10
    0x4d, 0x89, 0xa3, 0x20, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa20],r12
    0x4d, 0x89, 0xab, 0x28, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa28],r13
    0x4d, 0x89, 0xb3, 0x30, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa30],r14
    0x4d, 0x89, 0xbb, 0x38, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa38],r15
    0x49, 0x89, 0xbb, 0x40, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa40],rdi
    0x49, 0x89, 0xb3, 0x48, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa48],rsi
    0x49, 0x89, 0xab, 0x50, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa50],rbp
    0x49, 0x89, 0x9b, 0x58, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa58],rbx
    0x49, 0x89, 0x93, 0x60, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa60],rdx
    0x49, 0x89, 0x83, 0x68, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa68],rax
    0x49, 0x89, 0x8b, 0x70, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa70],rcx
    0x49, 0x89, 0x8b, 0x80, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa80],rcx
    // tramp_rcx (+0x809):
    0x48, 0x8b, 0x0c, 0x24, // mov rcx,QWORD PTR [rsp]
    0x49, 0x89, 0x8b, 0x88, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa88],rcx
    0x49, 0x89, 0x8b, 0x18, 0x0a, 0x00, 0x00, // mov QWORD PTR [r11+0xa18],rcx
    0x49, 0x8b, 0x43, 0x30, // mov rax,QWORD PTR [r11+0x30]
    // tramp_rax (+0x81f):
    0x48, 0x8d, 0x40, 0x01, // lea rax,[rax+0x1]
    0x49, 0x89, 0x43, 0x30, // mov QWORD PTR [r11+0x30],rax
    0xb8, 0x04, 0x00, 0x00, 0x00, // mov eax,0x4
    // tramp_commit (+0x82c):
    0x41, 0x87, 0x03, // xchg DWORD PTR [r11],eax
    // tramp_post (+0x82f):
    0x4c, 0x89, 0xdb, // mov rbx,r11
    0x83, 0x7b, 0x04, 0x00, // cmp DWORD PTR [rbx+0x4],0x0
    0x74, 0x16, // je 84e
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x0f, 0x05, // syscall
    0xeb, 0x18, // jmp 866
    // twait (+0x84e):
    0xb9, 0x78, 0x56, 0x34, 0x12, // mov ecx,0x12345678
    // tspin (+0x853):
    0x8b, 0x03, // mov eax,DWORD PTR [rbx]
    0x83, 0xf8, 0x04, // cmp eax,0x4
    0x75, 0x31, // jne 88b
    0x83, 0x7b, 0x0c, 0x00, // cmp DWORD PTR [rbx+0xc],0x0
    0x75, 0x06, // jne 866
    0xf3, 0x90, // pause
    0xff, 0xc9, // dec ecx
    0x75, 0xed, // jne 853
    // tsleep (+0x866):
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x87, 0x43, 0x08, // xchg DWORD PTR [rbx+0x8],eax
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0x31, 0xf6, // xor esi,esi
    0xba, 0x04, 0x00, 0x00, 0x00, // mov edx,0x4
    0x45, 0x31, 0xd2, // xor r10d,r10d
    0x0f, 0x05, // syscall
    0xc7, 0x43, 0x08, 0x00, 0x00, 0x00, 0x00, // mov DWORD PTR [rbx+0x8],0x0
    0xeb, 0xc3, // jmp 84e
    // tgot (+0x88b):
    0x83, 0xf8, 0x05, // cmp eax,0x5
    0x75, 0x73, // jne 903
    0x4c, 0x8b, 0x83, 0x00, 0x0a, 0x00, 0x00, // mov r8,QWORD PTR [rbx+0xa00]
    0x4c, 0x8b, 0x8b, 0x08, 0x0a, 0x00, 0x00, // mov r9,QWORD PTR [rbx+0xa08]
    0x4c, 0x8b, 0x93, 0x10, 0x0a, 0x00, 0x00, // mov r10,QWORD PTR [rbx+0xa10]
    0x4c, 0x8b, 0xa3, 0x20, 0x0a, 0x00, 0x00, // mov r12,QWORD PTR [rbx+0xa20]
    0x4c, 0x8b, 0xab, 0x28, 0x0a, 0x00, 0x00, // mov r13,QWORD PTR [rbx+0xa28]
    0x4c, 0x8b, 0xb3, 0x30, 0x0a, 0x00, 0x00, // mov r14,QWORD PTR [rbx+0xa30]
    0x4c, 0x8b, 0xbb, 0x38, 0x0a, 0x00, 0x00, // mov r15,QWORD PTR [rbx+0xa38]
    0x48, 0x8b, 0xbb, 0x40, 0x0a, 0x00, 0x00, // mov rdi,QWORD PTR [rbx+0xa40]
    0x48, 0x8b, 0xb3, 0x48, 0x0a, 0x00, 0x00, // mov rsi,QWORD PTR [rbx+0xa48]
    0x48, 0x8b, 0xab, 0x50, 0x0a, 0x00, 0x00, // mov rbp,QWORD PTR [rbx+0xa50]
    0x48, 0x8b, 0x93, 0x60, 0x0a, 0x00, 0x00, // mov rdx,QWORD PTR [rbx+0xa60]
    0x48, 0x8b, 0x83, 0x68, 0x0a, 0x00, 0x00, // mov rax,QWORD PTR [rbx+0xa68]
    0x9d, // popf
    0x48, 0x8b, 0xa3, 0x78, 0x0a, 0x00, 0x00, // mov rsp,QWORD PTR [rbx+0xa78]
    0x48, 0x8b, 0x8b, 0x80, 0x0a, 0x00, 0x00, // mov rcx,QWORD PTR [rbx+0xa80]
    0x4c, 0x8b, 0x9b, 0x88, 0x0a, 0x00, 0x00, // mov r11,QWORD PTR [rbx+0xa88]
    0x48, 0x8b, 0x9b, 0x58, 0x0a, 0x00, 0x00, // mov rbx,QWORD PTR [rbx+0xa58]
    0xff, 0xe1, // jmp rcx
    // tramp_trap (+0x903):
    0x0f, 0x0b, // ud2
];

/// Host system calls the stub may make from its own code page (everything else, and
/// everything from any other address, raises SIGSYS). This base filter is the only
/// one on the syscall thread, which runs nothing but the sentry's commands; every
/// application thread adds [`APP_SYSCALLS`]' stricter one before its first
/// application instruction. What the syscall thread's commands use (`mmap`,
/// `munmap`, `mprotect`, `mremap`, `recvmsg`, `close`), its wait and report
/// (`futex`, `lseek`), what a fork's child needs to take its own fds and report in
/// (`dup2`, `close_range`, `getpid`), what a new application thread needs to come
/// up (`close_range`, `sigaltstack`, `seccomp`, `rt_sigprocmask`), and the
/// handler's (`futex`, `rt_sigreturn`, `arch_prctl`, `exit`, `exit_group`).
/// `clone` and `prctl` are allowed only from one instruction each, with fixed
/// arguments (see [`filter`]).
const STUB_SYSCALLS: [i64; 18] = [
    libc::SYS_futex,
    libc::SYS_rt_sigreturn,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_recvmsg,
    libc::SYS_close,
    libc::SYS_arch_prctl,
    libc::SYS_exit_group,
    libc::SYS_exit,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_lseek,
    libc::SYS_seccomp,
    libc::SYS_close_range,
    libc::SYS_dup2,
    libc::SYS_getpid,
];

/// What an application thread may call from the stub's code page once it runs
/// application code: the handler's wait and return, its own end, its signal mask
/// (`rt_sigreturn` loads any mask anyway) and, through [`APP_ARCH_PRCTL`], its own
/// thread pointers. None of them edits the address space, touches an fd or makes a
/// thread or process: application code that jumps into the code page can do only
/// this much, to itself, and any other call there kills the stub.
const APP_SYSCALLS: [i64; 6] = [
    libc::SYS_futex,
    libc::SYS_rt_sigreturn,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
];
/// The `arch_prctl` codes an application thread may use from the code page:
/// `ARCH_SET_GS` and `ARCH_SET_FS` (not `ARCH_MAP_VDSO_*`, which would map memory).
const APP_ARCH_PRCTL: [u32; 2] = [0x1001, 0x1002];

/// `AUDIT_ARCH_X86_64`.
pub(super) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// One classic-BPF instruction (`struct sock_filter`).
fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&code.to_le_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..8].copy_from_slice(&k.to_le_bytes());
    b
}

/// Where a filter jump goes (resolved once the program is laid out).
#[derive(Clone, Copy, PartialEq)]
enum To {
    Next,
    Kill,
    Allow,
    /// The "not from the code page" answer: TRAP in the base filter, ALLOW (the
    /// base filter's TRAP decides) in the application filter.
    Outside,
    Clone,
    SelfClone,
    Prctl,
    ArchPrctl,
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const SD_NR: u32 = 0;
const SD_ARCH: u32 = 4;
const SD_IP_LO: u32 = 8;
const SD_IP_HI: u32 = 12;
const SD_ARG0_LO: u32 = 16;
const SD_ARG0_HI: u32 = 20;

type Insn = ([u8; 8], To, To);

fn ld(off: u32) -> Insn {
    (bpf(LD_W_ABS, 0, 0, off), To::Next, To::Next)
}

fn jeq(k: u32, t: To, f: To) -> Insn {
    (bpf(JEQ_K, 0, 0, k), t, f)
}

fn rip(off: u64) -> u32 {
    (STUB_BASE + CODE_OFF + off) as u32
}

/// The common start of both filters: anything but a 64-bit call from the code page
/// goes to `To::Outside`; the accumulator holds the call number afterwards.
fn from_code_page() -> Vec<Insn> {
    vec![
        ld(SD_ARCH),
        jeq(AUDIT_ARCH_X86_64, To::Next, To::Outside),
        ld(SD_IP_HI),
        jeq((STUB_BASE >> 32) as u32, To::Next, To::Outside),
        ld(SD_IP_LO),
        (
            bpf(AND_K, 0, 0, !(PAGE_SIZE as u32 - 1)),
            To::Next,
            To::Next,
        ),
        jeq(STUB_BASE as u32, To::Next, To::Outside),
        ld(SD_NR),
    ]
}

/// Resolves the symbolic jumps of `p`, given where its labels are.
fn link(p: Vec<Insn>, target: impl Fn(To) -> Option<usize>) -> Vec<[u8; 8]> {
    p.iter()
        .enumerate()
        .map(|(i, (ins, t, f))| {
            let mut ins = *ins;
            let off = |to: To| target(to).map_or(0, |at| (at - i - 1) as u8);
            ins[2] = off(*t);
            ins[3] = off(*f);
            ins
        })
        .collect()
}

/// The base filter: a 64-bit system call from the stub's code page whose number is
/// in [`STUB_SYSCALLS`] runs; so does a `clone` from the command instruction with
/// [`THREAD_FLAGS`] or [`FORK_FLAGS`], and a `prctl(PR_SET_PDEATHSIG)` from the
/// forked child's first instruction; any other call from there kills the stub;
/// everything else traps (SIGSYS) to the handler, i.e. to the sentry.
fn filter() -> Vec<[u8; 8]> {
    let mut p = from_code_page();
    p.push(jeq(libc::SYS_clone as u32, To::Clone, To::Next));
    p.push(jeq(libc::SYS_prctl as u32, To::Prctl, To::Next));
    for nr in STUB_SYSCALLS {
        p.push(jeq(nr as u32, To::Allow, To::Next));
    }
    // Not on the list: kill (a jump to the KILL return below).
    p.push(jeq(0, To::Kill, To::Kill));
    let clone_at = p.len();
    p.extend([
        ld(SD_IP_LO),
        jeq(rip(CODE_SYS_RET), To::Next, To::SelfClone),
        ld(SD_ARG0_LO),
        jeq(THREAD_FLAGS as u32, To::Allow, To::Next),
        jeq(FORK_FLAGS as u32, To::Allow, To::Kill),
    ]);
    // The forked child's clone of its first thread: a thread, nothing else.
    let self_clone_at = p.len();
    p.extend([
        jeq(rip(CODE_SELF_CLONE_RET), To::Next, To::Kill),
        ld(SD_ARG0_LO),
        jeq(THREAD_FLAGS as u32, To::Allow, To::Kill),
    ]);
    let prctl_at = p.len();
    p.extend([
        ld(SD_IP_LO),
        jeq(rip(CODE_PRCTL_RET), To::Next, To::Kill),
        ld(SD_ARG0_LO),
        jeq(libc::PR_SET_PDEATHSIG as u32, To::Allow, To::Kill),
    ]);
    let kill_at = p.len();
    p.push((bpf(RET_K, 0, 0, RET_KILL_PROCESS), To::Next, To::Next));
    p.push((bpf(RET_K, 0, 0, RET_ALLOW), To::Next, To::Next));
    p.push((bpf(RET_K, 0, 0, RET_TRAP), To::Next, To::Next));
    link(p, |t| match t {
        To::Next => None,
        To::Kill => Some(kill_at),
        To::Allow => Some(kill_at + 1),
        To::Outside => Some(kill_at + 2),
        To::Clone => Some(clone_at),
        To::SelfClone => Some(self_clone_at),
        To::Prctl => Some(prctl_at),
        To::ArchPrctl => None,
    })
}

/// The application threads' filter, stacked on the base one (filters only
/// tighten: the strictest answer wins): from the code page only [`APP_SYSCALLS`]
/// and `arch_prctl` with [`APP_ARCH_PRCTL`]; anything else from there kills the
/// stub. Elsewhere it allows, and the base filter's TRAP decides.
fn app_filter() -> Vec<[u8; 8]> {
    let mut p = from_code_page();
    p.push(jeq(libc::SYS_arch_prctl as u32, To::ArchPrctl, To::Next));
    for nr in APP_SYSCALLS {
        p.push(jeq(nr as u32, To::Allow, To::Next));
    }
    p.push(jeq(0, To::Kill, To::Kill));
    let arch_at = p.len();
    p.extend([
        ld(SD_ARG0_HI),
        jeq(0, To::Next, To::Kill),
        ld(SD_ARG0_LO),
        jeq(APP_ARCH_PRCTL[0], To::Allow, To::Next),
        jeq(APP_ARCH_PRCTL[1], To::Allow, To::Kill),
    ]);
    let kill_at = p.len();
    p.push((bpf(RET_K, 0, 0, RET_KILL_PROCESS), To::Next, To::Next));
    p.push((bpf(RET_K, 0, 0, RET_ALLOW), To::Next, To::Next));
    link(p, |t| match t {
        To::Next => None,
        To::Kill => Some(kill_at),
        To::Allow | To::Outside => Some(kill_at + 1),
        To::ArchPrctl => Some(arch_at),
        To::Clone | To::SelfClone | To::Prctl => None,
    })
}

/// The stub image.
pub(super) fn build() -> Vec<u8> {
    let base = STUB_BASE;
    let mut code = CODE.to_vec();
    code[CODE_SPIN_IMM..CODE_SPIN_IMM + 4].copy_from_slice(&STUB_SPIN.to_le_bytes());
    code[CODE_SYS_SPIN_IMM..CODE_SYS_SPIN_IMM + 4].copy_from_slice(&SYS_SPIN.to_le_bytes());
    code[CODE_TRAMP_SPIN_IMM..CODE_TRAMP_SPIN_IMM + 4].copy_from_slice(&STUB_SPIN.to_le_bytes());
    let filter = filter();
    let app = app_filter();
    let total = FILTER2_OFF + 8 * app.len() as u64;
    debug_assert!(total <= PAGE_SIZE);
    debug_assert!(FILTER_OFF + 8 * filter.len() as u64 <= FILTER2_OFF);
    debug_assert!(CODE_OFF + (code.len() as u64) <= ACT_CHLD_OFF);
    let mut b = Vec::with_capacity(total as usize);
    stub_process::elf_headers(&mut b, base, base + CODE_OFF, total);
    b.extend_from_slice(&code);
    b.resize(ACT_CHLD_OFF as usize, 0xf4); // hlt padding

    // The zygote's SIGCHLD action: SIG_DFL without SA_NOCLDWAIT (an ignored SIGCHLD,
    // which exec keeps from the sentry, would reap stubs on their own). A dead stub
    // stays a zombie, its pid taken, until the sentry, done with its memory, tells
    // the zygote to reap it.
    b.extend_from_slice(&0u64.to_le_bytes()); // handler = SIG_DFL
    b.extend_from_slice(&0u64.to_le_bytes()); // flags
    b.extend_from_slice(&0u64.to_le_bytes()); // restorer
    b.extend_from_slice(&0u64.to_le_bytes()); // mask
                                              // struct sock_fprog { unsigned short len; struct sock_filter *filter; }, twice.
    b.resize(FPROG_OFF as usize, 0);
    b.extend_from_slice(&(filter.len() as u64).to_le_bytes());
    b.extend_from_slice(&(base + FILTER_OFF).to_le_bytes());
    b.resize(FPROG2_OFF as usize, 0);
    b.extend_from_slice(&(app.len() as u64).to_le_bytes());
    b.extend_from_slice(&(base + FILTER2_OFF).to_le_bytes());
    b.resize(FILTER_OFF as usize, 0);
    for ins in &filter {
        b.extend_from_slice(ins);
    }
    b.resize(FILTER2_OFF as usize, 0);
    for ins in &app {
        b.extend_from_slice(ins);
    }
    b
}

fn put(h: &mut [u8], off: usize, v: u64) {
    h[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Fills a new command page with what the stub's start-up code reads: the fd number
/// its command memfd will have (1), the masks and the signal action of every
/// handler.
pub(super) fn init_cmd_page(page: &mut [u8]) {
    put(page, C_CMDFD, 1);
    put(page, C_ZERO, 0);
    put(page, C_ONES, u64::MAX);
    // Every signal: our handler, on the alternate stack, with everything blocked
    // while it runs (so the interrupt signal waits until the thread returns to app
    // code, and a thread's own requests are never interrupted).
    use abi::signal::{SA_ONSTACK, SA_RESTORER, SA_SIGINFO};
    let flags = SA_SIGINFO | SA_ONSTACK | SA_RESTORER;
    put(page, C_SIGACTION, HANDLER);
    put(page, C_SIGACTION + 8, flags);
    put(page, C_SIGACTION + 16, RESTORER);
    put(page, C_SIGACTION + 24, u64::MAX);
}

/// Writes into a command page the alternate stack (`stack_t`) of a new application
/// thread in slot `slot`.
pub(super) fn set_thread_altstack(page: &mut [u8; 24], slot: usize) {
    let base = slot_base(slot);
    // stack_t { ss_sp, ss_flags (+pad), ss_size }
    put(page, 0, base + OFF_ALTSTACK_BASE as u64);
    put(page, 8, 0);
    put(page, 16, REGION_SIZE - OFF_ALTSTACK_BASE as u64);
}

/// The stub address of slot `slot`'s region.
pub(super) fn slot_base(slot: usize) -> u64 {
    REGION + slot as u64 * REGION_SIZE
}

/// Writes the image into a sealed memfd and returns a read-only fd on it.
pub(super) fn memfd(image: &[u8]) -> SysResult<OwnedFd> {
    stub_process::sealed_memfd(c"rvisor-systrap-stub", image)
}

/// Forks and execs the zygote; `control` becomes its fd 0. The zygote dies with the
/// calling thread (`PR_SET_PDEATHSIG`) and when `control`'s other end is closed.
pub(super) fn spawn_zygote(exe: BorrowedFd<'_>, control: BorrowedFd<'_>) -> SysResult<i32> {
    let exec = ChildExec::new(c"rvisor-systrap");
    let exe = exe.as_raw_fd();
    let control = control.as_raw_fd();
    // SAFETY: fork is safe to call; the child below only makes raw system calls and
    // never returns into Rust code that could take locks or allocate.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_errno());
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child: only raw system calls follow, on
        // memory prepared before the fork.
        unsafe {
            stub_process::child_prelude(&exec);
            let exe = stub_process::child_keep_fds(exe, control);
            stub_process::child_exec(&exec, exe)
        }
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_code() {
        assert_eq!(&CODE[CODE_READY as usize..][..2], &[0x0f, 0x0b]); // ud2
        assert_eq!(&CODE[CODE_HANDLER as usize..][..3], &[0x48, 0x89, 0xe3]); // mov rbx, rsp
        assert_eq!(CODE[CODE_SPIN_IMM - 1], 0xb9); // mov ecx, imm32
        assert_eq!(CODE[CODE_SYS_SPIN_IMM - 1], 0xb9);
        // The handler's spin loop right after it stops when the sentry sets the
        // no-spin word: cmp dword ptr [rbx+OFF_STUB_NOSPIN], 0.
        let spin = &CODE[CODE_SPIN_IMM + 4..][..16];
        let nospin = [0x83, 0x7b, OFF_STUB_NOSPIN as u8, 0x00];
        assert!(spin.windows(4).any(|w| w == nospin), "{spin:x?}");
        assert_eq!(&CODE[CODE_RESTORER as usize..][..5], &[0xb8, 15, 0, 0, 0]);
        // clone and prctl are allowed only right after these two system calls: the
        // command's (which loads rax from the command page) and the fork child's.
        assert_eq!(&CODE[CODE_SYS_RET as usize - 2..][..2], &[0x0f, 0x05]);
        assert_eq!(&CODE[CODE_SYS_CMD as usize..][..3], &[0x41, 0x89, 0xc5]); // mov r13d, eax
        assert_eq!(&CODE[CODE_PRCTL_RET as usize - 2..][..2], &[0x0f, 0x05]);
        assert_eq!(
            &CODE[CODE_PRCTL_RET as usize - 17..][..5],
            &[0xb8, 157, 0, 0, 0]
        );
        assert_eq!(&CODE[CODE_REQUEST as usize..][..4], &[0x48, 0x8b, 0x43, 64]);
        // The forked child's own clone: `mov edi, THREAD_FLAGS` ... `syscall`.
        assert_eq!(
            &CODE[CODE_SELF_CLONE_RET as usize - 2..][..2],
            &[0x0f, 0x05]
        );
        let flags = &CODE[CODE_SELF_CLONE_RET as usize - 32..][..5];
        assert_eq!(flags[0], 0xbf);
        assert_eq!(&flags[1..], &(THREAD_FLAGS as u32).to_le_bytes());
        const { assert!(STUB_END <= USER_TOP) };
        // The calls of a batch lie past the fixed fields of the command page, within
        // it, and their offsets give their index with `>> 9` (the report's).
        const { assert!(C_STRIDE == 512 && C_NR + C_EXPECT + 8 <= C_CMDFD) };
        const { assert!(C_ALTSTACK + 24 <= C_ZERO) };
        const { assert!(C_NR + C_STRIDE > C_SIGACTION + 32) };
        const { assert!(C_NR + (C_MAX_CALLS - 1) * C_STRIDE + 64 <= PAGE_SIZE as usize) };
        const { assert!(C_SEQ + 4 == C_COUNT && C_COUNT + 4 == C_NR) };
        const { assert!(SYSRW + PAGE_SIZE <= REGION) };
        // The addresses the hand-assembled code hard-codes agree with ours.
        let has = |v: u64| CODE.windows(8).any(|w| w == v.to_le_bytes());
        assert!(has(STUB_BASE));
        assert!(has(ZSCRATCH));
        assert!(has(CMD));
        assert!(has(SYSRW));
        assert!(has(USER_TOP - (STUB_BASE + PAGE_SIZE)));
        assert!(has(STUB_BASE + ACT_CHLD_OFF));
        assert!(has(STUB_BASE + FPROG_OFF));
        assert!(has(STUB_BASE + FPROG2_OFF));
        // The fork child unmaps every slot: `mov esi, STUB_END - REGION`.
        let slots = ((STUB_END - REGION) as u32).to_le_bytes();
        assert!(CODE.windows(5).any(|w| w[0] == 0xbe && w[1..] == slots));
        // The trampoline: gs-relative load of T_SELF first, the commit `xchg [r11],
        // eax`, the trap, and nothing before the commit that changes a flag.
        assert_eq!(
            &CODE[CODE_TRAMP as usize..][..5],
            &[0x65, 0x4c, 0x8b, 0x1c, 0x25]
        );
        assert_eq!(CODE[CODE_TRAMP as usize + 5], T_SELF as u8);
        assert_eq!(
            &CODE[CODE_TRAMP_COMMIT as usize..][..3],
            &[0x41, 0x87, 0x03]
        );
        assert_eq!(&CODE[CODE_TRAMP_TRAP as usize..][..2], &[0x0f, 0x0b]);
        assert_eq!(CODE_TRAMP_END as usize, CODE.len());
        assert_eq!(
            &CODE[CODE_TRAMP_SLEEP_SYSCALL as usize..][..2],
            &[0x0f, 0x05]
        );
        assert_eq!(CODE[CODE_TRAMP_SPIN_IMM - 1], 0xb9);
        assert_eq!(&CODE[CODE_TRAMP_LEA as usize..][..3], &[0x49, 0x8d, 0xa3]); // lea rsp, [r11+..]
        assert_eq!(
            &CODE[CODE_TRAMP_RCX as usize..][..4],
            &[0x48, 0x8b, 0x0c, 0x24]
        ); // mov rcx, [rsp]
        assert_eq!(
            &CODE[CODE_TRAMP_RAX as usize - 4..][..4],
            &[0x49, 0x8b, 0x43, T_SEQ as u8]
        ); // mov rax, [r11+T_SEQ]
        const { assert!(T_REGS + 18 * 8 <= 0xf00 - 64 && T_SEQ + 8 <= OFF_TID) };
        const { assert!(T_SELF + 8 <= T_SEQ && OFF_UCONTEXT + 8 <= T_SELF) };
        let image = build();
        assert!(image.len() as u64 <= PAGE_SIZE);
    }
}
