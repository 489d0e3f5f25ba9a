//! inotify: watches on inodes and the event queues of inotify instances.
//!
//! The VFS reports changes at the points where Linux calls fsnotify (open, read,
//! write, close, create, unlink, rename, attribute changes); each report goes to
//! the watches on the inode itself and, for the events Linux also sends to a
//! watched parent, to the watches on the directory the name was reached through,
//! with the name. Watches are keyed by (device, inode number), which every sentry
//! filesystem keeps stable for a file's life (the overlay keeps the lower number
//! across copy-up), so a watch follows the file whatever dentry reaches it.
//!
//! Only changes made inside the sandbox are seen: files a gofer serves that change
//! on the host raise no events.
//!
//! When no watch exists anywhere every hook returns after one atomic load.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::space::{AnonInos, AnonKind};
use crate::platform::AddressSpace;
use crate::vfs::file::Notify;
use crate::vfs::{Dentry, FileImpl, Inode, OpenFile, SetAttr, SetTime, Stat};
use crate::wait::WaitQueue;

/// File was accessed (read).
pub const IN_ACCESS: u32 = 0x1;
/// File was modified.
pub const IN_MODIFY: u32 = 0x2;
/// Metadata changed.
pub const IN_ATTRIB: u32 = 0x4;
/// Writable file was closed.
pub const IN_CLOSE_WRITE: u32 = 0x8;
/// Unwritable file closed.
pub const IN_CLOSE_NOWRITE: u32 = 0x10;
/// File was opened.
pub const IN_OPEN: u32 = 0x20;
/// File was moved from the watched directory.
pub const IN_MOVED_FROM: u32 = 0x40;
/// File was moved into the watched directory.
pub const IN_MOVED_TO: u32 = 0x80;
/// Subfile was created.
pub const IN_CREATE: u32 = 0x100;
/// Subfile was deleted.
pub const IN_DELETE: u32 = 0x200;
/// The watched file itself was deleted.
pub const IN_DELETE_SELF: u32 = 0x400;
/// The watched file itself was moved.
pub const IN_MOVE_SELF: u32 = 0x800;
/// Backing filesystem was unmounted.
pub const IN_UNMOUNT: u32 = 0x2000;
/// The event queue overflowed.
pub const IN_Q_OVERFLOW: u32 = 0x4000;
/// The watch was removed.
pub const IN_IGNORED: u32 = 0x8000;
/// Only watch the path if it is a directory.
pub const IN_ONLYDIR: u32 = 0x0100_0000;
/// Do not follow a final symlink.
pub const IN_DONT_FOLLOW: u32 = 0x0200_0000;
/// No events for children once unlinked.
pub const IN_EXCL_UNLINK: u32 = 0x0400_0000;
/// Only create a watch, `EEXIST` if one exists.
pub const IN_MASK_CREATE: u32 = 0x1000_0000;
/// Add to the mask of an existing watch.
pub const IN_MASK_ADD: u32 = 0x2000_0000;
/// The event's subject is a directory.
pub const IN_ISDIR: u32 = 0x4000_0000;
/// Remove the watch after one event.
pub const IN_ONESHOT: u32 = 0x8000_0000;
/// Every event a watch may ask for.
pub const IN_ALL_EVENTS: u32 = 0xfff;
/// Events a watched directory also gets for its children (Linux's
/// `FS_EVENTS_POSS_ON_CHILD`).
const ON_CHILD: u32 =
    IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN;
/// Bits `inotify_add_watch` accepts.
const ALL_BITS: u32 = IN_ALL_EVENTS
    | IN_UNMOUNT
    | IN_Q_OVERFLOW
    | IN_IGNORED
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
    | IN_MASK_CREATE
    | IN_MASK_ADD
    | IN_ISDIR
    | IN_ONESHOT;
/// What a watch remembers of the mask it was given.
const KEPT_BITS: u32 = IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK;

/// `/proc/sys/fs/inotify/max_queued_events` (Linux's default).
pub const MAX_QUEUED_EVENTS: usize = 16384;
/// `/proc/sys/fs/inotify/max_user_instances` (Linux's default).
pub const MAX_USER_INSTANCES: usize = 128;
/// `/proc/sys/fs/inotify/max_user_watches`: a fixed figure in Linux's range (it
/// scales its default with memory between 8192 and 1048576).
pub const MAX_USER_WATCHES: usize = 65536;

