//! Building blocks for synthetic filesystems: files whose contents are generated
//! when opened, symlinks whose targets are computed, and directories listed and
//! looked up by functions.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::{DirEntry, FileImpl, Inode, Stat};

/// The device number procfs reports.
pub const PROC_DEV: u64 = 0x14;

/// Content generator of a synthetic file.
pub type Gen = Arc<dyn Fn() -> SysResult<Vec<u8>> + Send + Sync>;
/// Write handler of a synthetic file: takes one write's bytes.
pub type Put = Arc<dyn Fn(&[u8]) -> SysResult<()> + Send + Sync>;
/// Maker of a write handler, called when the file is opened for writing, in the
/// opener's context: Linux checks many proc files against the opener's
/// credentials (`file->f_cred`), not the writer's, so a descriptor handed to a
/// process with more privilege gains nothing and one opened by a privileged
/// process keeps working after it drops privilege. It may refuse the open.
pub type PutAtOpen = Arc<dyn Fn() -> SysResult<Put> + Send + Sync>;
/// Target generator of a synthetic symlink.
pub type LinkGen = Arc<dyn Fn() -> SysResult<Vec<u8>> + Send + Sync>;
/// Directory lookup: a name to an inode.
pub type Lookup = Arc<dyn Fn(&[u8]) -> SysResult<Arc<dyn Inode>> + Send + Sync>;
/// Named children of a fixed directory.
type Children = Arc<Vec<(Vec<u8>, Arc<dyn Inode>)>>;

/// Directory listing: (inode number, DT_* type, name).
pub type List = Arc<dyn Fn() -> SysResult<Vec<(u64, u8, Vec<u8>)>> + Send + Sync>;

fn stat_of(ino: u64, mode: u32, uid: u32, gid: u32, size: i64) -> Stat {
    Stat {
        dev: PROC_DEV,
        ino,
        mode,
        nlink: 1,
        uid,
        gid,
        size,
        blksize: 4096,
        ..Default::default()
    }
}

/// A read-only file generated on open.
pub struct GenFile {
    ino: u64,
    mode: u32,
    owner: (u32, u32),
    gen: Gen,
    put: Option<Writer>,
}

/// How a [`GenFile`] takes writes.
enum Writer {
    /// The same handler for every opener.
    Fixed(Put),
    /// A handler made per open for writing.
    AtOpen(PutAtOpen),
}

impl GenFile {
    /// A file with permission bits `mode` (0o444 typically).
    pub fn new(ino: u64, mode: u32, owner: (u32, u32), gen: Gen) -> Arc<GenFile> {
        Arc::new(GenFile {
            ino,
            mode,
            owner,
            gen,
            put: None,
        })
    }

    /// A file that can also be written: each write(2) hands its bytes to `put`
    /// (as Linux's proc files that take a value per write).
    pub fn writable(ino: u64, mode: u32, owner: (u32, u32), gen: Gen, put: Put) -> Arc<GenFile> {
        Arc::new(GenFile {
            ino,
            mode,
            owner,
            gen,
            put: Some(Writer::Fixed(put)),
        })
    }

    /// A writable file whose write handler is made at each open for writing by
    /// `bind`, which sees the opener (and may refuse the open).
    pub fn writable_as_opened(
        ino: u64,
        mode: u32,
        owner: (u32, u32),
        gen: Gen,
        bind: PutAtOpen,
    ) -> Arc<GenFile> {
        Arc::new(GenFile {
            ino,
            mode,
            owner,
            gen,
            put: Some(Writer::AtOpen(bind)),
        })
    }

    /// A `/proc/sys` setting holding one integer (mode 0644, owned by root, so
    /// the open's credential check comes first): a read shows `get()` on a line;
    /// a write is parsed as one integer ([`written_int`]) and handed to `set`,
    /// which checks the writer (a capability) and the range.
    pub fn int_setting<V, T>(
        ino: u64,
        get: impl Fn() -> SysResult<V> + Send + Sync + 'static,
        set: impl Fn(T) -> SysResult<()> + Send + Sync + 'static,
    ) -> Arc<GenFile>
    where
        V: std::fmt::Display,
        T: std::str::FromStr,
    {
        GenFile::writable(
            ino,
            0o644,
            (0, 0),
            Arc::new(move || Ok(format!("{}\n", get()?).into_bytes())),
            Arc::new(move |buf: &[u8]| set(written_int(buf)?)),
        )
    }
}

/// What a writer wrote to a proc file that takes a number: one decimal integer,
/// white space around it allowed (`EINVAL` for anything else, as Linux's
/// `proc_dointvec`).
pub fn written_int<T: std::str::FromStr>(buf: &[u8]) -> SysResult<T> {
    std::str::from_utf8(buf)
        .ok()
        .map(str::trim)
        .and_then(|s| s.parse().ok())
        .ok_or(Errno::EINVAL)
}

