//! The one error type of the sentry: a Linux errno.
//!
//! Handlers return `Result<_, Errno>`; the syscall layer turns an `Errno` into the
//! negative return value the application sees.
//!
//! Every errno is written once, in the `errnos!` list below (name, number, the kernel's
//! message); the constants, `name()` and `description()` are generated from it, and a test
//! checks each Linux number against the host C library's.

use std::fmt;

/// A Linux error number (always positive inside the sentry).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Generates the constants, `name()`, `description()` and the libc cross-check from one
/// list. `linux` rows are the numbers applications can see (checked against `libc`);
/// `internal` rows are the kernel's restart codes, which never reach an application.
macro_rules! errnos {
    (
        linux { $($name:ident = $num:literal, $msg:literal;)* }
        internal { $($iname:ident = $inum:literal, $imsg:literal;)* }
    ) => {
        #[allow(missing_docs)]
        impl Errno {
            $(
                #[doc = $msg]
                pub const $name: Errno = Errno($num);
            )*
            $(
                #[doc = $imsg]
                pub const $iname: Errno = Errno($inum);
            )*

            /// The symbolic name, as in `errno.h` (`E?` for a number Linux does not define).
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($num => stringify!($name),)*
                    $($inum => stringify!($iname),)*
                    _ => "E?",
                }
            }

            /// The kernel's one-line message for the number.
            pub fn description(self) -> &'static str {
                match self.0 {
                    $($num => $msg,)*
                    $($inum => $imsg,)*
                    _ => "Unknown error",
                }
            }

            /// True for the internal restart codes that an application must never see.
            pub fn is_restart(self) -> bool {
                matches!(self.0, $($inum)|*)
            }
        }

        #[cfg(test)]
        mod numbers {
            /// Each Linux row's number is the host C library's for the same name.
            #[test]
            fn linux_rows_match_libc() {
                $(assert_eq!(super::Errno::$name.0, libc::$name, stringify!($name));)*
            }
        }
    };
}