/// Size of `struct inotify_event` without its name.
const EVENT_SIZE: usize = 16;

/// (device, inode number).
type Key = (u64, u64);

/// Watches of every instance, by the inode they watch.
type Registry = HashMap<Key, Vec<(Weak<Instance>, i32)>>;

/// The inotify state of one sandbox (on its kernel's file space): every watch by
/// the inode it watches, the counts per user, the files unlinked while open.
#[derive(Default)]
pub struct Inotify {
    /// Watches that exist: zero makes every hook a no-op.
    watches: AtomicUsize,
    next_cookie: AtomicU32,
    registry: Mutex<Registry>,
    /// Instances and watches per user (`max_user_instances`, `max_user_watches`).
    per_user: Mutex<HashMap<u32, (usize, usize)>>,
    /// Files unlinked while still open: their watches go at the last close.
    orphans: Mutex<HashSet<Key>>,
}

impl Inotify {
    // Every update leaves these maps consistent, so a poisoned lock still holds
    // a valid map.
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn per_user(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (usize, usize)>> {
        self.per_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        self.orphans.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn active(&self) -> bool {
        self.watches.load(Ordering::Relaxed) > 0
    }

    /// How many watches exist.
    pub fn watches(&self) -> usize {
        self.watches.load(Ordering::Relaxed)
    }

    /// Drops watch `wd` of `inst` from the registry.
    fn forget(&self, key: Key, inst: &Instance, wd: i32) {
        let mut r = self.registry();
        if let Some(v) = r.get_mut(&key) {
            let before = v.len();
            v.retain(|(i, w)| !(*w == wd && std::ptr::eq(i.as_ptr(), inst)));
            self.watches.fetch_sub(before - v.len(), Ordering::Relaxed);
            if v.is_empty() {
                r.remove(&key);
            }
        }
    }
}

struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// Bytes the event takes in a read: the name NUL-padded to a multiple of the
    /// header size, as Linux pads it.
    fn size(&self) -> usize {
        EVENT_SIZE + padded(&self.name)
    }
}

fn padded(name: &[u8]) -> usize {
    if name.is_empty() {
        0
    } else {
        (name.len() + 1).next_multiple_of(EVENT_SIZE)
    }
}

struct Watch {
    key: Key,
    mask: u32,
}

#[derive(Default)]
struct State {
    watches: BTreeMap<i32, Watch>,
    by_key: HashMap<Key, i32>,
    last_wd: i32,
    events: VecDeque<Event>,
    bytes: usize,
}

/// One inotify instance (what `inotify_init1` returns an fd to).
pub struct Instance {
    space: Arc<Inotify>,
    state: Mutex<State>,
    queue: WaitQueue,
    uid: u32,
    ino: u64,
}

impl Instance {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event: merged with the last queued one if identical, an overflow
    /// event instead once the queue is full.
    fn push(s: &mut State, e: Event) {
        if let Some(last) = s.events.back() {
            if last.mask & IN_IGNORED == 0
                && last.mask == e.mask
                && last.wd == e.wd
                && last.cookie == e.cookie
                && last.name == e.name
            {
                return;
            }
        }
        let e = if s.events.len() >= MAX_QUEUED_EVENTS {
            if s.events.back().is_some_and(|l| l.mask == IN_Q_OVERFLOW) {
                return;
            }
            Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: Vec::new(),
            }
        } else {
            e
        };
        s.bytes += e.size();
        s.events.push_back(e);
    }

    /// Delivers an event on watch `wd` if it asks for it; `child` marks events
    /// that reach the watch through a child (for `IN_EXCL_UNLINK`).
    fn deliver(&self, wd: i32, mask: u32, cookie: u32, name: &[u8], child_unlinked: Option<bool>) {
        let mut s = self.lock();
        let Some(w) = s.watches.get(&wd) else {
            return;
        };
        if w.mask & mask & IN_ALL_EVENTS == 0 {
            return;
        }
        if child_unlinked == Some(true) && w.mask & IN_EXCL_UNLINK != 0 {
            return;
        }
        let oneshot = w.mask & IN_ONESHOT != 0;
        Self::push(
            &mut s,
            Event {
                wd,
                mask: mask & (IN_ALL_EVENTS | IN_ISDIR),
                cookie,
                name: name.to_vec(),
            },
        );
        if oneshot {
            self.drop_watch(&mut s, wd);
        }
        drop(s);
        self.queue.notify_all();
    }