impl Inode for GenFile {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        // Like Linux, procfs files report size 0: readers read until EOF.
        Ok(stat_of(
            self.ino,
            libc::S_IFREG | self.mode,
            self.owner.0,
            self.owner.1,
            0,
        ))
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let put = match (&self.put, writing) {
            (None, true) => return Err(Errno::EACCES),
            (Some(Writer::Fixed(put)), _) => Some(put.clone()),
            (Some(Writer::AtOpen(bind)), true) => Some(bind()?),
            (Some(Writer::AtOpen(_)), false) | (None, false) => None,
        };
        let data = (self.gen)()?;
        Ok(Box::new(Snapshot {
            data,
            stat: self.stat()?,
            put,
        }))
    }
}

/// The contents of a generated file, fixed at open time as Linux's seq files are
/// per read session.
struct Snapshot {
    data: Vec<u8>,
    stat: Stat,
    put: Option<Put>,
}

impl FileImpl for Snapshot {
    fn read(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let off = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - off);
        buf[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        match &self.put {
            Some(put) => {
                put(buf)?;
                Ok(buf.len())
            }
            None => Err(Errno::EBADF),
        }
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
}

/// A symlink with a computed target; a magic link when it also has an object to
/// land on (see [`Inode::magic_target`]).
pub struct GenLink {
    ino: u64,
    owner: (u32, u32),
    target: LinkGen,
    lands_on: Option<Arc<dyn Inode>>,
}

impl GenLink {
    /// A symlink.
    pub fn new(ino: u64, owner: (u32, u32), target: LinkGen) -> Arc<GenLink> {
        Arc::new(GenLink {
            ino,
            owner,
            target,
            lands_on: None,
        })
    }

    /// A magic link reading `text` whose resolution lands on `object` itself.
    pub fn magic(
        ino: u64,
        owner: (u32, u32),
        text: Vec<u8>,
        object: Arc<dyn Inode>,
    ) -> Arc<GenLink> {
        Arc::new(GenLink {
            ino,
            owner,
            target: Arc::new(move || Ok(text.clone())),
            lands_on: Some(object),
        })
    }
}

impl Inode for GenLink {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(stat_of(
            self.ino,
            libc::S_IFLNK | 0o777,
            self.owner.0,
            self.owner.1,
            0,
        ))
    }
    fn readlink(&self) -> SysResult<Vec<u8>> {
        (self.target)()
    }
    fn magic_target(&self) -> Option<SysResult<Arc<dyn Inode>>> {
        self.lands_on.clone().map(Ok)
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        Err(Errno::ELOOP)
    }
}

/// A directory served by functions.
pub struct GenDir {
    ino: u64,
    mode: u32,
    owner: (u32, u32),
    lookup: Lookup,
    list: List,
}

impl GenDir {
    /// A directory.
    pub fn new(ino: u64, mode: u32, owner: (u32, u32), lookup: Lookup, list: List) -> Arc<GenDir> {
        Arc::new(GenDir {
            ino,
            mode,
            owner,
            lookup,
            list,
        })
    }

    /// A directory with a fixed set of children.
    pub fn fixed(ino: u64, children: Vec<(&'static str, Arc<dyn Inode>)>) -> Arc<GenDir> {
        let kids: Children = Arc::new(
            children
                .into_iter()
                .map(|(n, i)| (n.as_bytes().to_vec(), i))
                .collect(),
        );
        let k2 = kids.clone();
        GenDir::new(
            ino,
            0o555,
            (0, 0),
            Arc::new(move |name| {
                kids.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, i)| i.clone())
                    .ok_or(Errno::ENOENT)
            }),
            Arc::new(move || {
                Ok(k2
                    .iter()
                    .map(|(n, i)| {
                        let st = i.stat().unwrap_or_default();
                        (st.ino, dtype(st.mode), n.clone())
                    })
                    .collect())
            }),
        )
    }
}

/// The `DT_*` type of a mode.
pub fn dtype(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        _ => libc::DT_UNKNOWN,
    }
}

impl Inode for GenDir {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        let mut st = stat_of(
            self.ino,
            libc::S_IFDIR | self.mode,
            self.owner.0,
            self.owner.1,
            0,
        );
        st.nlink = 2;
        Ok(st)
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        (self.lookup)(name)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EISDIR);
        }
        let mut entries = vec![
            (self.ino, libc::DT_DIR, b".".to_vec()),
            (1, libc::DT_DIR, b"..".to_vec()),
        ];
        entries.extend((self.list)()?);
        Ok(Box::new(DirSnapshot {
            entries,
            stat: self.stat()?,
        }))
    }
    fn statfs(&self) -> SysResult<crate::vfs::StatFs> {
        Ok(crate::vfs::StatFs {
            kind: 0x9fa0,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        })
    }
}

struct DirSnapshot {
    entries: Vec<(u64, u8, Vec<u8>)>,
    stat: Stat,
}

impl FileImpl for DirSnapshot {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.stat)
    }
    fn getdents(&self, pos: u64, _max: usize) -> SysResult<Vec<DirEntry>> {
        Ok(self
            .entries
            .iter()
            .enumerate()
            .skip(pos as usize)
            .map(|(i, (ino, kind, name))| DirEntry {
                ino: *ino,
                next: i as u64 + 1,
                kind: *kind,
                name: name.clone(),
            })
            .collect())
    }
}
