//! Path resolution, done entirely in the sentry: symlinks are read and followed here
//! (at most [`MAX_SYMLINKS`] per resolution), and `..` never climbs above the task's
//! root. The gofer only ever sees single components.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::creds::Credentials;
use crate::errno::{Errno, SysResult};
use crate::vfs::perm;
use crate::vfs::{Dentry, FsContext, MAX_SYMLINKS, NAME_MAX, PATH_MAX};

/// How the last component is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Follow a final symlink (`stat`, `open` without `O_NOFOLLOW`).
    Yes,
    /// Return a final symlink itself (`lstat`, `readlink`, `O_NOFOLLOW`).
    No,
}

fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect()
}

/// `openat2` `RESOLVE_*` flags.
pub mod resolve_flags {
    pub use abi::resolve::{
        RESOLVE_BENEATH as BENEATH, RESOLVE_CACHED as CACHED, RESOLVE_IN_ROOT as IN_ROOT,
        RESOLVE_NO_MAGICLINKS as NO_MAGICLINKS, RESOLVE_NO_SYMLINKS as NO_SYMLINKS,
        RESOLVE_NO_XDEV as NO_XDEV,
    };
    // CACHED: the sentry always may do I/O, so `EAGAIN` is never needed.
    /// Every flag Linux knows.
    pub const ALL: u64 = 0x3f;
}

/// How a walk is done, beyond which symlink to follow.
#[derive(Clone, Copy, Default)]
pub struct WalkOpts<'a> {
    /// Check search (execute) permission on every directory walked through.
    pub creds: Option<&'a Credentials>,
    /// `RESOLVE_*` flags.
    pub resolve: u64,
}

/// Resolves `path` from `start` (used when the path is relative) within `fs`.
pub fn resolve(
    fs: &FsContext,
    start: &Arc<Dentry>,
    path: &[u8],
    follow: Follow,
) -> SysResult<Arc<Dentry>> {
    walk(fs, start, path, follow, WalkOpts::default())
}

fn may_search(opts: &WalkOpts<'_>, d: &Dentry) -> SysResult<()> {
    if let Some(c) = opts.creds {
        perm::check_on(c, &d.inode().stat()?, &**d.inode(), perm::MAY_EXEC, false)?;
    }
    Ok(())
}