errnos! {
    linux {
        EPERM = 1, "Operation not permitted";
        ENOENT = 2, "No such file or directory";
        ESRCH = 3, "No such process";
        EINTR = 4, "Interrupted system call";
        EIO = 5, "I/O error";
        ENXIO = 6, "No such device or address";
        E2BIG = 7, "Argument list too long";
        ENOEXEC = 8, "Exec format error";
        EBADF = 9, "Bad file number";
        ECHILD = 10, "No child processes";
        EAGAIN = 11, "Try again";
        ENOMEM = 12, "Out of memory";
        EACCES = 13, "Permission denied";
        EFAULT = 14, "Bad address";
        ENOTBLK = 15, "Block device required";
        EBUSY = 16, "Device or resource busy";
        EEXIST = 17, "File exists";
        EXDEV = 18, "Cross-device link";
        ENODEV = 19, "No such device";
        ENOTDIR = 20, "Not a directory";
        EISDIR = 21, "Is a directory";
        EINVAL = 22, "Invalid argument";
        ENFILE = 23, "File table overflow";
        EMFILE = 24, "Too many open files";
        ENOTTY = 25, "Not a typewriter";
        ETXTBSY = 26, "Text file busy";
        EFBIG = 27, "File too large";
        ENOSPC = 28, "No space left on device";
        ESPIPE = 29, "Illegal seek";
        EROFS = 30, "Read-only file system";
        EMLINK = 31, "Too many links";
        EPIPE = 32, "Broken pipe";
        EDOM = 33, "Math argument out of domain of func";
        ERANGE = 34, "Math result not representable";
        EDEADLK = 35, "Resource deadlock would occur";
        ENAMETOOLONG = 36, "File name too long";
        ENOLCK = 37, "No record locks available";
        ENOSYS = 38, "Invalid system call number";
        ENOTEMPTY = 39, "Directory not empty";
        ELOOP = 40, "Too many symbolic links encountered";
        ENOMSG = 42, "No message of desired type";
        EIDRM = 43, "Identifier removed";
        ECHRNG = 44, "Channel number out of range";
        EL2NSYNC = 45, "Level 2 not synchronized";
        EL3HLT = 46, "Level 3 halted";
        EL3RST = 47, "Level 3 reset";
        ELNRNG = 48, "Link number out of range";
        EUNATCH = 49, "Protocol driver not attached";
        ENOCSI = 50, "No CSI structure available";
        EL2HLT = 51, "Level 2 halted";
        EBADE = 52, "Invalid exchange";
        EBADR = 53, "Invalid request descriptor";
        EXFULL = 54, "Exchange full";
        ENOANO = 55, "No anode";
        EBADRQC = 56, "Invalid request code";
        EBADSLT = 57, "Invalid slot";
        EBFONT = 59, "Bad font file format";
        ENOSTR = 60, "Device not a stream";
        ENODATA = 61, "No data available";
        ETIME = 62, "Timer expired";
        ENOSR = 63, "Out of streams resources";
        ENONET = 64, "Machine is not on the network";
        ENOPKG = 65, "Package not installed";
        EREMOTE = 66, "Object is remote";
        ENOLINK = 67, "Link has been severed";
        EADV = 68, "Advertise error";
        ESRMNT = 69, "Srmount error";
        ECOMM = 70, "Communication error on send";
        EPROTO = 71, "Protocol error";
        EMULTIHOP = 72, "Multihop attempted";
        EDOTDOT = 73, "RFS specific error";
        EBADMSG = 74, "Not a data message";
        EOVERFLOW = 75, "Value too large for defined data type";
        ENOTUNIQ = 76, "Name not unique on network";
        EBADFD = 77, "File descriptor in bad state";
        EREMCHG = 78, "Remote address changed";
        ELIBACC = 79, "Can not access a needed shared library";
        ELIBBAD = 80, "Accessing a corrupted shared library";
        ELIBSCN = 81, ".lib section in a.out corrupted";
        ELIBMAX = 82, "Attempting to link in too many shared libraries";
        ELIBEXEC = 83, "Cannot exec a shared library directly";
        EILSEQ = 84, "Illegal byte sequence";
        ERESTART = 85, "Interrupted system call should be restarted";
        ESTRPIPE = 86, "Streams pipe error";
        EUSERS = 87, "Too many users";
        ENOTSOCK = 88, "Socket operation on non-socket";
        EDESTADDRREQ = 89, "Destination address required";
        EMSGSIZE = 90, "Message too long";
        EPROTOTYPE = 91, "Protocol wrong type for socket";
        ENOPROTOOPT = 92, "Protocol not available";
        EPROTONOSUPPORT = 93, "Protocol not supported";
        ESOCKTNOSUPPORT = 94, "Socket type not supported";
        EOPNOTSUPP = 95, "Operation not supported on transport endpoint";
        EPFNOSUPPORT = 96, "Protocol family not supported";
        EAFNOSUPPORT = 97, "Address family not supported by protocol";
        EADDRINUSE = 98, "Address already in use";
        EADDRNOTAVAIL = 99, "Cannot assign requested address";
        ENETDOWN = 100, "Network is down";
        ENETUNREACH = 101, "Network is unreachable";
        ENETRESET = 102, "Network dropped connection because of reset";
        ECONNABORTED = 103, "Software caused connection abort";
        ECONNRESET = 104, "Connection reset by peer";
        ENOBUFS = 105, "No buffer space available";
        EISCONN = 106, "Transport endpoint is already connected";
        ENOTCONN = 107, "Transport endpoint is not connected";
        ESHUTDOWN = 108, "Cannot send after transport endpoint shutdown";
        ETOOMANYREFS = 109, "Too many references: cannot splice";
        ETIMEDOUT = 110, "Connection timed out";
        ECONNREFUSED = 111, "Connection refused";
        EHOSTDOWN = 112, "Host is down";
        EHOSTUNREACH = 113, "No route to host";
        EALREADY = 114, "Operation already in progress";
        EINPROGRESS = 115, "Operation now in progress";
        ESTALE = 116, "Stale file handle";
        EUCLEAN = 117, "Structure needs cleaning";
        ENOTNAM = 118, "Not a XENIX named type file";
        ENAVAIL = 119, "No XENIX semaphores available";
        EISNAM = 120, "Is a named type file";
        EREMOTEIO = 121, "Remote I/O error";
        EDQUOT = 122, "Quota exceeded";
        ENOMEDIUM = 123, "No medium found";
        EMEDIUMTYPE = 124, "Wrong medium type";
        ECANCELED = 125, "Operation Canceled";
        ENOKEY = 126, "Required key not available";
        EKEYEXPIRED = 127, "Key has expired";
        EKEYREVOKED = 128, "Key has been revoked";
        EKEYREJECTED = 129, "Key was rejected by service";
        EOWNERDEAD = 130, "Owner died";
        ENOTRECOVERABLE = 131, "State not recoverable";
        ERFKILL = 132, "Operation not possible due to RF-kill";
        EHWPOISON = 133, "Memory page has hardware error";
    }
    internal {
        ERESTARTSYS = 512, "Internal: restart the syscall if the handler has SA_RESTART (never seen by apps).";
        ERESTARTNOINTR = 513, "Internal: restart the syscall unless a handler ran.";
        ERESTARTNOHAND = 514, "Internal: restart if no handler is run.";
        ERESTART_RESTARTBLOCK = 516, "Internal: restart through restart_syscall(2).";
    }
}

impl Errno {
    /// The errno of the last failed host call on this thread.
    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// The value a syscall returns to the application for this error.
    pub fn as_return(self) -> u64 {
        (-(self.0 as i64)) as u64
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

impl std::error::Error for Errno {}

impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Self {
        Errno(e as i32)
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The result type of everything inside the sentry.
pub type SysResult<T> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_returns() {
        assert_eq!(Errno::ENOENT.name(), "ENOENT");
        assert_eq!(Errno::ENOSYS.as_return() as i64, -38);
        assert!(Errno::ERESTARTSYS.is_restart());
        assert!(!Errno::EINTR.is_restart());
    }
}
