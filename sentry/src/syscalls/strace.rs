//! `--strace`: one line per syscall with its name, decoded arguments and result,
//! written as it completes, e.g.
//! `[   1:   1] cat openat(AT_FDCWD, "/etc/hostname", O_RDONLY|O_CLOEXEC) = 3`.

use std::fmt::Write;

use crate::errno::SysResult;
use crate::kernel::Task;
use crate::mm::io;
use crate::syscalls::table::Entry;
use crate::syscalls::Args;

/// How one argument is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal.
    Int,
    /// Unsigned decimal.
    Uint,
    /// Hexadecimal.
    Hex,
    /// Octal (modes).
    Oct,
    /// A file descriptor.
    Fd,
    /// A directory fd of an `*at` call (`AT_FDCWD` by name).
    AtFd,
    /// A NUL-terminated path in app memory.
    Path,
    /// A buffer the app passes in; its length is argument `n`.
    InBuf(usize),
    /// A buffer the kernel fills; the result is its length.
    OutBuf(usize),
    /// An address.
    Ptr,
    /// `open(2)` flags.
    OpenFlags,
    /// `PROT_*`.
    Prot,
    /// `MAP_*`.
    MmapFlags,
    /// A signal number.
    Signal,
    /// A clock id.
    ClockId,
    /// A pointer to a `struct timespec`.
    Timespec,
}

/// Bytes of a buffer shown before "...".
const BUF_SHOWN: usize = 64;

fn quote(bytes: &[u8], truncated: bool) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if truncated {
        s.push_str("...");
    }
    s
}

