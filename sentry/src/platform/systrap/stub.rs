//! The systrap stub program, a one-page static ELF generated here, and the zygote
//! process every stub is forked from.
//!
//! The machine code is hand-assembled (the source is `stub.S` next to this file,
//! kept for review; the bytes below are its encoding, one instruction a line). It
//! holds three pieces:
//! - the *zygote* start-up and loop: unmap everything but the code page, map a
//!   scratch page, set `PR_SET_NO_NEW_PRIVS`, set SIGCHLD to `SIG_DFL` (no
//!   auto-reaping), then forever `recvmsg` from the sentry either a (region memfd,
//!   control socket) pair, and `fork`, or a pid without fds, and reap that child;
//! - the *child* set-up: die with the zygote, take the control socket as fd 0, map
//!   the region memfd MAP_SHARED at [`REGION`], use it as the alternate signal stack,
//!   install the signal handler for every signal, publish its pid, install the
//!   seccomp filter and execute `ud2`, whose SIGILL reports "ready" to the sentry;
//! - the *signal handler*: it runs on the alternate stack inside the shared region,
//!   so the kernel's signal frame (registers, FP state, siginfo) already lies in
//!   memory the sentry sees. It records the frame's pointers, flips the state word,
//!   and waits (spin, then futex; no spin when it just had to wake the sentry, which
//!   then cannot be running on another CPU yet, nor once the sentry sets the no-spin
//!   word because the task's call waits for an event) until the sentry says "resume"
//!   (return through `rt_sigreturn`) or "run this system call" (executed here, from the trampoline the
//!   filter allows, and reported back).
//!
//! Reused from the ptrace backend (copied, to dedupe later): the ELF header layout,
//! the sealed-memfd image and the fork + `execveat` start of a process from it.

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
/// Where each stub maps the shared region of its first thread (slot 0); the region
/// of slot `i` lies at `REGION + i * REGION_SIZE`.
pub(super) const REGION: u64 = STUB_BASE + 0x1_0000;
/// Size of a shared region; it is aligned to its size, which is how the signal
/// handler finds its thread's region from its stack pointer.
pub(super) const REGION_SIZE: u64 = 0x1_0000;
/// How many thread slots (regions) fit below the top of the user address space: at
/// most this many threads per application process.
pub(super) const MAX_SLOTS: usize = ((USER_TOP - REGION) / REGION_SIZE) as usize;
/// One past the platform's reserved region.
pub(super) const STUB_END: u64 = REGION + MAX_SLOTS as u64 * REGION_SIZE;
/// One past the highest user address on x86-64 with 4-level paging.
const USER_TOP: u64 = 0x7fff_ffff_f000;

// Layout of the shared region (offsets). The first page is the header, the rest is
// the alternate signal stack.
/// u32: who holds the stub (see the `STATE_*` values).
pub(super) const OFF_STATE: usize = 0;
/// u32: non-zero while the sentry sleeps on the state futex.
pub(super) const OFF_SENTRY_SLEEPING: usize = 4;
/// u32: non-zero while the stub sleeps on the state futex.
pub(super) const OFF_STUB_SLEEPING: usize = 8;
/// u32: non-zero while the sentry's answer will not come soon (the task waits for
/// an event): the handler stops spinning and sleeps on the futex at once, leaving the
/// CPU to whoever will produce that event. Cleared with each hand-over.
pub(super) const OFF_STUB_NOSPIN: usize = 12;
/// u64: the signal number the handler got.
pub(super) const OFF_SIGNO: usize = 16;
/// u64: the handler's `siginfo_t *` (a stub address inside the region).
pub(super) const OFF_SIGINFO: usize = 24;
/// u64: the handler's `ucontext_t *` (a stub address inside the region).
pub(super) const OFF_UCONTEXT: usize = 32;
/// u64: the stub's pid, written once at start-up.
pub(super) const OFF_PID: usize = 40;
/// u64: always zero (the empty signal mask a cloned child installs).
const OFF_ZERO: usize = 48;
/// u32: the thread's id, set by the kernel at clone (`CLONE_CHILD_SETTID`) and
/// cleared, with a futex wake, when the thread exits (`CLONE_CHILD_CLEARTID`).
pub(super) const OFF_TID: usize = 56;
/// u32: a forked stub's fd number of its own control socket.
pub(super) const OFF_CTLFD: usize = 60;
/// u64: system call number of a request, then its six arguments.
pub(super) const OFF_REQ_NR: usize = 64;
/// u64: the result of a request.
pub(super) const OFF_REQ_RESULT: usize = 120;
/// `stack_t` for `sigaltstack`, written by the sentry before the fork.
const OFF_ALTSTACK: usize = 256;
/// The kernel `struct sigaction` for every handler, written by the sentry.
const OFF_SIGACTION: usize = 288;
/// Scratch space for request arguments (msghdr, iovec, cmsg buffer).
pub(super) const OFF_SCRATCH: usize = 512;
/// 16 random bytes the sentry writes into a fresh region before a new thread or fork
/// maps it: reading them back through the pid or tid the stub reports for that thread
/// or child proves the number names a process that maps this region (the report comes
/// from application-writable memory and could name any other process).
pub(super) const OFF_NONCE: usize = 2048;
/// Length of the nonce at [`OFF_NONCE`].
pub(super) const NONCE_LEN: usize = 16;
/// Start of the alternate signal stack.
pub(super) const OFF_ALTSTACK_BASE: usize = 4096;

