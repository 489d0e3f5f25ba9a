//! `#!` scripts: parsing the interpreter line with Linux's rules.
//!
//! Only the first [`SHEBANG_BUF`] bytes of the file count (the rest of a longer line
//! is cut off). After `#!`, spaces and tabs are skipped; the interpreter path runs to
//! the next space, tab or NUL; everything after the following spaces and tabs, up to
//! the end of the line with trailing spaces and tabs removed, is the one optional
//! argument (cut at a NUL). A line that fills the whole buffer is accepted only if the
//! interpreter path visibly ends inside it; otherwise the path may have been truncated
//! and the file is not executable.

use crate::errno::{Errno, SysResult};

/// How many bytes of the file the interpreter line is taken from (Linux's
/// `BINPRM_BUF_SIZE`); the last one is treated as an end of string.
pub const SHEBANG_BUF: usize = 256;

/// A parsed `#!` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter path.
    pub interp: Vec<u8>,
    /// The optional single argument.
    pub arg: Option<Vec<u8>>,
}

fn spacetab(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn terminator(b: u8) -> bool {
    spacetab(b) || b == 0
}

/// Whether the file starting with `head` is a `#!` script.
pub fn is_script(head: &[u8]) -> bool {
    head.starts_with(b"#!")
}

/// Parses the `#!` line at the start of `head` (the first bytes of the file; more than
/// [`SHEBANG_BUF`] are ignored). `ENOEXEC` if it is not a script or names no
/// interpreter.
pub fn parse_shebang(head: &[u8]) -> SysResult<Shebang> {
    if !is_script(head) {
        return Err(Errno::ENOEXEC);
    }
    // Bytes past the end of a short file read as NUL, as in Linux's zeroed buffer;
    // the last byte always ends the string.
    let mut buf = [0u8; SHEBANG_BUF];
    let n = head.len().min(SHEBANG_BUF);
    buf[..n].copy_from_slice(&head[..n]);
    let limit = SHEBANG_BUF - 1;

    let end = match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => nl,
        None => {
            let name = (2..limit)
                .find(|&i| !spacetab(buf[i]))
                .ok_or(Errno::ENOEXEC)?;
            if !(name..limit).any(|i| terminator(buf[i])) {
                return Err(Errno::ENOEXEC);
            }
            limit
        }
    };
    let mut end = end.max(2);
    while end > 2 && spacetab(buf[end - 1]) {
        end -= 1;
    }
    let line = &buf[2..end];
    let name_start = line
        .iter()
        .position(|&b| !spacetab(b))
        .ok_or(Errno::ENOEXEC)?;
    let rest = &line[name_start..];
    let name_len = rest
        .iter()
        .position(|&b| terminator(b))
        .unwrap_or(rest.len());
    if name_len == 0 {
        return Err(Errno::ENOEXEC);
    }
    let interp = rest[..name_len].to_vec();
    let arg = match rest.get(name_len) {
        Some(&sep) if spacetab(sep) => {
            let after = &rest[name_len..];
            after.iter().position(|&b| !spacetab(b)).map(|s| {
                let a = &after[s..];
                a[..a.iter().position(|&b| b == 0).unwrap_or(a.len())].to_vec()
            })
        }
        _ => None,
    };
    Ok(Shebang { interp, arg })
}

