//! Pseudo-terminals: `/dev/ptmx` hands out a master, `/dev/pts/N` is its slave.
//!
//! The line discipline is the part of Linux's n_tty that a shell needs: input
//! processing (ICRNL, INLCR, IGNCR), canonical mode with erase, kill, EOF and echo
//! (ECHO, ECHOE, ECHOK, ECHONL, ECHOCTL), output processing (OPOST with ONLCR), and
//! raw mode with VMIN = 0 or >= 1. VTIME is not timed (a read waits as for VMIN),
//! and the ISIG characters flush the input and echo as Linux does but raise no
//! signal: a terminal's foreground process group arrives with job control.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::devfs::dir::{next_ino, FsInfo};
use crate::mm::io;
use crate::platform::AddressSpace;
use crate::vfs::{DirEntry, FileImpl, Inode, Stat, StatFs};
use crate::wait::WaitQueue;

/// Major number of slaves (`UNIX98_PTY_SLAVE_MAJOR`).
const SLAVE_MAJOR: u32 = 136;
/// Most ptys at once.
const MAX_PTYS: u32 = 4096;
/// Input buffered before further input is dropped (Linux's N_TTY_BUF_SIZE).
const INPUT_MAX: usize = 4096;
/// `struct termios` of the kernel (not glibc's): 4 flags, c_line, 19 c_cc.
const TERMIOS_SIZE: usize = 36;
const NCCS: usize = 19;

const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
const VMIN: usize = 6;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VWERASE: usize = 14;
const VEOL2: usize = 16;

/// Terminal settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    /// Input modes.
    pub iflag: u32,
    /// Output modes.
    pub oflag: u32,
    /// Control modes.
    pub cflag: u32,
    /// Local modes.
    pub lflag: u32,
    /// Line discipline.
    pub line: u8,
    /// Control characters.
    pub cc: [u8; NCCS],
}

impl Termios {
    /// Linux's `tty_std_termios`: what a new slave starts with.
    pub fn standard() -> Termios {
        Termios {
            iflag: libc::ICRNL | libc::IXON,
            oflag: libc::OPOST | libc::ONLCR,
            cflag: libc::B38400 | libc::CS8 | libc::CREAD | libc::HUPCL,
            lflag: libc::ISIG
                | libc::ICANON
                | libc::ECHO
                | libc::ECHOE
                | libc::ECHOK
                | libc::ECHOCTL
                | libc::ECHOKE
                | libc::IEXTEN,
            line: 0,
            cc: [
                3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0,
            ],
        }
    }

    /// What the master side starts with: raw.
    fn master() -> Termios {
        Termios {
            iflag: 0,
            oflag: 0,
            cflag: libc::B38400 | libc::CS8 | libc::CREAD,
            lflag: 0,
            ..Termios::standard()
        }
    }

    fn to_bytes(self) -> [u8; TERMIOS_SIZE] {
        let mut b = [0u8; TERMIOS_SIZE];
        for (i, v) in [self.iflag, self.oflag, self.cflag, self.lflag]
            .iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b[16] = self.line;
        b[17..].copy_from_slice(&self.cc);
        b
    }

    fn from_bytes(b: &[u8; TERMIOS_SIZE]) -> Termios {
        let w = |i: usize| u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
        let mut cc = [0u8; NCCS];
        cc.copy_from_slice(&b[17..]);
        Termios {
            iflag: w(0),
            oflag: w(1),
            cflag: w(2),
            lflag: w(3),
            line: b[16],
            cc,
        }
    }

    fn l(&self, f: libc::tcflag_t) -> bool {
        self.lflag & f != 0
    }
    fn i(&self, f: libc::tcflag_t) -> bool {
        self.iflag & f != 0
    }
    fn o(&self, f: libc::tcflag_t) -> bool {
        self.oflag & f != 0
    }
}