/// The stub is parked in its handler: the sentry's turn.
pub(super) const STATE_PARKED: u32 = 1;
/// The sentry tells the stub to return to the application.
pub(super) const STATE_RESUME: u32 = 2;
/// The sentry asks the stub to run the system call in the request slots.
pub(super) const STATE_REQUEST: u32 = 3;
/// The sentry asks the stub for a `clone` with the request slots' arguments (flags,
/// stack, parent tid, child tid, tls): [`THREAD_FLAGS`] or [`FORK_FLAGS`] only.
pub(super) const STATE_CLONE: u32 = 4;

/// `clone` flags of a new stub thread: a thread of the same process whose region
/// word [`OFF_TID`] tells the sentry when it has exited. Not `CLONE_FILES`: each
/// thread has an fd table of its own, so an fd the sentry passes to one thread (a
/// file to map) is never in reach of another thread's application code.
pub(super) const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;
/// `clone` flags of a forked stub: a sibling (child of the zygote, which reaps it
/// when the sentry says so, and whose death kills it) with a copy-on-write copy of the address space.
pub(super) const FORK_FLAGS: u64 = (libc::CLONE_PARENT | libc::SIGCHLD) as u64;

/// Offset of the code in the image (right after the ELF and program headers).
const CODE_OFF: u64 = (EHDR_SIZE + PHDR_SIZE) as u64;
/// Offsets inside [`CODE`] of the labels the sentry needs.
const CODE_READY: u64 = 0x301;
const CODE_HANDLER: u64 = 0x303;
const CODE_SPIN_IMM: usize = 0x33d;
const CODE_RESTORER: u64 = 0x3d9;
/// Right after the `syscall` of the clone request: the only place a `clone` may
/// come from (the seccomp filter checks the exact address).
const CODE_CLONE_RET: u64 = 0x3a3;
/// Right after the forked child's `prctl(PR_SET_PDEATHSIG)`: the only place a
/// `prctl` may come from.
const CODE_PRCTL_RET: u64 = 0x3fe;
/// The handler's request path (loads a call and its arguments from `[rbx+64..]`).
#[cfg(test)]
const CODE_REQUEST: u64 = 0x3b1;
/// Image offsets of the read-only data the code points at.
const ACT_CHLD_OFF: u64 = 0x7d0;
const FPROG_OFF: u64 = 0x7f0;
const FILTER_OFF: u64 = 0x800;

/// Addresses of the clone request's and the forked child's `syscall` instructions.
#[cfg(test)]
pub(super) const CLONE_SITE: u64 = STUB_BASE + CODE_OFF + CODE_CLONE_RET - 2;
#[cfg(test)]
pub(super) const PRCTL_SITE: u64 = STUB_BASE + CODE_OFF + CODE_PRCTL_RET - 2;
/// Address of the restorer's `syscall` instruction: any call allowed from the code
/// page can be made there by application code that jumps to it.
#[cfg(test)]
pub(super) const RESTORER_SYSCALL: u64 = RESTORER + 5;
/// Address of the handler's request path.
#[cfg(test)]
pub(super) const REQUEST: u64 = STUB_BASE + CODE_OFF + CODE_REQUEST;
/// Address of the `ud2` that reports a new stub ready.
pub(super) const READY_RIP: u64 = STUB_BASE + CODE_OFF + CODE_READY;
/// The signal handler.
const HANDLER: u64 = STUB_BASE + CODE_OFF + CODE_HANDLER;
/// The signal restorer (`rt_sigreturn`).
const RESTORER: u64 = STUB_BASE + CODE_OFF + CODE_RESTORER;