    /// Removes watch `wd` and queues `IN_IGNORED` for it.
    fn drop_watch(&self, s: &mut State, wd: i32) {
        let Some(w) = s.watches.remove(&wd) else {
            return;
        };
        s.by_key.remove(&w.key);
        self.space.forget(w.key, self, wd);
        if let Some(u) = self.space.per_user().get_mut(&self.uid) {
            u.1 = u.1.saturating_sub(1);
        }
        Self::push(
            s,
            Event {
                wd,
                mask: IN_IGNORED,
                cookie: 0,
                name: Vec::new(),
            },
        );
    }

    /// The inode's watch of this instance went away with the inode.
    fn inode_gone(&self, wd: i32) {
        let mut s = self.lock();
        self.drop_watch(&mut s, wd);
        drop(s);
        self.queue.notify_all();
    }
}

/// The open file of an inotify instance.
pub struct InotifyFile(Arc<Instance>);

impl InotifyFile {
    /// A new instance of sandbox `space` for user `uid`, numbered from `inos`;
    /// `EMFILE` past `max_user_instances`.
    pub fn new(space: &Arc<Inotify>, inos: &AnonInos, uid: u32) -> SysResult<InotifyFile> {
        let mut u = space.per_user();
        let e = u.entry(uid).or_default();
        if e.0 >= MAX_USER_INSTANCES {
            return Err(Errno::EMFILE);
        }
        e.0 += 1;
        Ok(InotifyFile(Arc::new(Instance {
            space: space.clone(),
            state: Mutex::new(State::default()),
            queue: WaitQueue::new(),
            uid,
            ino: inos.next(AnonKind::Inotify),
        })))
    }

    /// `inotify_add_watch` on the inode `st` describes (the caller resolved the
    /// path and checked read permission): the watch descriptor.
    pub fn add_watch(&self, st: &Stat, mask: u32) -> SysResult<i32> {
        let inst = &self.0;
        let key = (st.dev, st.ino);
        let mut s = inst.lock();
        if let Some(&wd) = s.by_key.get(&key) {
            if mask & IN_MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            if let Some(w) = s.watches.get_mut(&wd) {
                if mask & IN_MASK_ADD != 0 {
                    w.mask |= mask & KEPT_BITS;
                } else {
                    w.mask = mask & KEPT_BITS;
                }
            }
            return Ok(wd);
        }
        {
            let mut u = inst.space.per_user();
            let e = u.entry(inst.uid).or_default();
            if e.1 >= MAX_USER_WATCHES {
                return Err(Errno::ENOSPC);
            }
            e.1 += 1;
        }
        // Descriptors are handed out cyclically from 1, as Linux's idr does.
        let mut wd = s.last_wd;
        loop {
            wd = if wd >= i32::MAX - 1 { 1 } else { wd + 1 };
            if !s.watches.contains_key(&wd) {
                break;
            }
        }
        s.last_wd = wd;
        s.watches.insert(
            wd,
            Watch {
                key,
                mask: mask & KEPT_BITS,
            },
        );
        s.by_key.insert(key, wd);
        inst.space
            .registry()
            .entry(key)
            .or_default()
            .push((Arc::downgrade(inst), wd));
        inst.space.watches.fetch_add(1, Ordering::Relaxed);
        Ok(wd)
    }

    /// `inotify_rm_watch`: `EINVAL` for an unknown descriptor.
    pub fn rm_watch(&self, wd: i32) -> SysResult<()> {
        let mut s = self.0.lock();
        if !s.watches.contains_key(&wd) {
            return Err(Errno::EINVAL);
        }
        self.0.drop_watch(&mut s, wd);
        drop(s);
        self.0.queue.notify_all();
        Ok(())
    }

    fn watch_lines(&self) -> String {
        let s = self.0.lock();
        let mut out = String::new();
        for (wd, w) in &s.watches {
            let (dev, ino) = w.key;
            // The kernel's internal device encoding: major in the top 12 bits.
            let sdev = (libc::major(dev) << 20) | libc::minor(dev);
            out.push_str(&format!(
                "inotify wd:{wd:x} ino:{ino:x} sdev:{sdev:x} mask:{:x} ignored_mask:0\n",
                w.mask
            ));
        }
        out
    }
}