struct Tty {
    slave_termios: Termios,
    master_termios: Termios,
    winsize: [u8; 8],
    locked: bool,
    /// Bytes the slave may read (complete lines in canonical mode).
    input: VecDeque<u8>,
    /// The line being edited (canonical mode).
    line: Vec<u8>,
    /// Lines ended by VEOF with nothing in them: each makes one read return 0.
    eofs: usize,
    /// Bytes the master may read.
    output: VecDeque<u8>,
    masters: usize,
    slaves: usize,
    slave_ever_opened: bool,
}

/// One master/slave pair.
pub struct PtyPair {
    index: u32,
    tty: Mutex<Tty>,
    queue: WaitQueue,
    master_ino: u64,
    slave_ino: u64,
}

impl Tty {
    /// Output processing of the slave's termios, into the master's queue.
    fn put_output(&mut self, data: &[u8]) {
        let t = self.slave_termios;
        for &c in data {
            if t.o(libc::OPOST) && t.o(libc::ONLCR) && c == b'\n' {
                self.output.extend(b"\r\n");
            } else {
                self.output.push_back(c);
            }
        }
    }

    fn echo(&mut self, c: u8) {
        let t = self.slave_termios;
        if !t.l(libc::ECHO) {
            if c == b'\n' && t.l(libc::ECHONL) && t.l(libc::ICANON) {
                self.put_output(b"\n");
            }
            return;
        }
        if t.l(libc::ECHOCTL) && (c < 0x20 || c == 0x7f) && c != b'\n' && c != b'\t' {
            self.put_output(&[b'^', c ^ 0x40]);
        } else {
            self.put_output(&[c]);
        }
    }

    /// Input processing: a byte the master wrote, as the slave will see it.
    fn receive(&mut self, mut c: u8) {
        let t = self.slave_termios;
        if c == b'\r' {
            if t.i(libc::IGNCR) {
                return;
            }
            if t.i(libc::ICRNL) {
                c = b'\n';
            }
        } else if c == b'\n' && t.i(libc::INLCR) {
            c = b'\r';
        }
        if t.l(libc::ISIG) && [t.cc[VINTR], t.cc[VQUIT], t.cc[VSUSP]].contains(&c) && c != 0 {
            // Linux flushes pending input and echoes the character; the signal to
            // the foreground process group is not raised (see the module docs).
            self.input.clear();
            self.line.clear();
            self.echo(c);
            return;
        }
        if !t.l(libc::ICANON) {
            if self.input.len() < INPUT_MAX {
                self.input.push_back(c);
            }
            self.echo(c);
            return;
        }
        if c == t.cc[VERASE] && c != 0 {
            if self.line.pop().is_some() && t.l(libc::ECHO) {
                if t.l(libc::ECHOE) {
                    self.put_output(b"\x08 \x08");
                } else {
                    self.echo(c);
                }
            }
            return;
        }
        if c == t.cc[VWERASE] && c != 0 && t.l(libc::IEXTEN) {
            while self.line.last() == Some(&b' ') {
                self.line.pop();
                self.erase_echo();
            }
            while self.line.last().is_some_and(|&b| b != b' ') {
                self.line.pop();
                self.erase_echo();
            }
            return;
        }
        if c == t.cc[VKILL] && c != 0 {
            if t.l(libc::ECHOK) || t.l(libc::ECHOKE) {
                let n = self.line.len();
                for _ in 0..n {
                    self.erase_echo();
                }
            }
            self.line.clear();
            return;
        }
        if c == t.cc[VEOF] && c != 0 {
            if self.line.is_empty() {
                self.eofs += 1;
            } else {
                let l = std::mem::take(&mut self.line);
                self.input.extend(l);
            }
            return;
        }
        let ends = c == b'\n' || (c != 0 && (c == t.cc[VEOL] || c == t.cc[VEOL2]));
        if self.line.len() < INPUT_MAX - 1 || ends {
            self.line.push(c);
        }
        self.echo(c);
        if ends {
            let l = std::mem::take(&mut self.line);
            self.input.extend(l);
        }
    }

    fn erase_echo(&mut self) {
        let t = self.slave_termios;
        if t.l(libc::ECHO) && t.l(libc::ECHOE) {
            self.put_output(b"\x08 \x08");
        }
    }

