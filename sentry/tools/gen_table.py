#!/usr/bin/env python3
"""Generates sentry/src/syscalls/table.rs: the x86-64 syscall ABI map.

Names come from the kernel's unistd_64.h (plus numbers newer than the installed
headers); handlers and argument printers from IMPLEMENTED below. Run it again after
adding a handler: python3 sentry/tools/gen_table.py > sentry/src/syscalls/table.rs
"""
import re

NEWER = {451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack", 454: "futex_wake",
         455: "futex_wait", 456: "futex_requeue", 457: "statmount", 458: "listmount",
         459: "lsm_get_self_attr", 460: "lsm_set_self_attr", 461: "lsm_list_modules",
         462: "mseal", 463: "setxattrat", 464: "getxattrat", 465: "listxattrat",
         466: "removexattrat", 467: "open_tree_attr"}

# name: (handler path, [argument kinds])
IMPLEMENTED = {
    "read": ("fs::read", "Fd, OutBuf(2), Uint"),
    "write": ("fs::write", "Fd, InBuf(2), Uint"),
    "open": ("fs::open", "Path, OpenFlags, Oct"),
    "close": ("fs::close", "Fd"),
    "stat": ("fs::stat", "Path, Ptr"),
    "fstat": ("fs::fstat", "Fd, Ptr"),
    "lstat": ("fs::lstat", "Path, Ptr"),
    "lseek": ("fs::lseek", "Fd, Int, Int"),
    "mmap": ("mem::mmap", "Hex, Uint, Prot, MmapFlags, Fd, Hex"),
    "mprotect": ("mem::mprotect", "Hex, Uint, Prot"),
    "munmap": ("mem::munmap", "Hex, Uint"),
    "brk": ("mem::brk", "Hex"),
    "rt_sigaction": ("signal::rt_sigaction", "Signal, Ptr, Ptr, Uint"),
    "rt_sigprocmask": ("signal::rt_sigprocmask", "Int, Ptr, Ptr, Uint"),
    "ioctl": ("fs::ioctl", "Fd, Hex, Hex"),
    "pread64": ("fs::pread64", "Fd, OutBuf(2), Uint, Int"),
    "pwrite64": ("fs::pwrite64", "Fd, InBuf(2), Uint, Int"),
    "readv": ("fs::readv", "Fd, Ptr, Uint"),
    "writev": ("fs::writev", "Fd, Ptr, Uint"),
    "access": ("fs::access", "Path, Oct"),
    "sched_yield": ("process::sched_yield", ""),
    "mremap": ("mem::mremap", "Hex, Uint, Uint, Hex, Hex"),
    "madvise": ("mem::madvise", "Hex, Uint, Int"),
    "dup": ("fs::dup", "Fd"),
    "dup2": ("fs::dup2", "Fd, Fd"),
    "nanosleep": ("time::nanosleep", "Timespec, Ptr"),
    "getpid": ("process::getpid", ""),
    "exit": ("process::exit", "Int"),
    "uname": ("info::uname", "Ptr"),
    "fcntl": ("fs::fcntl", "Fd, Int, Hex"),
    "getcwd": ("fs::getcwd", "Ptr, Uint"),
    "chdir": ("fs::chdir", "Path"),
    "fchdir": ("fs::fchdir", "Fd"),
    "readlink": ("fs::readlink", "Path, Ptr, Uint"),
    "umask": ("fs::umask", "Oct"),
    "gettimeofday": ("time::gettimeofday", "Ptr, Ptr"),
    "getrlimit": ("process::getrlimit", "Int, Ptr"),
    "setrlimit": ("process::setrlimit", "Int, Ptr"),
    "sysinfo": ("info::sysinfo", "Ptr"),
    "getuid": ("process::getuid", ""),
    "getgid": ("process::getgid", ""),
    "geteuid": ("process::geteuid", ""),
    "getegid": ("process::getegid", ""),
    "getppid": ("process::getppid", ""),
    "getgroups": ("process::getgroups", "Int, Ptr"),
    "arch_prctl": ("process::arch_prctl", "Hex, Hex"),
    "init_module": ("process::module_refused", "Ptr, Uint, Ptr"),
    "delete_module": ("process::module_refused", "Ptr, Hex"),
    "finit_module": ("process::module_refused", "Fd, Ptr, Hex"),
    "gettid": ("process::gettid", ""),
    "time": ("time::time", "Ptr"),
    "sched_getaffinity": ("process::sched_getaffinity", "Int, Uint, Ptr"),
    "set_tid_address": ("process::set_tid_address", "Ptr"),
    "getdents64": ("fs::getdents64", "Fd, Ptr, Uint"),
    "clock_gettime": ("time::clock_gettime", "ClockId, Ptr"),
    "clock_getres": ("time::clock_getres", "ClockId, Ptr"),
    "clock_nanosleep": ("time::clock_nanosleep", "ClockId, Hex, Timespec, Ptr"),
    "exit_group": ("process::exit_group", "Int"),
    "openat": ("fs::openat", "AtFd, Path, OpenFlags, Oct"),
    "newfstatat": ("fs::newfstatat", "AtFd, Path, Ptr, Hex"),
    "readlinkat": ("fs::readlinkat", "AtFd, Path, Ptr, Uint"),
    "faccessat": ("fs::faccessat", "AtFd, Path, Oct"),
    "set_robust_list": ("process::set_robust_list", "Ptr, Uint"),
    "dup3": ("fs::dup3", "Fd, Fd, OpenFlags"),
    "preadv": ("fs::preadv", "Fd, Ptr, Uint, Int"),
    "pwritev": ("fs::pwritev", "Fd, Ptr, Uint, Int"),
    "prlimit64": ("process::prlimit64", "Int, Int, Ptr, Ptr"),
    "getrandom": ("info::getrandom", "Ptr, Uint, Hex"),
    "rseq": ("process::rseq", "Ptr, Uint, Hex, Hex"),
    "faccessat2": ("fs::faccessat2", "AtFd, Path, Oct, Hex"),
    "futex": ("futex::futex", "Ptr, Int, Uint, Ptr, Ptr, Hex"),
    "kill": ("signal::kill", "Int, Signal"),
    "tkill": ("signal::tkill", "Int, Signal"),
    "tgkill": ("signal::tgkill", "Int, Int, Signal"),
    "statfs": ("fs::statfs", "Path, Ptr"),
    "fstatfs": ("fs::fstatfs", "Fd, Ptr"),
    "prctl": ("process::prctl", "Int, Hex, Hex, Hex, Hex"),
}