impl Drop for InotifyFile {
    fn drop(&mut self) {
        let s = std::mem::take(&mut *self.0.lock());
        for (wd, w) in s.watches {
            self.0.space.forget(w.key, &self.0, wd);
        }
        let mut u = self.0.space.per_user();
        if let Some(e) = u.get_mut(&self.0.uid) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(s.by_key.len());
        }
    }
}

impl FileImpl for InotifyFile {
    fn read(&self, buf: &mut [u8], _offset: u64) -> SysResult<usize> {
        let mut s = self.0.lock();
        let Some(first) = s.events.front() else {
            return Err(Errno::EAGAIN);
        };
        if first.size() > buf.len() {
            return Err(Errno::EINVAL);
        }
        let mut n = 0;
        while let Some(e) = s.events.front() {
            let size = e.size();
            if n + size > buf.len() {
                break;
            }
            let out = &mut buf[n..n + size];
            out[0..4].copy_from_slice(&e.wd.to_ne_bytes());
            out[4..8].copy_from_slice(&e.mask.to_ne_bytes());
            out[8..12].copy_from_slice(&e.cookie.to_ne_bytes());
            out[12..16].copy_from_slice(&(padded(&e.name) as u32).to_ne_bytes());
            out[16..].fill(0);
            out[16..16 + e.name.len()].copy_from_slice(&e.name);
            n += size;
            s.bytes -= size;
            s.events.pop_front();
        }
        Ok(n)
    }

    fn write(&self, _buf: &[u8], _offset: u64) -> SysResult<usize> {
        Err(Errno::EINVAL)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: 0xd,
            ino: self.0.ino,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }

    fn ioctl(&self, req: u64, arg: u64, mem: &dyn AddressSpace) -> SysResult<u64> {
        if req != libc::FIONREAD {
            return Err(Errno::ENOTTY);
        }
        let n = self.0.lock().bytes.min(i32::MAX as usize) as i32;
        crate::mm::io::write_all(mem, arg, &n.to_ne_bytes())?;
        Ok(0)
    }