impl Shebang {
    /// The argv the interpreter is run with: `[interp, arg?, script, argv[1..]]`,
    /// where `script` is the path the script was exec'd by.
    pub fn argv(&self, script: &[u8], orig_argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(orig_argv.len() + 2);
        out.push(self.interp.clone());
        if let Some(a) = &self.arg {
            out.push(a.clone());
        }
        out.push(script.to_vec());
        out.extend(orig_argv.iter().skip(1).cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> SysResult<(String, Option<String>)> {
        parse_shebang(s).map(|sb| {
            (
                String::from_utf8_lossy(&sb.interp).into_owned(),
                sb.arg.map(|a| String::from_utf8_lossy(&a).into_owned()),
            )
        })
    }

    fn ok(i: &str, a: Option<&str>) -> SysResult<(String, Option<String>)> {
        Ok((i.to_string(), a.map(str::to_string)))
    }

    #[test]
    fn simple_lines() {
        assert_eq!(p(b"#!/bin/sh\necho hi\n"), ok("/bin/sh", None));
        assert_eq!(p(b"#! /bin/sh\n"), ok("/bin/sh", None));
        assert_eq!(
            p(b"#!\t /usr/bin/env python3 \t\nx"),
            ok("/usr/bin/env", Some("python3"))
        );
        assert_eq!(p(b"#!/bin/sh"), ok("/bin/sh", None));
        assert_eq!(p(b"#!/bin/sh \n"), ok("/bin/sh", None));
    }

    #[test]
    fn one_argument_is_the_rest_of_the_line() {
        assert_eq!(
            p(b"#!/usr/bin/awk -f  -x y  \n"),
            ok("/usr/bin/awk", Some("-f  -x y"))
        );
        assert_eq!(p(b"#!/bin/sh\t-e\n"), ok("/bin/sh", Some("-e")));
        // A NUL ends the interpreter (no argument) or cuts the argument.
        assert_eq!(p(b"#!/bin/sh\0 -e\n"), ok("/bin/sh", None));
        assert_eq!(p(b"#!/bin/sh -e\0junk\n"), ok("/bin/sh", Some("-e")));
        // CR is not whitespace here.
        assert_eq!(p(b"#!/bin/sh\r\n"), ok("/bin/sh\r", None));
    }

    #[test]
    fn not_scripts_or_no_interpreter() {
        assert_eq!(p(b"\x7fELF"), Err(Errno::ENOEXEC));
        assert_eq!(p(b"#"), Err(Errno::ENOEXEC));
        assert_eq!(p(b""), Err(Errno::ENOEXEC));
        assert_eq!(p(b"#!"), Err(Errno::ENOEXEC));
        assert_eq!(p(b"#!\n/bin/sh\n"), Err(Errno::ENOEXEC));
        assert_eq!(p(b"#!   \t\n"), Err(Errno::ENOEXEC));
        assert_eq!(p(b"#!\0/bin/sh\n"), Err(Errno::ENOEXEC));
        assert!(!is_script(b" #!/bin/sh"));
    }

    #[test]
    fn long_lines() {
        // The newline beyond the buffer does not count; the interpreter ends inside it.
        let mut l = b"#!/bin/sh ".to_vec();
        l.extend(std::iter::repeat_n(b'a', 400));
        l.push(b'\n');
        let (i, a) = p(&l).unwrap();
        assert_eq!(i, "/bin/sh");
        // The argument is cut at the buffer's last byte.
        assert_eq!(a.unwrap().len(), SHEBANG_BUF - 1 - "#!/bin/sh ".len());
        // An interpreter path filling the buffer may be truncated: refused.
        let mut l = b"#!/".to_vec();
        l.extend(std::iter::repeat_n(b'b', 400));
        assert_eq!(p(&l), Err(Errno::ENOEXEC));
        // So is one running right up to the buffer's last byte, but one that leaves
        // room for a terminator inside the buffer is fine.
        let mut l = b"#!".to_vec();
        l.extend(std::iter::repeat_n(b'c', SHEBANG_BUF - 2));
        assert_eq!(p(&l), Err(Errno::ENOEXEC));
        let mut l = b"#!".to_vec();
        l.extend(std::iter::repeat_n(b'c', SHEBANG_BUF - 4));
        l.push(b' ');
        l.extend(b"xyz");
        assert_eq!(p(&l).unwrap().0.len(), SHEBANG_BUF - 4);
        // A whole buffer of blanks names nothing.
        let mut l = b"#!".to_vec();
        l.extend(std::iter::repeat_n(b' ', 300));
        assert_eq!(p(&l), Err(Errno::ENOEXEC));
        // Short file, no newline: the zero padding ends the path.
        assert_eq!(p(b"#!/bin/true"), ok("/bin/true", None));
    }

    #[test]
    fn argv_rewrite() {
        let v = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        let sb = parse_shebang(b"#!/usr/bin/env python3\n").unwrap();
        assert_eq!(
            sb.argv(b"./s.py", &v(&["s.py", "a", "b"])),
            v(&["/usr/bin/env", "python3", "./s.py", "a", "b"])
        );
        let sb = parse_shebang(b"#!/bin/sh\n").unwrap();
        assert_eq!(sb.argv(b"/x", &[]), v(&["/bin/sh", "/x"]));
        assert_eq!(sb.argv(b"/x", &v(&["zero"])), v(&["/bin/sh", "/x"]));
    }
}
