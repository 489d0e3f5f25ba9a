//! Loading a program into a fresh address space: resolve and check the file, follow
//! `#!` lines, load the ELF (and its interpreter), build the stack, and produce the
//! registers the first instruction runs with.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::fs::inotify::Inotify;
use crate::kernel::creds::Credentials;
use crate::kernel::Kernel;
use crate::loader::{self, ExecFile};
use crate::mm::{Mappable, MemoryManager};
use crate::platform::{Regs, PAGE_SIZE};
use crate::sys::host;
use crate::sys::pod::zeroed;
use crate::vfs::path::{resolve, Follow};
use crate::vfs::{FileImpl, FsContext};

/// Nested `#!` interpreters followed before `ELOOP` (Linux allows 4 levels).
const MAX_INTERP_DEPTH: usize = 4;

/// What exec needs.
pub struct ExecRequest {
    /// The path as given (`filename`), resolved from the cwd.
    pub path: Vec<u8>,
    /// Arguments.
    pub argv: Vec<Vec<u8>>,
    /// Environment.
    pub envp: Vec<Vec<u8>>,
}

/// A loaded program, ready to run.
pub struct Image {
    /// The new address space's bookkeeping.
    pub mm: MemoryManager,
    /// Registers for the first instruction.
    pub regs: Regs,
    /// The executable's absolute path (what /proc/self/exe names).
    pub exe: Vec<u8>,
    /// Effective uid and gid the program runs with (set-id bits applied).
    pub ids: (u32, u32),
}

/// An opened file as the loader reads it.
struct LoaderFile {
    imp: Box<dyn FileImpl>,
}

impl ExecFile for LoaderFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.imp.read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    fn size(&self) -> SysResult<u64> {
        Ok(self.imp.stat()?.size.max(0) as u64)
    }

    fn mappable(&self) -> SysResult<Arc<dyn Mappable>> {
        // Linux's execve fails with the mmap error, ENODEV, for a file its filesystem
        // cannot map.
        self.imp.map_source()
    }
}

/// What [`open_exec`] found: the file, its absolute path, its attributes, and
/// whether its mount is nosuid.
type ExecTarget = (Arc<dyn ExecFile>, Vec<u8>, crate::vfs::Stat, bool);

/// Opens `path` for execution (reported to `notify`): a regular file with an execute bit the caller may use.
/// Returns the file and its absolute path in the container.
fn open_exec(
    notify: &Inotify,
    fs: &FsContext,
    creds: &Credentials,
    path: &[u8],
) -> SysResult<ExecTarget> {
    let d = resolve(fs, &fs.cwd, path, Follow::Yes)?;
    if d.mount_flags() & libc::MS_NOEXEC != 0 {
        return Err(Errno::EACCES);
    }
    let nosuid = d.mount_flags() & libc::MS_NOSUID != 0;
    let st = d.inode().stat()?;
    if st.is_dir() || !st.is_regular() {
        return Err(Errno::EACCES);
    }
    // As any permission check: the filesystem ids, and CAP_DAC_OVERRIDE (not uid 0)
    // for a file with some execute bit.
    crate::vfs::perm::check_on(creds, &st, &**d.inode(), crate::vfs::perm::MAY_EXEC, false)?;
    let imp = d.inode().open(libc::O_RDONLY)?;
    notify.executed(&d);
    Ok((
        Arc::new(LoaderFile { imp }),
        d.path_from(&fs.root),
        st,
        nosuid,
    ))
}

/// Finds `name` on `PATH` (from `envp`, else the default) inside the container, as
/// `execvp` would. A name with a slash is returned unchanged.
pub fn lookup_path(fs: &FsContext, envp: &[Vec<u8>], name: &[u8]) -> SysResult<Vec<u8>> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.contains(&b'/') {
        return Ok(name.to_vec());
    }
    let path_var = envp
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut first_err = Errno::ENOENT;
    for dir in path_var.split(|&b| b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut cand = dir.to_vec();
        cand.push(b'/');
        cand.extend_from_slice(name);
        match resolve(fs, &fs.cwd, &cand, Follow::Yes) {
            Ok(d) => match d.inode().stat() {
                Ok(st) if st.is_regular() && st.mode & 0o111 != 0 => return Ok(cand),
                Ok(_) => first_err = Errno::EACCES,
                Err(e) => first_err = e,
            },
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
            Err(e) => first_err = e,
        }
    }
    Err(first_err)
}