/// How many `pause` iterations the stub spins on the state word before it sleeps on
/// the futex (a `pause` takes ~80 ns on this machine class: ~40 us).
const STUB_SPIN: u32 = 500;

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
    0x48, 0xbe, 0xd0, 0x07, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rsi,0x7ffffe0007d0
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
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x44, 0x89, 0xff, // mov edi,r15d
    0x0f, 0x05, // syscall
    0x41, 0xbc, 0x0d, 0x00, 0x00, 0x00, // mov r12d,0xd
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0xbf, 0x00, 0x00, 0x01, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe010000
    0xbe, 0x00, 0x00, 0x01, 0x00, // mov esi,0x10000
    0xba, 0x03, 0x00, 0x00, 0x00, // mov edx,0x3
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xf0, // mov r8d,r14d
    0x45, 0x31, 0xc9, // xor r9d,r9d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x79, 0xff, 0xff, 0xff, // jae 1bf
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x44, 0x89, 0xf7, // mov edi,r14d
    0x0f, 0x05, // syscall
    0x41, 0xbc, 0x0e, 0x00, 0x00, 0x00, // mov r12d,0xe
    0xb8, 0x0b, 0x00, 0x00, 0x00, // mov eax,0xb
    0x48, 0xbf, 0x00, 0x10, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdi,0x7ffffe001000
    0xbe, 0x00, 0x10, 0x00, 0x00, // mov esi,0x1000
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x47, 0xff, 0xff, 0xff, // jae 1bf
    0x48, 0xbb, 0x00, 0x00, 0x01, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rbx,0x7ffffe010000
    0x41, 0xbc, 0x0f, 0x00, 0x00, 0x00, // mov r12d,0xf
    0xb8, 0x83, 0x00, 0x00, 0x00, // mov eax,0x83
    0x48, 0x8d, 0xbb, 0x00, 0x01, 0x00, 0x00, // lea rdi,[rbx+0x100]
    0x31, 0xf6, // xor esi,esi
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0x1b, 0xff, 0xff, 0xff, // jae 1bf
    0x41, 0xbd, 0x01, 0x00, 0x00, 0x00, // mov r13d,0x1
    // sigloop (+0x2aa):
    0xb8, 0x0d, 0x00, 0x00, 0x00, // mov eax,0xd
    0x44, 0x89, 0xef, // mov edi,r13d
    0x48, 0x8d, 0xb3, 0x20, 0x01, 0x00, 0x00, // lea rsi,[rbx+0x120]
    0x31, 0xd2, // xor edx,edx
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d,0x8
    0x0f, 0x05, // syscall
    0x41, 0xff, 0xc5, // inc r13d
    0x41, 0x83, 0xfd, 0x41, // cmp r13d,0x41
    0x75, 0xde, // jne 2aa
    0xb8, 0x27, 0x00, 0x00, 0x00, // mov eax,0x27
    0x0f, 0x05, // syscall
    0x48, 0x89, 0x43, 0x28, // mov QWORD PTR [rbx+0x28],rax
    0x41, 0xbc, 0x10, 0x00, 0x00, 0x00, // mov r12d,0x10
    0xb8, 0x3d, 0x01, 0x00, 0x00, // mov eax,0x13d
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0x31, 0xf6, // xor esi,esi
    0x48, 0xba, 0xf0, 0x07, 0x00, 0xfe, 0xff, 0x7f, 0x00, 0x00, // movabs rdx,0x7ffffe0007f0
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x0f, 0x83, 0xbe, 0xfe, 0xff, 0xff, // jae 1bf
    // ready (+0x301):
    0x0f, 0x0b, // ud2
    // handler (+0x303):
    0x48, 0x89, 0xe3, // mov rbx,rsp
    0x48, 0x81, 0xe3, 0x00, 0x00, 0xff, 0xff, // and rbx,0xffffffffffff0000
    0x48, 0x89, 0x7b, 0x10, // mov QWORD PTR [rbx+0x10],rdi
    0x48, 0x89, 0x73, 0x18, // mov QWORD PTR [rbx+0x18],rsi
    0x48, 0x89, 0x53, 0x20, // mov QWORD PTR [rbx+0x20],rdx
    // report (+0x319):
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x87, 0x03, // xchg DWORD PTR [rbx],eax
    0x83, 0x7b, 0x04, 0x00, // cmp DWORD PTR [rbx+0x4],0x0
    0x74, 0x16, // je 33c
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi,0x1
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x0f, 0x05, // syscall
    0xeb, 0x18, // jmp 354
    // hwait (+0x33c):
    0xb9, 0x78, 0x56, 0x34, 0x12, // mov ecx,0x12345678
    // spin (+0x341):
    0x8b, 0x03, // mov eax,DWORD PTR [rbx]
    0x83, 0xf8, 0x01, // cmp eax,0x1
    0x75, 0x31, // jne 379
    0x83, 0x7b, 0x0c, 0x00, // cmp DWORD PTR [rbx+0xc],0x0
    0x75, 0x06, // jne 354
    0xf3, 0x90, // pause
    0xff, 0xc9, // dec ecx
    0x75, 0xed, // jne 341
    // hsleep (+0x354):
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x87, 0x43, 0x08, // xchg DWORD PTR [rbx+0x8],eax
    0xb8, 0xca, 0x00, 0x00, 0x00, // mov eax,0xca
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0x31, 0xf6, // xor esi,esi
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0x45, 0x31, 0xd2, // xor r10d,r10d
    0x0f, 0x05, // syscall
    0xc7, 0x43, 0x08, 0x00, 0x00, 0x00, 0x00, // mov DWORD PTR [rbx+0x8],0x0
    0xeb, 0xc3, // jmp 33c
    // got (+0x379):
    0x83, 0xf8, 0x02, // cmp eax,0x2
    0x74, 0x5a, // je 3d8
    0x83, 0xf8, 0x03, // cmp eax,0x3
    0x74, 0x2e, // je 3b1
    0x83, 0xf8, 0x04, // cmp eax,0x4
    0x75, 0x91, // jne 319
    0xb8, 0x38, 0x00, 0x00, 0x00, // mov eax,0x38
    0x48, 0x8b, 0x7b, 0x48, // mov rdi,QWORD PTR [rbx+0x48]
    0x48, 0x8b, 0x73, 0x50, // mov rsi,QWORD PTR [rbx+0x50]
    0x48, 0x8b, 0x53, 0x58, // mov rdx,QWORD PTR [rbx+0x58]
    0x4c, 0x8b, 0x53, 0x60, // mov r10,QWORD PTR [rbx+0x60]
    0x4c, 0x8b, 0x43, 0x68, // mov r8,QWORD PTR [rbx+0x68]
    0x0f, 0x05, // syscall
    // clone_ret (+0x3a3):
    0x48, 0x85, 0xc0, // test rax,rax
    0x74, 0x39, // je 3e1
    0x48, 0x89, 0x43, 0x78, // mov QWORD PTR [rbx+0x78],rax
    0xe9, 0x68, 0xff, 0xff, 0xff, // jmp 319
    // request (+0x3b1):
    0x48, 0x8b, 0x43, 0x40, // mov rax,QWORD PTR [rbx+0x40]
    0x48, 0x8b, 0x7b, 0x48, // mov rdi,QWORD PTR [rbx+0x48]
    0x48, 0x8b, 0x73, 0x50, // mov rsi,QWORD PTR [rbx+0x50]
    0x48, 0x8b, 0x53, 0x58, // mov rdx,QWORD PTR [rbx+0x58]
    0x4c, 0x8b, 0x53, 0x60, // mov r10,QWORD PTR [rbx+0x60]
    0x4c, 0x8b, 0x43, 0x68, // mov r8,QWORD PTR [rbx+0x68]
    0x4c, 0x8b, 0x4b, 0x70, // mov r9,QWORD PTR [rbx+0x70]
    0x0f, 0x05, // syscall
    0x48, 0x89, 0x43, 0x78, // mov QWORD PTR [rbx+0x78],rax
    0xe9, 0x41, 0xff, 0xff, 0xff, // jmp 319
    // resume (+0x3d8):
    0xc3, // ret
    // restorer (+0x3d9):
    0xb8, 0x0f, 0x00, 0x00, 0x00, // mov eax,0xf
    0x0f, 0x05, // syscall
    0xf4, // hlt
    // cloned (+0x3e1):
    0xf7, 0xc7, 0x00, 0x01, 0x00, 0x00, // test edi,0x100
    0x0f, 0x85, 0x90, 0x00, 0x00, 0x00, // jne 47d
    0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax,0x9d
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0xbe, 0x09, 0x00, 0x00, 0x00, // mov esi,0x9
    0x0f, 0x05, // syscall
    // prctl_ret (+0x3fe):
    0x44, 0x8b, 0x6b, 0x3c, // mov r13d,DWORD PTR [rbx+0x3c]
    0xb8, 0x2f, 0x00, 0x00, 0x00, // mov eax,0x2f
    0x44, 0x89, 0xef, // mov edi,r13d
    0x48, 0x8d, 0xb3, 0x00, 0x02, 0x00, 0x00, // lea rsi,[rbx+0x200]
    0x31, 0xd2, // xor edx,edx
    0x0f, 0x05, // syscall
    0x48, 0x83, 0xf8, 0x08, // cmp rax,0x8
    0x0f, 0x85, 0x9f, 0x00, 0x00, 0x00, // jne 4be
    0x48, 0x83, 0xbb, 0x00, 0x03, 0x00, 0x00, 0x18, // cmp QWORD PTR [rbx+0x300],0x18
    0x0f, 0x85, 0x91, 0x00, 0x00, 0x00, // jne 4be
    0x44, 0x8b, 0xb3, 0x10, 0x03, 0x00, 0x00, // mov r14d,DWORD PTR [rbx+0x310]
    0x44, 0x8b, 0xbb, 0x14, 0x03, 0x00, 0x00, // mov r15d,DWORD PTR [rbx+0x314]
    0xb8, 0x09, 0x00, 0x00, 0x00, // mov eax,0x9
    0x48, 0x89, 0xdf, // mov rdi,rbx
    0xbe, 0x00, 0x00, 0x01, 0x00, // mov esi,0x10000
    0xba, 0x03, 0x00, 0x00, 0x00, // mov edx,0x3
    0x41, 0xba, 0x11, 0x00, 0x00, 0x00, // mov r10d,0x11
    0x45, 0x89, 0xf0, // mov r8d,r14d
    0x45, 0x31, 0xc9, // xor r9d,r9d
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x5b, // jae 4be
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x44, 0x89, 0xf7, // mov edi,r14d
    0x0f, 0x05, // syscall
    0xb8, 0x03, 0x00, 0x00, 0x00, // mov eax,0x3
    0x44, 0x89, 0xef, // mov edi,r13d
    0x0f, 0x05, // syscall
    0x44, 0x89, 0x7b, 0x3c, // mov DWORD PTR [rbx+0x3c],r15d
    0xeb, 0x24, // jmp 4a1
    // thread_start (+0x47d):
    0x48, 0x8d, 0x5c, 0x24, 0xff, // lea rbx,[rsp-0x1]
    0x48, 0x81, 0xe3, 0x00, 0x00, 0xff, 0xff, // and rbx,0xffffffffffff0000
    0xb8, 0x83, 0x00, 0x00, 0x00, // mov eax,0x83
    0x48, 0x8d, 0xbb, 0x00, 0x01, 0x00, 0x00, // lea rdi,[rbx+0x100]
    0x31, 0xf6, // xor esi,esi
    0x0f, 0x05, // syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax,0xfffffffffffff001
    0x73, 0x2a, // jae 4cb
    // unblock (+0x4a1):
    0xb8, 0x0e, 0x00, 0x00, 0x00, // mov eax,0xe
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0x48, 0x8d, 0x73, 0x30, // lea rsi,[rbx+0x30]
    0x31, 0xd2, // xor edx,edx
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d,0x8
    0x0f, 0x05, // syscall
    0xe9, 0x43, 0xfe, 0xff, 0xff, // jmp 301
    // fork_fail (+0x4be):
    0xbf, 0x11, 0x00, 0x00, 0x00, // mov edi,0x11
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax,0xe7
    0x0f, 0x05, // syscall
    0xf4, // hlt
    // thread_fail (+0x4cb):
    0x31, 0xff, // xor edi,edi
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax,0x3c
    0x0f, 0x05, // syscall
    0xf4, // hlt
];

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Host system calls the stub may make from its own code page (everything else, and
/// everything from any other address, raises SIGSYS): what the handler needs to wait
/// and return, what the sentry's requests use, and what a cloned child needs to
/// come up (`rt_sigprocmask`: a child starts with the handler's full mask;
/// `sigaltstack`: a new thread starts without one; `exit`: the end of a thread).
/// `rt_sigprocmask` gives the application nothing new: `rt_sigreturn`, allowed for
/// the handler's return, already loads any mask from a frame it can forge.
/// `clone` and `prctl` are allowed only from one instruction each, with fixed
/// arguments (see [`filter`]).
const STUB_SYSCALLS: [i64; 13] = [
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
];

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
    Trap,
    Clone,
    Prctl,
}