    /// Whether a slave read would return something now.
    fn slave_readable(&self) -> bool {
        !self.input.is_empty() || self.eofs > 0 || self.masters == 0
    }
}

/// The set of ptys of one devpts instance.
pub struct Devpts {
    fs: FsInfo,
    ptys: Mutex<HashMap<u32, Weak<PtyPair>>>,
    root_ino: u64,
    ptmx_ino: u64,
}

impl Devpts {
    /// An empty devpts.
    pub fn new(fs: FsInfo) -> Arc<Devpts> {
        Arc::new(Devpts {
            fs,
            ptys: Mutex::new(HashMap::new()),
            root_ino: next_ino(),
            ptmx_ino: next_ino(),
        })
    }

    /// The live pty of index `idx`.
    fn pair(&self, idx: u32) -> Option<Arc<PtyPair>> {
        self.ptys.lock().ok()?.get(&idx).and_then(|w| w.upgrade())
    }

    fn live(&self) -> Vec<Arc<PtyPair>> {
        let Ok(mut m) = self.ptys.lock() else {
            return Vec::new();
        };
        m.retain(|_, w| w.strong_count() > 0);
        let mut v: Vec<Arc<PtyPair>> = m.values().filter_map(|w| w.upgrade()).collect();
        v.sort_by_key(|p| p.index);
        v
    }

    /// Opens the multiplexer: a new pair, returned as its master.
    pub fn open_master(&self) -> SysResult<Box<dyn FileImpl>> {
        let mut m = self.ptys.lock().map_err(|_| Errno::EIO)?;
        m.retain(|_, w| w.strong_count() > 0);
        let index = (0..MAX_PTYS)
            .find(|i| !m.contains_key(i))
            .ok_or(Errno::ENOSPC)?;
        let pair = Arc::new(PtyPair {
            index,
            tty: Mutex::new(Tty {
                slave_termios: Termios::standard(),
                master_termios: Termios::master(),
                winsize: [0; 8],
                locked: true,
                input: VecDeque::new(),
                line: Vec::new(),
                eofs: 0,
                output: VecDeque::new(),
                masters: 1,
                slaves: 0,
                slave_ever_opened: false,
            }),
            queue: WaitQueue::new(),
            master_ino: self.ptmx_ino,
            slave_ino: next_ino(),
        });
        m.insert(index, Arc::downgrade(&pair));
        Ok(Box::new(End {
            pair,
            master: true,
            fs: self.fs,
        }))
    }

    fn stat_ptmx(&self) -> Stat {
        Stat {
            dev: self.fs.dev,
            ino: self.ptmx_ino,
            mode: libc::S_IFCHR | 0o666,
            nlink: 1,
            rdev: libc::makedev(5, 2),
            blksize: 1024,
            ..Default::default()
        }
    }
}

fn slave_stat(fs: FsInfo, p: &PtyPair) -> Stat {
    Stat {
        dev: fs.dev,
        ino: p.slave_ino,
        mode: libc::S_IFCHR | 0o620,
        nlink: 1,
        rdev: libc::makedev(SLAVE_MAJOR, p.index),
        blksize: 1024,
        ..Default::default()
    }
}

/// `/dev/pts`: `ptmx` and one node per live pty.
pub struct PtsDir {
    pts: Arc<Devpts>,
}

impl PtsDir {
    /// The directory of `pts`.
    pub fn new(pts: Arc<Devpts>) -> Arc<PtsDir> {
        Arc::new(PtsDir { pts })
    }
}