    fn readiness(&self) -> u32 {
        if self.0.lock().events.is_empty() {
            0
        } else {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.0.queue)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// One line per watch, as Linux shows them (without the file handle).
    fn fdinfo(&self) -> String {
        self.watch_lines()
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("inotify")
    }
}

/// Validates `inotify_add_watch`'s mask before anything else is looked at.
pub fn check_mask(mask: u32) -> SysResult<()> {
    if mask & ALL_BITS == 0 || (mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

// ---- Hooks the VFS calls ----

fn stat_of(inode: &Arc<dyn Inode>) -> Option<Stat> {
    inode.stat().ok()
}

fn isdir(st: &Stat) -> u32 {
    if st.is_dir() {
        IN_ISDIR
    } else {
        0
    }
}

impl Inotify {
    fn watchers(&self, key: Key) -> Vec<(Arc<Instance>, i32)> {
        self.registry()
            .get(&key)
            .map(|v| {
                v.iter()
                    .filter_map(|(i, wd)| i.upgrade().map(|i| (i, *wd)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An event on the file `d` names: to a watched parent with the name (for the
    /// events Linux reports to parents), then to the file's own watches.
    fn on_dentry(&self, d: &Dentry, mask: u32) {
        if !self.active() {
            return;
        }
        let Some(st) = stat_of(d.inode()) else {
            return;
        };
        let mask = mask | isdir(&st);
        if mask & ON_CHILD != 0 {
            if let Some(p) = d.parent() {
                if let Some(pst) = stat_of(p.inode()) {
                    let name = d.name();
                    let unlinked = st.nlink == 0 || self.orphans().contains(&(st.dev, st.ino));
                    for (i, wd) in self.watchers((pst.dev, pst.ino)) {
                        i.deliver(wd, mask, 0, &name, Some(unlinked));
                    }
                }
            }
        }
        self.on_self(&st, mask);
    }

    /// An event for the inode `st` describes alone.
    fn on_self(&self, st: &Stat, mask: u32) {
        for (i, wd) in self.watchers((st.dev, st.ino)) {
            i.deliver(wd, mask, 0, &[], None);
        }
    }

    /// An event about entry `name` of directory `dir`.
    fn on_child(&self, dir: &Dentry, name: &[u8], mask: u32, cookie: u32) {
        let Some(st) = stat_of(dir.inode()) else {
            return;
        };
        for (i, wd) in self.watchers((st.dev, st.ino)) {
            i.deliver(wd, mask, cookie, name, None);
        }
    }

    /// The inode `st` describes is gone: `IN_DELETE_SELF`, then every watch on it is
    /// removed (`IN_IGNORED`).
    fn gone(&self, st: &Stat) {
        let list = self.watchers((st.dev, st.ino));
        for (i, wd) in &list {
            i.deliver(*wd, IN_DELETE_SELF | isdir(st), 0, &[], None);
        }
        for (i, wd) in list {
            i.inode_gone(wd);
        }
    }

    /// A file was opened (not `O_PATH`).
    /// From now on the file reports its reads, writes and close here.
    pub fn opened(self: &Arc<Self>, f: &OpenFile) {
        f.notify_to(self.clone());
        if let Some(d) = f.dentry() {
            if self.active() && !f.is_path() {
                self.on_dentry(d, IN_OPEN);
            }
        }
    }

    /// A file was opened by `execve` (the program, a `#!` interpreter or the ELF
    /// interpreter): Linux reports the open, the kernel's reads of its headers and the
    /// close at the end of the exec; the sentry reports all three when it opens it.
    pub fn executed(&self, d: &Dentry) {
        if self.active() {
            self.on_dentry(d, IN_OPEN);
            self.on_dentry(d, IN_ACCESS);
            self.on_dentry(d, IN_CLOSE_NOWRITE);
        }
    }

    /// Data was read from `f` (or its directory listed).
    pub fn accessed(&self, f: &OpenFile) {
        if let Some(d) = f.dentry() {
            if self.active() {
                self.on_dentry(d, IN_ACCESS);
            }
        }
    }

    /// Data was written to `f` (or it was truncated or allocated).
    pub fn modified(&self, f: &OpenFile) {
        if let Some(d) = f.dentry() {
            if self.active() {
                self.on_dentry(d, IN_MODIFY);
            }
        }
    }

    /// The file `d` names was modified through no open file (`truncate`).
    pub fn modified_path(&self, d: &Dentry) {
        self.on_dentry(d, IN_MODIFY);
    }

    /// The last reference to open file description `f` went away. If it held the
    /// last use of a file already unlinked, the file is gone now, as Linux reports
    /// `IN_DELETE_SELF` at the final close.
    pub fn closed(&self, f: &OpenFile, dentry: &Arc<Dentry>) {
        if !self.active() || f.is_path() {
            return;
        }
        let acc = f.flags() & libc::O_ACCMODE;
        let mask = if acc == libc::O_WRONLY || acc == libc::O_RDWR {
            IN_CLOSE_WRITE
        } else {
            IN_CLOSE_NOWRITE
        };
        self.on_dentry(dentry, mask);
        if Arc::strong_count(dentry) == 1 {
            if let Some(st) = stat_of(dentry.inode()) {
                if self.orphans().remove(&(st.dev, st.ino)) {
                    self.gone(&st);
                }
            }
        }
    }

    /// Metadata of the file `d` names changed (chmod, chown, utimes, xattrs).
    pub fn attrib(&self, d: &Dentry) {
        self.on_dentry(d, IN_ATTRIB);
    }

    /// The events Linux's `fsnotify_change` derives from an attribute change.
    pub fn setattr(&self, d: &Dentry, a: &SetAttr) {
        if !self.active() {
            return;
        }
        let mut mask = 0;
        if a.uid.is_some() || a.gid.is_some() || a.mode.is_some() {
            mask |= IN_ATTRIB;
        }
        if a.size.is_some() {
            mask |= IN_MODIFY;
        }
        match (a.atime != SetTime::Omit, a.mtime != SetTime::Omit) {
            (true, true) => mask |= IN_ATTRIB,
            (true, false) => mask |= IN_ACCESS,
            (false, true) => mask |= IN_MODIFY,
            (false, false) => {}
        }
        if mask != 0 {
            self.on_dentry(d, mask);
        }
    }

    /// `name` was created in `dir` (open with `O_CREAT`, mkdir, mknod, symlink).
    pub fn created(&self, dir: &Dentry, name: &[u8], child: &Arc<dyn Inode>) {
        if !self.active() {
            return;
        }
        let flag = stat_of(child).map(|s| isdir(&s)).unwrap_or(0);
        self.on_child(dir, name, IN_CREATE | flag, 0);
    }

    /// `name` in `dir` became a new link to `target`.
    pub fn linked(&self, dir: &Dentry, name: &[u8], target: &Arc<dyn Inode>) {
        if !self.active() {
            return;
        }
        if let Some(st) = stat_of(target) {
            self.on_self(&st, IN_ATTRIB);
        }
        self.on_child(dir, name, IN_CREATE, 0);
    }

    /// Reports the loss of a link of `victim`, whose attributes before were `st`:
    /// its link count changed, and it is gone once no name and no use is left.
    fn unlinked(&self, victim: &Arc<Dentry>, st: &Stat) {
        if !st.is_dir() {
            self.on_self(st, IN_ATTRIB);
        }
        // Counted from before the change: an overlay's lower file keeps its own count
        // on the host, so the count after cannot tell.
        if st.is_dir() || st.nlink <= 1 {
            self.last_link_gone(victim, st);
        }
    }

    /// The file `d` names (attributes `st`) lost its last link: it is gone now if the
    /// caller's reference is the only one left, else at the close of the last open
    /// file that holds it.
    fn last_link_gone(&self, d: &Arc<Dentry>, st: &Stat) {
        let key = (st.dev, st.ino);
        if Arc::strong_count(d) <= 1 {
            self.gone(st);
        } else if !self.watchers(key).is_empty() {
            self.orphans().insert(key);
        }
    }

    /// Entry `name` (the file `victim`, whose attributes before were `st`) was
    /// removed from `dir` by unlink or rmdir.
    pub fn removed(&self, dir: &Dentry, name: &[u8], victim: Arc<Dentry>, st: &Stat) {
        if !self.active() {
            return;
        }
        self.unlinked(&victim, st);
        drop(victim);
        self.on_child(dir, name, IN_DELETE | isdir(st), 0);
    }

    /// A rename of `old_dir/old` (the file `moved` describes) to `new_dir/new` happened;
    /// `target` is the dentry and attributes of what `new` named before (with
    /// `exchange`, what now sits at `old`).
    pub fn renamed(
        &self,
        (old_dir, old): (&Dentry, &[u8]),
        (new_dir, new): (&Dentry, &[u8]),
        exchange: bool,
        moved: &Stat,
        target: Option<(Arc<Dentry>, Stat)>,
    ) {
        if !self.active() {
            return;
        }
        let cookie = self
            .next_cookie
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let flag = isdir(moved);
        self.on_child(old_dir, old, IN_MOVED_FROM | flag, cookie);
        self.on_child(new_dir, new, IN_MOVED_TO | flag, cookie);
        if exchange {
            if let Some((_, tst)) = &target {
                let tflag = isdir(tst);
                let cookie = self
                    .next_cookie
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(1);
                self.on_child(new_dir, new, IN_MOVED_FROM | tflag, cookie);
                self.on_child(old_dir, old, IN_MOVED_TO | tflag, cookie);
            }
            self.on_self(moved, IN_MOVE_SELF | flag);
            if let Some((_, tst)) = &target {
                self.on_self(tst, IN_MOVE_SELF | isdir(tst));
            }
            return;
        }
        // Renaming a name onto another link of the same file changes nothing.
        let target = target.filter(|(_, t)| (t.dev, t.ino) != (moved.dev, moved.ino));
        if let Some((_, tst)) = &target {
            if !tst.is_dir() {
                self.on_self(tst, IN_ATTRIB);
            }
        }
        self.on_self(moved, IN_MOVE_SELF | flag);
        if let Some((td, tst)) = target {
            // The replaced dentry left the cache: the caller's copy is the only
            // reference unless something holds the file open.
            if tst.is_dir() || tst.nlink <= 1 {
                self.last_link_gone(&td, &tst);
            }
        }
    }
}

impl Notify for Inotify {
    fn accessed(&self, f: &OpenFile) {
        Inotify::accessed(self, f);
    }
    fn modified(&self, f: &OpenFile) {
        Inotify::modified(self, f);
    }
    fn closed(&self, f: &OpenFile, dentry: &Arc<Dentry>) {
        Inotify::closed(self, f, dentry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(space: &Arc<Inotify>, uid: u32) -> InotifyFile {
        InotifyFile::new(space, &AnonInos::default(), uid).unwrap()
    }

    fn st(ino: u64) -> Stat {
        Stat {
            dev: 77,
            ino,
            mode: libc::S_IFREG | 0o644,
            nlink: 1,
            ..Default::default()
        }
    }

    fn read_all(f: &InotifyFile) -> Vec<(i32, u32, u32, Vec<u8>)> {
        let mut buf = vec![0u8; 1 << 16];
        let n = match f.read(&mut buf, 0) {
            Ok(n) => n,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        let mut p = 0;
        while p < n {
            let wd = i32::from_ne_bytes(buf[p..p + 4].try_into().unwrap());
            let mask = u32::from_ne_bytes(buf[p + 4..p + 8].try_into().unwrap());
            let cookie = u32::from_ne_bytes(buf[p + 8..p + 12].try_into().unwrap());
            let len = u32::from_ne_bytes(buf[p + 12..p + 16].try_into().unwrap()) as usize;
            let name = buf[p + 16..p + 16 + len]
                .iter()
                .take_while(|&&b| b != 0)
                .copied()
                .collect();
            out.push((wd, mask, cookie, name));
            p += 16 + len;
        }
        out
    }

    #[test]
    fn events_coalesce_and_oneshot_removes_the_watch() {
        let sp = Arc::new(Inotify::default());
        let f = new(&sp, 90001);
        let wd = f.add_watch(&st(1), IN_MODIFY | IN_ONESHOT).unwrap();
        assert_eq!(
            f.add_watch(&st(1), IN_ACCESS | IN_MASK_CREATE),
            Err(Errno::EEXIST)
        );
        sp.on_self(&st(1), IN_ACCESS);
        assert!(read_all(&f).is_empty());
        sp.on_self(&st(1), IN_MODIFY);
        sp.on_self(&st(1), IN_MODIFY);
        assert_eq!(
            read_all(&f),
            vec![(wd, IN_MODIFY, 0, vec![]), (wd, IN_IGNORED, 0, vec![])]
        );
        assert_eq!(f.rm_watch(wd), Err(Errno::EINVAL));
    }

    #[test]
    fn a_small_buffer_is_einval_and_names_are_padded() {
        let sp = Arc::new(Inotify::default());
        let f = new(&sp, 90002);
        let wd = f.add_watch(&st(2), IN_CREATE).unwrap();
        f.0.deliver(wd, IN_CREATE, 0, b"abc", None);
        let mut small = [0u8; 16];
        assert_eq!(f.read(&mut small, 0), Err(Errno::EINVAL));
        let mut buf = [0u8; 64];
        assert_eq!(f.read(&mut buf, 0), Ok(32));
        assert_eq!(u32::from_ne_bytes(buf[12..16].try_into().unwrap()), 16);
        assert_eq!(f.read(&mut buf, 0), Err(Errno::EAGAIN));
    }

    #[test]
    fn the_queue_overflows_once() {
        let sp = Arc::new(Inotify::default());
        let f = new(&sp, 90003);
        let wd = f.add_watch(&st(3), IN_CREATE).unwrap();
        for i in 0..MAX_QUEUED_EVENTS + 10 {
            f.0.deliver(wd, IN_CREATE, 0, format!("f{i}").as_bytes(), None);
        }
        let s = f.0.lock();
        assert_eq!(s.events.len(), MAX_QUEUED_EVENTS + 1);
        assert_eq!(s.events.back().unwrap().mask, IN_Q_OVERFLOW);
        assert_eq!(s.events.back().unwrap().wd, -1);
    }

    #[test]
    fn closing_the_instance_drops_its_watches() {
        let sp = Arc::new(Inotify::default());
        let before = sp.watchers((77, 4)).len();
        let f = new(&sp, 90004);
        f.add_watch(&st(4), IN_ALL_EVENTS).unwrap();
        assert_eq!(sp.watchers((77, 4)).len(), before + 1);
        drop(f);
        assert_eq!(sp.watchers((77, 4)).len(), before);
    }
}