/// The stub's seccomp filter: a 64-bit system call from the stub's code page whose
/// number is in [`STUB_SYSCALLS`] runs; so does a `clone` from the clone request's
/// instruction with [`THREAD_FLAGS`] or [`FORK_FLAGS`], and a
/// `prctl(PR_SET_PDEATHSIG)` from the forked child's first instruction (so even a
/// fork the application makes by jumping there dies with the zygote); any other
/// call from there kills the stub; everything else traps (SIGSYS) to the handler,
/// i.e. to the sentry.
fn filter() -> Vec<[u8; 8]> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_TRAP: u32 = 0x0003_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const IP_LO: u32 = 8;
    const IP_HI: u32 = 12;
    const ARG0_LO: u32 = 16;
    let ld = |off: u32| (bpf(LD_W_ABS, 0, 0, off), To::Next, To::Next);
    let jeq = |k: u32, t: To, f: To| (bpf(JEQ_K, 0, 0, k), t, f);
    let rip = |off: u64| (STUB_BASE + CODE_OFF + off) as u32;
    let mut p = vec![
        ld(ARCH),
        jeq(AUDIT_ARCH_X86_64, To::Next, To::Trap),
        ld(IP_HI),
        jeq((STUB_BASE >> 32) as u32, To::Next, To::Trap),
        ld(IP_LO),
        (
            bpf(AND_K, 0, 0, !(PAGE_SIZE as u32 - 1)),
            To::Next,
            To::Next,
        ),
        jeq(STUB_BASE as u32, To::Next, To::Trap),
        ld(NR),
        jeq(libc::SYS_clone as u32, To::Clone, To::Next),
        jeq(libc::SYS_prctl as u32, To::Prctl, To::Next),
    ];
    for nr in STUB_SYSCALLS {
        p.push(jeq(nr as u32, To::Allow, To::Next));
    }
    // Not on the list: kill (a jump to the KILL return below).
    p.push(jeq(0, To::Kill, To::Kill));
    let clone_at = p.len();
    p.extend([
        ld(IP_LO),
        jeq(rip(CODE_CLONE_RET), To::Next, To::Kill),
        ld(ARG0_LO),
        jeq(THREAD_FLAGS as u32, To::Allow, To::Next),
        jeq(FORK_FLAGS as u32, To::Allow, To::Kill),
    ]);
    let prctl_at = p.len();
    p.extend([
        ld(IP_LO),
        jeq(rip(CODE_PRCTL_RET), To::Next, To::Kill),
        ld(ARG0_LO),
        jeq(libc::PR_SET_PDEATHSIG as u32, To::Allow, To::Kill),
    ]);
    let kill_at = p.len();
    p.push((bpf(RET_K, 0, 0, RET_KILL_PROCESS), To::Next, To::Next));
    p.push((bpf(RET_K, 0, 0, RET_ALLOW), To::Next, To::Next));
    p.push((bpf(RET_K, 0, 0, RET_TRAP), To::Next, To::Next));
    let target = |t: To| match t {
        To::Next => None,
        To::Kill => Some(kill_at),
        To::Allow => Some(kill_at + 1),
        To::Trap => Some(kill_at + 2),
        To::Clone => Some(clone_at),
        To::Prctl => Some(prctl_at),
    };
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

