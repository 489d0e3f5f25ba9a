//! The stub program: a tiny static ELF generated here, and how a stub process starts.
//!
//! The stub is one read+execute page at [`STUB_BASE`]. On start it unmaps everything
//! else (initial stack, vdso, vvar), then traps; from then on the sentry owns its
//! address space and uses the `syscall; int3` landing pad for remote system calls.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::errno::SysResult;
use crate::platform::stub_process::{self, ChildExec};
use crate::platform::PAGE_SIZE;

use super::sys::last_errno;

/// Where the stub's code page lives. It sits well below the top of the 47-bit user
/// half, far from where the kernel puts the (non-randomized) initial stack, so the
/// ELF loader's `MAP_FIXED_NOREPLACE` cannot collide with it.
pub(super) const STUB_BASE: u64 = 0x7fff_fe00_0000;
/// The stub's scratch page (RW), mapped by the sentry after start: room for the
/// `msghdr` of a remote `recvmsg`.
pub(super) const SCRATCH: u64 = STUB_BASE + PAGE_SIZE;
/// One past the stub's reserved region.
#[cfg(test)]
pub(super) const STUB_END: u64 = STUB_BASE + 2 * PAGE_SIZE;
/// One past the highest user address on x86-64 with 4-level paging (`TASK_SIZE_MAX`);
/// with 5-level paging nothing is mapped above it unless asked for.
const USER_TOP: u64 = abi::mem::TASK_SIZE;
/// The fd number the stub's end of the control socket has inside the stub.
pub(super) const STUB_CONTROL_FD: u64 = 0;

/// The stub image and the addresses of its interesting instructions.
pub(super) struct StubImage {
    /// The ELF file bytes.
    pub bytes: Vec<u8>,
    /// Address of the `syscall` of the landing pad.
    pub pad: u64,
    /// Address right after the landing pad's `int3` (rip at its SIGTRAP stop).
    pub pad_trap: u64,
    /// rip at the SIGTRAP stop that ends start-up.
    pub start_trap: u64,
    /// Where a parked thread waits: `syscall` (the wait), then `exit_group(0)` should
    /// the wait ever end on its own.
    pub park: u64,
}

/// Builds the stub ELF. Layout: ELF header, one program header, then the code, all in
/// one `PT_LOAD` (R+X) segment that maps file offset 0 at [`STUB_BASE`].
pub(super) fn build() -> StubImage {
    let code_off = stub_process::ELF_HEADERS_SIZE;
    let mut code: Vec<u8> = Vec::new();
    let movabs = |code: &mut Vec<u8>, reg_byte: u8, v: u64| {
        code.extend_from_slice(&[0x48, reg_byte]);
        code.extend_from_slice(&v.to_le_bytes());
    };
    // munmap(0, STUB_BASE): everything below the stub.
    code.extend_from_slice(&[0xb8, 0x0b, 0, 0, 0]); // mov eax, 11 (SYS_munmap)
    code.extend_from_slice(&[0x31, 0xff]); // xor edi, edi
    movabs(&mut code, 0xbe, STUB_BASE); // movabs rsi, STUB_BASE
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.extend_from_slice(&[0x49, 0x89, 0xc4]); // mov r12, rax  (result for the sentry)
                                                 // munmap(STUB_BASE + PAGE, USER_TOP - that): everything above the code page.
    code.extend_from_slice(&[0xb8, 0x0b, 0, 0, 0]); // mov eax, 11
    movabs(&mut code, 0xbf, STUB_BASE + PAGE_SIZE); // movabs rdi, STUB_BASE + PAGE
    movabs(&mut code, 0xbe, USER_TOP - (STUB_BASE + PAGE_SIZE)); // movabs rsi, len
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.extend_from_slice(&[0x49, 0x89, 0xc5]); // mov r13, rax
    let start_int3 = code.len() as u64;
    code.push(0xcc); // int3: start-up done, the sentry takes over
    code.extend_from_slice(&[0xeb, 0xfd]); // jmp -3 (back to the int3 if resumed)
    let pad_off = code.len() as u64;
    code.extend_from_slice(&[0x0f, 0x05]); // syscall   <- remote syscalls enter here
    code.push(0xcc); // int3      <- and stop here with the result in rax
    code.extend_from_slice(&[0xeb, 0xfd]); // jmp -3 (back to the int3)
    let park_off = code.len() as u64;
    code.extend_from_slice(&[0x0f, 0x05]); // syscall   <- a parked thread waits here
    code.extend_from_slice(&[0x31, 0xff]); // xor edi, edi
    code.extend_from_slice(&[0xb8, 0xe7, 0, 0, 0]); // mov eax, 231 (SYS_exit_group)
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.push(0xcc); // int3 (not reached)

    let base = STUB_BASE;
    let total = code_off + code.len() as u64;
    let mut b = Vec::with_capacity(total as usize);
    stub_process::elf_headers(&mut b, base, base + code_off, total);
    debug_assert_eq!(b.len() as u64, code_off);
    b.extend_from_slice(&code);
    StubImage {
        bytes: b,
        pad: base + code_off + pad_off,
        pad_trap: base + code_off + pad_off + 3,
        start_trap: base + code_off + start_int3 + 1,
        park: base + code_off + park_off,
    }
}

/// Writes the image into a sealed memfd and returns a read-only fd on it.
pub(super) fn memfd(image: &[u8]) -> SysResult<OwnedFd> {
    stub_process::sealed_memfd(c"rvisor-stub", image)
}

/// Forks and execs a stub; returns its pid once it is in its first ptrace stop (the
/// exec SIGTRAP), traced by the calling thread. `control` becomes fd
/// [`STUB_CONTROL_FD`] in the stub.
pub(super) fn spawn(exe: BorrowedFd<'_>, control: BorrowedFd<'_>) -> SysResult<i32> {
    let exec = ChildExec::new(c"rvisor-stub");
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
            const { assert!(STUB_CONTROL_FD == 0) };
            if libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                stub_process::child_fail(125);
            }
            stub_process::child_exec(&exec, exe)
        }
    }
    Ok(pid)
}