/// [`resolve`] with permission checks and `RESOLVE_*` flags.
pub fn walk(
    fs: &FsContext,
    start: &Arc<Dentry>,
    path: &[u8],
    follow: Follow,
    opts: WalkOpts<'_>,
) -> SysResult<Arc<Dentry>> {
    use resolve_flags::*;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let beneath = opts.resolve & BENEATH != 0;
    let root = if opts.resolve & IN_ROOT != 0 {
        start.clone()
    } else {
        fs.root.clone()
    };
    let trailing_slash = path.ends_with(b"/");
    let mut cur = if path[0] == b'/' {
        if beneath {
            return Err(Errno::EXDEV);
        }
        root.clone()
    } else {
        start.clone()
    };
    let mut todo = split(path);
    let mut links = 0u32;
    while let Some(name) = todo.pop_front() {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if !cur.inode().stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        may_search(&opts, &cur)?;
        if name == b"." {
            continue;
        }
        if name == b".." {
            if beneath && Arc::ptr_eq(&cur, start) {
                return Err(Errno::EXDEV);
            }
            let up = cur.up(&root);
            if opts.resolve & NO_XDEV != 0 && !Arc::ptr_eq(up.mount(), cur.mount()) {
                return Err(Errno::EXDEV);
            }
            cur = up;
            continue;
        }
        let child = cur.child(&name)?;
        let crossed = child.cross_mounts();
        if opts.resolve & NO_XDEV != 0 && !Arc::ptr_eq(&crossed, &child) {
            return Err(Errno::EXDEV);
        }
        let child = crossed;
        let last = todo.is_empty();
        let st = child.inode().stat()?;
        if st.is_symlink() && (!last || follow == Follow::Yes || trailing_slash) {
            if opts.resolve & NO_SYMLINKS != 0 {
                return Err(Errno::ELOOP);
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            if let Some(magic) = child.inode().magic_target() {
                if opts.resolve & NO_MAGICLINKS != 0 {
                    return Err(Errno::ELOOP);
                }
                // A pathless object: nothing can be walked below it.
                cur = cur.orphan(magic?);
                continue;
            }
            let target = child.inode().readlink()?;
            if target.is_empty() {
                return Err(Errno::ENOENT);
            }
            if target[0] == b'/' {
                if beneath {
                    return Err(Errno::EXDEV);
                }
                cur = root.clone();
            }
            let mut parts = split(&target);
            parts.extend(todo);
            todo = parts;
            continue;
        }
        cur = child;
    }
    if trailing_slash && !cur.inode().stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok(cur)
}

/// Resolves all but the last component of `path`, for calls that create or remove
/// the last one. Returns the parent directory and the final name (which may be "."
/// or ".."; callers reject those as Linux does for their operation).
pub fn resolve_parent(
    fs: &FsContext,
    start: &Arc<Dentry>,
    path: &[u8],
) -> SysResult<(Arc<Dentry>, Vec<u8>)> {
    walk_parent(fs, start, path, WalkOpts::default())
}

/// [`resolve_parent`] with permission checks and `RESOLVE_*` flags.
pub fn walk_parent(
    fs: &FsContext,
    start: &Arc<Dentry>,
    path: &[u8],
    opts: WalkOpts<'_>,
) -> SysResult<(Arc<Dentry>, Vec<u8>)> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let trimmed = {
        let mut p = path;
        while p.len() > 1 && p.ends_with(b"/") {
            p = &p[..p.len() - 1];
        }
        p
    };
    let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b"."[..], trimmed),
    };
    let name = if name.is_empty() {
        b".".to_vec()
    } else {
        name.to_vec()
    };
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let parent = walk(fs, start, dir, Follow::Yes, opts)?;
    if !parent.inode().stat()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    may_search(&opts, &parent)?;
    Ok((parent, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{FileImpl, Inode, Stat};
    use std::collections::HashMap;

    /// A tiny in-memory tree: directories map names to nodes, symlinks hold targets.
    enum Node {
        Dir(HashMap<Vec<u8>, Arc<TestInode>>),
        Link(Vec<u8>),
        File,
    }
    struct TestInode {
        ino: u64,
        node: Node,
    }
    impl Inode for TestInode {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn stat(&self) -> SysResult<Stat> {
            let mode = match self.node {
                Node::Dir(_) => libc::S_IFDIR | 0o755,
                Node::Link(_) => libc::S_IFLNK | 0o777,
                Node::File => libc::S_IFREG | 0o644,
            };
            Ok(Stat {
                ino: self.ino,
                mode,
                ..Default::default()
            })
        }
        fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
            match &self.node {
                Node::Dir(m) => m
                    .get(name)
                    .map(|i| i.clone() as Arc<dyn Inode>)
                    .ok_or(Errno::ENOENT),
                _ => Err(Errno::ENOTDIR),
            }
        }
        fn readlink(&self) -> SysResult<Vec<u8>> {
            match &self.node {
                Node::Link(t) => Ok(t.clone()),
                _ => Err(Errno::EINVAL),
            }
        }
        fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
            Err(Errno::ENXIO)
        }
    }

    fn tree() -> FsContext {
        let file = Arc::new(TestInode {
            ino: 3,
            node: Node::File,
        });
        let mut sub = HashMap::new();
        sub.insert(b"f".to_vec(), file.clone());
        sub.insert(
            b"up".to_vec(),
            Arc::new(TestInode {
                ino: 5,
                node: Node::Link(b"../../../..".to_vec()),
            }),
        );
        sub.insert(
            b"abs".to_vec(),
            Arc::new(TestInode {
                ino: 6,
                node: Node::Link(b"/d/f".to_vec()),
            }),
        );
        sub.insert(
            b"loop".to_vec(),
            Arc::new(TestInode {
                ino: 7,
                node: Node::Link(b"loop".to_vec()),
            }),
        );
        sub.insert(
            b"dangling".to_vec(),
            Arc::new(TestInode {
                ino: 8,
                node: Node::Link(b"nothere".to_vec()),
            }),
        );
        let d = Arc::new(TestInode {
            ino: 2,
            node: Node::Dir(sub),
        });
        let mut top = HashMap::new();
        top.insert(b"d".to_vec(), d);
        let root = Dentry::new_root(Arc::new(TestInode {
            ino: 1,
            node: Node::Dir(top),
        }));
        FsContext {
            root: root.clone(),
            cwd: root,
            umask: 0o022,
        }
    }

    fn ino(fs: &FsContext, p: &str, f: Follow) -> SysResult<u64> {
        Ok(resolve(fs, &fs.cwd, p.as_bytes(), f)?.inode().stat()?.ino)
    }

    #[test]
    fn walks_and_symlinks() {
        let fs = tree();
        assert_eq!(ino(&fs, "/d/f", Follow::Yes).unwrap(), 3);
        assert_eq!(ino(&fs, "d/./f", Follow::Yes).unwrap(), 3);
        assert_eq!(ino(&fs, "/../../d/../d/f", Follow::Yes).unwrap(), 3);
        assert_eq!(
            ino(&fs, "/d/up", Follow::Yes).unwrap(),
            1,
            "`..` stops at the root"
        );
        assert_eq!(ino(&fs, "/d/up/d/abs", Follow::Yes).unwrap(), 3);
        assert_eq!(ino(&fs, "/d/abs", Follow::No).unwrap(), 6);
        assert_eq!(ino(&fs, "/d/loop", Follow::Yes).unwrap_err(), Errno::ELOOP);
        assert_eq!(ino(&fs, "/d/loop", Follow::No).unwrap(), 7);
        assert_eq!(
            ino(&fs, "/d/dangling", Follow::Yes).unwrap_err(),
            Errno::ENOENT
        );
        assert_eq!(ino(&fs, "/d/f/x", Follow::Yes).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(ino(&fs, "/d/f/", Follow::Yes).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(ino(&fs, "/d/f/.", Follow::Yes).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(ino(&fs, "", Follow::Yes).unwrap_err(), Errno::ENOENT);
        let long = format!("/{}", "a".repeat(256));
        assert_eq!(
            ino(&fs, &long, Follow::Yes).unwrap_err(),
            Errno::ENAMETOOLONG
        );
        let huge = "/d".repeat(3000);
        assert_eq!(
            ino(&fs, &huge, Follow::Yes).unwrap_err(),
            Errno::ENAMETOOLONG
        );
        let d = resolve(&fs, &fs.cwd, b"/d/up/d/f", Follow::Yes).unwrap();
        assert_eq!(d.path_from(&fs.root), b"/d/f".to_vec());
        let (p, n) = resolve_parent(&fs, &fs.cwd, b"/d/newfile").unwrap();
        assert_eq!((p.inode().stat().unwrap().ino, n), (2, b"newfile".to_vec()));
    }
}