fn flags(v: u64, names: &[(u64, &str)], zero: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = v;
    for &(bit, name) in names {
        if bit != 0 && rest & bit == bit {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        zero.to_string()
    } else {
        parts.join("|")
    }
}

fn open_flags(v: u64) -> String {
    let acc = match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = flags(
        v & !3,
        &[
            (libc::O_CREAT as u64, "O_CREAT"),
            (libc::O_EXCL as u64, "O_EXCL"),
            (libc::O_NOCTTY as u64, "O_NOCTTY"),
            (libc::O_TRUNC as u64, "O_TRUNC"),
            (libc::O_APPEND as u64, "O_APPEND"),
            (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
            (libc::O_DSYNC as u64, "O_DSYNC"),
            (libc::O_DIRECT as u64, "O_DIRECT"),
            (libc::O_LARGEFILE as u64, "O_LARGEFILE"),
            (libc::O_TMPFILE as u64, "O_TMPFILE"),
            (libc::O_DIRECTORY as u64, "O_DIRECTORY"),
            (libc::O_NOFOLLOW as u64, "O_NOFOLLOW"),
            (libc::O_NOATIME as u64, "O_NOATIME"),
            (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
            (libc::O_PATH as u64, "O_PATH"),
        ],
        "",
    );
    if rest.is_empty() {
        acc.to_string()
    } else {
        format!("{acc}|{rest}")
    }
}

fn signal_name(n: u64) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match n {
        1..=31 => NAMES[n as usize - 1].to_string(),
        32..=64 => format!("SIGRT{}", n - 32),
        _ => n.to_string(),
    }
}

fn clock_name(n: u64) -> String {
    const NAMES: [&str; 12] = [
        "CLOCK_REALTIME",
        "CLOCK_MONOTONIC",
        "CLOCK_PROCESS_CPUTIME_ID",
        "CLOCK_THREAD_CPUTIME_ID",
        "CLOCK_MONOTONIC_RAW",
        "CLOCK_REALTIME_COARSE",
        "CLOCK_MONOTONIC_COARSE",
        "CLOCK_BOOTTIME",
        "CLOCK_REALTIME_ALARM",
        "CLOCK_BOOTTIME_ALARM",
        "10",
        "CLOCK_TAI",
    ];
    NAMES
        .get(n as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| (n as i32).to_string())
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".into()
    } else {
        format!("{v:#x}")
    }
}

fn show_buf(task: &Task, addr: u64, len: u64) -> String {
    let n = (len as usize).min(BUF_SHOWN);
    let mut b = vec![0u8; n];
    match io::read_exact(task.mem(), addr, &mut b) {
        Ok(()) => quote(&b, len as usize > n),
        Err(_) => ptr(addr),
    }
}

fn format_arg(task: &Task, kind: Arg, args: &Args, i: usize, result: &SysResult<u64>) -> String {
    let v = args[i];
    match kind {
        Arg::Int => (v as i64).to_string(),
        Arg::Uint => v.to_string(),
        Arg::Hex => format!("{v:#x}"),
        Arg::Oct => format!("{v:#o}"),
        Arg::Fd => (v as i32).to_string(),
        Arg::AtFd if v as i32 == libc::AT_FDCWD => "AT_FDCWD".into(),
        Arg::AtFd => (v as i32).to_string(),
        Arg::Path => match io::read_cstring(task.mem(), v, 4095) {
            Ok(p) => quote(&p, false),
            Err(_) => ptr(v),
        },
        Arg::InBuf(n) => show_buf(task, v, args[n]),
        Arg::OutBuf(_) => match result {
            Ok(n) if *n > 0 => show_buf(task, v, *n),
            _ => ptr(v),
        },
        Arg::Ptr => ptr(v),
        Arg::OpenFlags => open_flags(v),
        Arg::Prot => flags(
            v,
            &[
                (1, "PROT_READ"),
                (2, "PROT_WRITE"),
                (4, "PROT_EXEC"),
                (0x0100_0000, "PROT_GROWSDOWN"),
            ],
            "PROT_NONE",
        ),
        Arg::MmapFlags => flags(
            v,
            &[
                (0x01, "MAP_SHARED"),
                (0x02, "MAP_PRIVATE"),
                (0x10, "MAP_FIXED"),
                (0x20, "MAP_ANONYMOUS"),
                (0x100, "MAP_GROWSDOWN"),
                (0x800, "MAP_DENYWRITE"),
                (0x4000, "MAP_NORESERVE"),
                (0x8000, "MAP_POPULATE"),
                (0x20000, "MAP_STACK"),
                (0x100000, "MAP_FIXED_NOREPLACE"),
            ],
            "0",
        ),
        Arg::Signal => signal_name(v),
        Arg::ClockId => clock_name(v),
        Arg::Timespec => match io::read_struct::<libc::timespec>(task.mem(), v) {
            Ok(ts) => format!("{{tv_sec={}, tv_nsec={}}}", ts.tv_sec, ts.tv_nsec),
            Err(_) => ptr(v),
        },
    }
}

/// Prints the line for a finished syscall.
pub fn log(task: &Task, nr: u64, entry: Option<&Entry>, args: &Args, result: &SysResult<u64>) {
    let mut line = format!(
        "[{:4}:{:4}] {} ",
        task.tgid,
        task.tid,
        String::from_utf8_lossy(&task.comm())
    );
    let kinds: &[Arg] = entry.map(|e| e.args).unwrap_or(&[]);
    match entry {
        Some(e) => line.push_str(e.name),
        None => {
            let _ = write!(line, "syscall_{nr}");
        }
    }
    line.push('(');
    for (i, k) in kinds.iter().enumerate().take(6) {
        if i > 0 {
            line.push_str(", ");
        }
        line.push_str(&format_arg(task, *k, args, i, result));
    }
    line.push_str(") = ");
    match result {
        Ok(v) => {
            if matches!(entry.map(|e| e.name), Some("mmap" | "brk" | "mremap")) {
                let _ = write!(line, "{v:#x}");
            } else {
                let _ = write!(line, "{}", *v as i64);
            }
        }
        Err(e) => {
            let _ = write!(line, "-1 {} ({})", e.name(), e.description());
        }
    }
    tracing::info!(target: "strace", "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(
            open_flags((libc::O_RDONLY | libc::O_CLOEXEC) as u64),
            "O_RDONLY|O_CLOEXEC"
        );
        assert_eq!(open_flags(libc::O_WRONLY as u64), "O_WRONLY");
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(34), "SIGRT2");
        assert_eq!(clock_name(1), "CLOCK_MONOTONIC");
        assert_eq!(quote(b"a\"b\n\x01", true), "\"a\\\"b\\n\\x01\"...");
        assert_eq!(flags(0, &[(1, "A")], "NONE"), "NONE");
        assert_eq!(flags(0x11, &[(1, "A")], "NONE"), "A|0x10");
    }
}