/// The stub image.
pub(super) fn build() -> Vec<u8> {
    let base = STUB_BASE;
    let mut code = CODE.to_vec();
    code[CODE_SPIN_IMM..CODE_SPIN_IMM + 4].copy_from_slice(&STUB_SPIN.to_le_bytes());
    let filter = filter();
    let total = FILTER_OFF + 8 * filter.len() as u64;
    debug_assert!(total <= PAGE_SIZE);
    debug_assert!(CODE_OFF + (code.len() as u64) <= ACT_CHLD_OFF);
    let mut b = Vec::with_capacity(total as usize);
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV, padding.
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&2u16.to_le_bytes()); // e_type = ET_EXEC
    b.extend_from_slice(&62u16.to_le_bytes()); // e_machine = EM_X86_64
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.extend_from_slice(&(base + CODE_OFF).to_le_bytes()); // e_entry
    b.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    b.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    b.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    b.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    b.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    b.extend_from_slice(&1u32.to_le_bytes()); // p_type = PT_LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // p_flags = PF_R | PF_X
    b.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    b.extend_from_slice(&base.to_le_bytes()); // p_vaddr
    b.extend_from_slice(&base.to_le_bytes()); // p_paddr
    b.extend_from_slice(&total.to_le_bytes()); // p_filesz
    b.extend_from_slice(&total.to_le_bytes()); // p_memsz
    b.extend_from_slice(&PAGE_SIZE.to_le_bytes()); // p_align
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
    b.resize(FPROG_OFF as usize, 0);
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    b.extend_from_slice(&(filter.len() as u64).to_le_bytes());
    b.extend_from_slice(&(base + FILTER_OFF).to_le_bytes());
    b.resize(FILTER_OFF as usize, 0);
    for ins in &filter {
        b.extend_from_slice(ins);
    }
    b
}