/// Loads `req` into a new address space of `kernel`'s platform. Must run on the host
/// thread that will drive the new task (the platform binds the space to it).
pub fn load(
    kernel: &Kernel,
    fs: &FsContext,
    creds: &Credentials,
    stack_limit: u64,
    req: ExecRequest,
) -> SysResult<Image> {
    let notify = &kernel.files.inotify;
    let mut path = req.path.clone();
    let mut argv = req.argv;
    let (mut file, mut exe, mut st, mut nosuid) = open_exec(notify, fs, creds, &path)?;
    for depth in 0..=MAX_INTERP_DEPTH {
        let mut head = [0u8; 256];
        let n = file.read_at(&mut head, 0)?;
        if !loader::script::is_script(&head[..n]) {
            break;
        }
        if depth == MAX_INTERP_DEPTH {
            return Err(Errno::ELOOP);
        }
        let shebang = loader::script::parse_shebang(&head[..n])?;
        argv = shebang.argv(&path, &argv);
        path = shebang.interp.clone();
        (file, exe, st, nosuid) = open_exec(notify, fs, creds, &path)?;
    }
    // Set-user-ID and set-group-ID programs run with their owner's ids (never on a
    // nosuid mount or after PR_SET_NO_NEW_PRIVS), and then get AT_SECURE.
    let mut euid = creds.euid;
    let mut egid = creds.egid;
    if !creds.no_new_privs && !nosuid {
        if st.mode & libc::S_ISUID != 0 {
            euid = st.uid;
        }
        if st.mode & libc::S_ISGID != 0 && st.mode & libc::S_IXGRP != 0 {
            egid = st.gid;
        }
    }
    let secure = euid != creds.uid || egid != creds.gid;

    let platform = &kernel.platform;
    let space = platform.new_address_space()?;
    let max = platform.max_user_address();
    // Leave a guard gap under the platform's reserved top, then the stack, then a gap
    // as large as the stack may grow before the mmap area starts.
    let stack_top = (max - 16 * PAGE_SIZE) & !(PAGE_SIZE - 1);
    let stack_gap = stack_limit.clamp(128 << 20, 1 << 40);
    let mmap_top = stack_top - stack_gap;
    let mut mm = MemoryManager::new(space, platform.min_user_address(), max, mmap_top);

    let open_interp = |p: &[u8]| -> SysResult<Arc<dyn ExecFile>> {
        let root_fs = FsContext {
            root: fs.root.clone(),
            cwd: fs.root.clone(),
            umask: fs.umask,
        };
        open_exec(notify, &root_fs, creds, p).map(|(f, ..)| f)
    };
    let image = loader::elf::load_elf(&mut mm, &file, &open_interp)?;
    let vdso = crate::kernel::vdso::map_into(kernel.vdso().map(|v| &**v), &mut mm)?;

    let mut random = [0u8; 16];
    host::random_bytes(&mut random, 0)?;
    let args = loader::stack::StackArgs {
        argv: &argv,
        envp: &req.envp,
        execfn: &path,
        image: &image,
        uid: creds.uid,
        euid,
        gid: creds.gid,
        egid,
        secure,
        hwcap: host::hwcap(),
        random,
        vdso,
    };
    let sp = loader::stack::build_stack(&mut mm, stack_top, &args)?;

    let mut regs: Regs = zeroed();
    regs.rip = image.entry;
    regs.rsp = sp;
    regs.cs = 0x33;
    regs.ss = 0x2b;
    regs.eflags = 0x202;
    Ok(Image {
        mm,
        regs,
        exe,
        ids: (euid, egid),
    })
}