def main():
    nums = {}
    for line in open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"):
        m = re.match(r"#define __NR_(\w+) (\d+)", line)
        if m:
            nums[int(m.group(2))] = m.group(1)
    for k, v in NEWER.items():
        nums.setdefault(k, v)
    missing = set(IMPLEMENTED) - set(nums.values())
    assert not missing, missing
    out = []
    w = out.append
    w("// @generated by sentry/tools/gen_table.py; edit IMPLEMENTED there, not this file.")
    w("//! The x86-64 system call table: number -> name, handler, argument printer.")
    w("//! A number with no handler returns `ENOSYS` and is logged once by name.")
    w("")
    w("use crate::syscalls::strace::Arg::{self, *};")
    w("use crate::syscalls::{fs, futex, info, mem, process, signal, time, Handler};")
    w("")
    w("/// One row of the table.")
    w("pub struct Entry {")
    w("    /// The syscall's name.")
    w("    pub name: &'static str,")
    w("    /// Its handler; `None` means not implemented (ENOSYS).")
    w("    pub handler: Option<Handler>,")
    w("    /// How `--strace` prints each argument.")
    w("    pub args: &'static [Arg],")
    w("}")
    w("")
    w(f"/// One past the highest syscall number the table knows.")
    w(f"pub const MAX_NR: u64 = {max(nums) + 1};")
    w("")
    w("/// The row for `nr`, `None` for a number Linux does not define.")
    w("pub fn entry(nr: u64) -> Option<&'static Entry> {")
    w("    let e: &'static Entry = match nr {")
    for nr in sorted(nums):
        name = nums[nr]
        if name in IMPLEMENTED:
            h, args = IMPLEMENTED[name]
            w(f'        {nr} => &Entry {{ name: "{name}", handler: Some({h}), args: &[{args}] }},')
        else:
            w(f'        {nr} => &Entry {{ name: "{name}", handler: None, args: &[Hex, Hex, Hex, Hex, Hex, Hex] }},')
    w("        _ => return None,")
    w("    };")
    w("    Some(e)")
    w("}")
    w("")
    w("#[cfg(test)]")
    w("mod tests {")
    w("    use super::*;")
    w("")
    w("    #[test]")
    w("    fn rows() {")
    w('        assert_eq!(entry(39).map(|e| e.name), Some("getpid"));')
    w('        assert!(entry(0).and_then(|e| e.handler).is_some());')
    w('        assert!(entry(175).and_then(|e| e.handler).is_some(), "init_module refuses explicitly");')
    w('        assert!(entry(100_000).is_none());')
    w('        assert!(entry(MAX_NR - 1).is_some());')
    w("    }")
    w("}")
    print("\n".join(out))

main()