/// Fills the header of a new region for slot `slot` with what the child's start-up
/// code reads.
pub(super) fn init_region(header: &mut [u8], slot: usize) {
    let base = slot_base(slot);
    let put = |h: &mut [u8], off: usize, v: u64| h[off..off + 8].copy_from_slice(&v.to_le_bytes());
    // stack_t { ss_sp, ss_flags (+pad), ss_size }
    put(header, OFF_ALTSTACK, base + OFF_ALTSTACK_BASE as u64);
    put(header, OFF_ALTSTACK + 8, 0);
    put(
        header,
        OFF_ALTSTACK + 16,
        REGION_SIZE - OFF_ALTSTACK_BASE as u64,
    );
    // Every signal: our handler, on the alternate stack, with everything blocked
    // while it runs (so the interrupt signal waits until the stub returns to app
    // code, and request system calls are never interrupted).
    /// `SA_RESTORER` (the libc crate does not export it for every target).
    const SA_RESTORER: u64 = 0x0400_0000;
    let flags = (libc::SA_SIGINFO | libc::SA_ONSTACK) as u64 | SA_RESTORER;
    put(header, OFF_SIGACTION, HANDLER);
    put(header, OFF_SIGACTION + 8, flags);
    put(header, OFF_SIGACTION + 16, RESTORER);
    put(header, OFF_SIGACTION + 24, u64::MAX);
    put(header, OFF_ZERO, 0);
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
                                                   // The spin loop right after it stops when the sentry sets the no-spin word:
                                                   // cmp dword ptr [rbx+OFF_STUB_NOSPIN], 0.
        let spin = &CODE[CODE_SPIN_IMM + 4..][..16];
        let nospin = [0x83, 0x7b, OFF_STUB_NOSPIN as u8, 0x00];
        assert!(spin.windows(4).any(|w| w == nospin), "{spin:x?}");
        assert_eq!(&CODE[CODE_RESTORER as usize..][..5], &[0xb8, 15, 0, 0, 0]);
        // clone and prctl are allowed only right after these two system calls.
        assert_eq!(&CODE[CODE_CLONE_RET as usize - 2..][..2], &[0x0f, 0x05]);
        assert_eq!(
            &CODE[CODE_CLONE_RET as usize - 27..][..5],
            &[0xb8, 56, 0, 0, 0]
        );
        assert_eq!(&CODE[CODE_PRCTL_RET as usize - 2..][..2], &[0x0f, 0x05]);
        assert_eq!(
            &CODE[CODE_PRCTL_RET as usize - 17..][..5],
            &[0xb8, 157, 0, 0, 0]
        );
        const { assert!(STUB_END <= USER_TOP) };
        // The addresses the hand-assembled code hard-codes agree with ours.
        let has = |v: u64| CODE.windows(8).any(|w| w == v.to_le_bytes());
        assert!(has(STUB_BASE));
        assert!(has(ZSCRATCH));
        assert!(has(REGION));
        assert!(has(USER_TOP - (STUB_BASE + PAGE_SIZE)));
        assert!(has(STUB_BASE + ACT_CHLD_OFF));
        assert!(has(STUB_BASE + FPROG_OFF));
        let image = build();
        assert!(image.len() as u64 <= PAGE_SIZE);
    }
}