impl Inode for PtsDir {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: self.pts.fs.dev,
            ino: self.pts.root_ino,
            mode: libc::S_IFDIR | 0o755,
            nlink: 2,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        if name == b"ptmx" {
            return Ok(PtmxNode::new(self.pts.clone()));
        }
        let s = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        if s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
            return Err(Errno::ENOENT);
        }
        let idx: u32 = s.parse().map_err(|_| Errno::ENOENT)?;
        let pair = self.pts.pair(idx).ok_or(Errno::ENOENT)?;
        Ok(Arc::new(SlaveNode {
            fs: self.pts.fs,
            pts: self.pts.clone(),
            index: idx,
            pair: Arc::downgrade(&pair),
            stat: slave_stat(self.pts.fs, &pair),
        }))
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EISDIR);
        }
        let st = self.stat()?;
        let mut list = vec![
            DirEntry {
                ino: st.ino,
                next: 1,
                kind: libc::DT_DIR,
                name: b".".to_vec(),
            },
            DirEntry {
                ino: 1,
                next: 2,
                kind: libc::DT_DIR,
                name: b"..".to_vec(),
            },
            DirEntry {
                ino: self.pts.ptmx_ino,
                next: 3,
                kind: libc::DT_CHR,
                name: b"ptmx".to_vec(),
            },
        ];
        for p in self.pts.live() {
            let n = list.len() as u64 + 1;
            list.push(DirEntry {
                ino: p.slave_ino,
                next: n,
                kind: libc::DT_CHR,
                name: p.index.to_string().into_bytes(),
            });
        }
        Ok(Box::new(PtsListing { st, list }))
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
    fn statfs(&self) -> SysResult<StatFs> {
        Ok(StatFs {
            kind: 0x1cd1,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        })
    }
}

struct PtsListing {
    st: Stat,
    list: Vec<DirEntry>,
}

impl FileImpl for PtsListing {
    fn read(&self, _buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EISDIR)
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.st)
    }
    fn getdents(&self, pos: u64, _max: usize) -> SysResult<Vec<DirEntry>> {
        Ok(self.list.iter().skip(pos as usize).cloned().collect())
    }
}

/// `/dev/ptmx` (and `/dev/pts/ptmx`).
pub struct PtmxNode {
    pts: Arc<Devpts>,
}

impl PtmxNode {
    /// The multiplexer node of `pts`.
    pub fn new(pts: Arc<Devpts>) -> Arc<PtmxNode> {
        Arc::new(PtmxNode { pts })
    }
}

impl Inode for PtmxNode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(self.pts.stat_ptmx())
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.pts.open_master()
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
}

struct SlaveNode {
    fs: FsInfo,
    pts: Arc<Devpts>,
    index: u32,
    pair: Weak<PtyPair>,
    stat: Stat,
}

impl SlaveNode {
    /// The pty this name stands for now: its own while it lives, else the one
    /// that took its index since. The dentry cache keeps `/dev/pts/N` after its
    /// pty is gone, and a walk must find the new pty N as Linux's fresh devpts
    /// node (an openpty after a close once failed with EIO here).
    fn current(&self) -> Option<Arc<PtyPair>> {
        self.pair.upgrade().or_else(|| self.pts.pair(self.index))
    }
}

impl Inode for SlaveNode {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        Ok(match self.current() {
            Some(p) => slave_stat(self.fs, &p),
            None => self.stat,
        })
    }
    fn open(&self, _flags: i32) -> SysResult<Box<dyn FileImpl>> {
        // A pty gone with nothing in its place: the name no longer exists.
        let pair = self.current().ok_or(Errno::ENOENT)?;
        {
            let mut t = pair.tty.lock().map_err(|_| Errno::EIO)?;
            if t.locked || t.masters == 0 {
                return Err(Errno::EIO);
            }
            t.slaves += 1;
            t.slave_ever_opened = true;
        }
        pair.queue.notify_all();
        Ok(Box::new(End {
            pair,
            master: false,
            fs: self.fs,
        }))
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
}

/// An open master or slave.
struct End {
    pair: Arc<PtyPair>,
    master: bool,
    fs: FsInfo,
}

impl Drop for End {
    fn drop(&mut self) {
        if let Ok(mut t) = self.pair.tty.lock() {
            if self.master {
                t.masters -= 1;
            } else {
                t.slaves -= 1;
            }
        }
        self.pair.queue.notify_all();
    }
}

fn read_int(mem: &dyn AddressSpace, addr: u64) -> SysResult<i32> {
    let mut b = [0u8; 4];
    io::read_exact(mem, addr, &mut b)?;
    Ok(i32::from_le_bytes(b))
}

impl FileImpl for End {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut t = self.pair.tty.lock().map_err(|_| Errno::EIO)?;
        let n = if self.master {
            if t.output.is_empty() {
                // Linux: EIO once every slave has closed (after one was opened).
                return if t.slaves == 0 && t.slave_ever_opened {
                    Err(Errno::EIO)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            let n = buf.len().min(t.output.len());
            for (i, b) in t.output.drain(..n).enumerate() {
                buf[i] = b;
            }
            n
        } else {
            let canon = t.slave_termios.l(libc::ICANON);
            if t.input.is_empty() {
                if t.eofs > 0 {
                    t.eofs -= 1;
                    return Ok(0);
                }
                if t.masters == 0 {
                    return Ok(0);
                }
                if !canon && t.slave_termios.cc[VMIN] == 0 {
                    return Ok(0);
                }
                return Err(Errno::EAGAIN);
            }
            let mut n = 0;
            while n < buf.len() {
                let Some(c) = t.input.pop_front() else {
                    break;
                };
                buf[n] = c;
                n += 1;
                // A canonical read returns at most one line.
                if canon && c == b'\n' {
                    break;
                }
            }
            n
        };
        drop(t);
        self.pair.queue.notify_all();
        Ok(n)
    }

    fn write(&self, buf: &[u8], _offset: u64) -> SysResult<usize> {
        let mut t = self.pair.tty.lock().map_err(|_| Errno::EIO)?;
        if self.master {
            for &c in buf {
                t.receive(c);
            }
        } else {
            if t.masters == 0 {
                return Err(Errno::EIO);
            }
            t.put_output(buf);
        }
        drop(t);
        self.pair.queue.notify_all();
        Ok(buf.len())
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        if self.master {
            Ok(Stat {
                dev: self.fs.dev,
                ino: self.pair.master_ino,
                mode: libc::S_IFCHR | 0o666,
                nlink: 1,
                rdev: libc::makedev(5, 2),
                blksize: 1024,
                ..Default::default()
            })
        } else {
            Ok(slave_stat(self.fs, &self.pair))
        }
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        let mut t = self.pair.tty.lock().map_err(|_| Errno::EIO)?;
        match req {
            r if r == libc::TCGETS => {
                let tm = if self.master {
                    t.master_termios
                } else {
                    t.slave_termios
                };
                io::write_all(mem, arg, &tm.to_bytes())?;
            }
            r if r == libc::TCSETS || r == libc::TCSETSW || r == libc::TCSETSF => {
                let mut b = [0u8; TERMIOS_SIZE];
                io::read_exact(mem, arg, &mut b)?;
                let tm = Termios::from_bytes(&b);
                if r == libc::TCSETSF {
                    t.input.clear();
                    t.line.clear();
                }
                if self.master {
                    t.master_termios = tm;
                } else {
                    // Leaving canonical mode makes the partial line readable.
                    if !tm.l(libc::ICANON) && t.slave_termios.l(libc::ICANON) {
                        let l = std::mem::take(&mut t.line);
                        t.input.extend(l);
                    }
                    t.slave_termios = tm;
                }
            }
            r if r == libc::TIOCGWINSZ => io::write_all(mem, arg, &t.winsize)?,
            r if r == libc::TIOCSWINSZ => {
                let mut b = [0u8; 8];
                io::read_exact(mem, arg, &mut b)?;
                t.winsize = b;
            }
            r if r == libc::TIOCGPTN && self.master => {
                io::write_u32(mem, arg, self.pair.index)?;
            }
            r if r == libc::TIOCSPTLCK && self.master => {
                t.locked = read_int(mem, arg)? != 0;
            }
            r if r == libc::TIOCGPTLCK && self.master => {
                io::write_u32(mem, arg, t.locked as u32)?;
            }
            r if r == libc::FIONREAD => {
                let n = if self.master {
                    t.output.len()
                } else {
                    t.input.len()
                };
                io::write_u32(mem, arg, n as u32)?;
            }
            r if r == libc::TCFLSH => {
                let which = arg as i32;
                if which == libc::TCIFLUSH || which == libc::TCIOFLUSH {
                    t.input.clear();
                    t.line.clear();
                }
                if which == libc::TCOFLUSH || which == libc::TCIOFLUSH {
                    t.output.clear();
                }
            }
            // Output is never held back, so draining has nothing to wait for.
            r if r == libc::TCSBRK => {}
            _ => return Err(Errno::ENOTTY),
        }
        drop(t);
        self.pair.queue.notify_all();
        Ok(0)
    }

    fn readiness(&self) -> u32 {
        let Ok(t) = self.pair.tty.lock() else {
            return libc::POLLERR as u32;
        };
        let mut r = 0;
        if self.master {
            r |= libc::POLLOUT | libc::POLLWRNORM;
            if !t.output.is_empty() {
                r |= libc::POLLIN | libc::POLLRDNORM;
            }
            if t.slaves == 0 && t.slave_ever_opened {
                r |= libc::POLLHUP;
            }
        } else {
            if t.slave_readable() {
                r |= libc::POLLIN | libc::POLLRDNORM;
            }
            if t.masters == 0 {
                r |= libc::POLLHUP;
            } else {
                r |= libc::POLLOUT | libc::POLLWRNORM;
            }
        }
        r as u32
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pair.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Arc<Devpts>, Box<dyn FileImpl>, Box<dyn FileImpl>) {
        let pts = Devpts::new(FsInfo { dev: 9, magic: 0 });
        let m = pts.open_master().unwrap();
        let dir = PtsDir::new(pts.clone());
        let node = dir.lookup(b"0").unwrap();
        assert_eq!(node.open(libc::O_RDWR).err(), Some(Errno::EIO));
        pts.ptys.lock().unwrap()[&0]
            .upgrade()
            .unwrap()
            .tty
            .lock()
            .unwrap()
            .locked = false;
        let s = node.open(libc::O_RDWR).unwrap();
        (pts, m, s)
    }

    #[test]
    fn a_stale_slave_node_opens_the_pty_now_at_its_index() {
        let (pts, m, s) = pair();
        let dir = PtsDir::new(pts.clone());
        let node = dir.lookup(b"0").unwrap();
        drop((m, s));
        assert_eq!(node.open(libc::O_RDWR).err(), Some(Errno::ENOENT));
        let _m2 = pts.open_master().unwrap();
        let p = pts.pair(0).unwrap();
        p.tty.lock().unwrap().locked = false;
        assert_eq!(node.stat().unwrap().ino, p.slave_ino);
        assert!(node.open(libc::O_RDWR).is_ok());
    }

    fn read_all(f: &dyn FileImpl) -> Vec<u8> {
        let mut b = [0u8; 256];
        match f.read(&mut b, 0) {
            Ok(n) => b[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn canonical_echo_and_output() {
        let (_pts, m, s) = pair();
        m.write(b"ab\x7fc", 0).unwrap();
        // No complete line yet.
        assert_eq!(s.read(&mut [0u8; 8], 0), Err(Errno::EAGAIN));
        m.write(b"\r", 0).unwrap();
        assert_eq!(read_all(&*s), b"ac\n");
        assert_eq!(read_all(&*m), b"ab\x08 \x08c\r\n");
        s.write(b"out\n", 0).unwrap();
        assert_eq!(read_all(&*m), b"out\r\n");
        m.write(b"x\x03", 0).unwrap();
        assert_eq!(read_all(&*m), b"x^C");
        m.write(b"\x04", 0).unwrap();
        assert_eq!(s.read(&mut [0u8; 8], 0), Ok(0));
        drop(s);
        assert_eq!(m.read(&mut [0u8; 8], 0), Err(Errno::EIO));
    }

    #[test]
    fn termios_roundtrip() {
        let t = Termios::standard();
        assert_eq!(Termios::from_bytes(&t.to_bytes()), t);
        assert_eq!(t.to_bytes().len(), 36);
    }
}
