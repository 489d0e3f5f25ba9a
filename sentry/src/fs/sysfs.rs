//! A minimal, read-only sysfs: what programs read to size themselves
//! (`devices/system/cpu/{online,possible,present}`) and the top-level directories
//! they expect to exist. Nothing of the host's `/sys` is exposed.

use std::sync::{Arc, OnceLock, Weak};

use crate::errno::{Errno, SysResult};
use crate::fs::devfs::dir::{FsInfo, StaticDir, StaticFile};
use crate::net::Netstack;
use crate::vfs::{FileImpl, Inode, Stat, StatFs};

/// `SYSFS_MAGIC`.
const SYSFS_MAGIC: i64 = 0x6265_6572;
/// `st_dev` of sysfs objects.
const SYSFS_DEV: u64 = 0x15;
/// Size sysfs attributes report in `stat`.
const ATTR_SIZE: i64 = 4096;

/// A CPU list as sysfs prints it: "0" or "0-N".
fn cpu_list(ncpus: usize) -> Vec<u8> {
    if ncpus <= 1 {
        b"0\n".to_vec()
    } else {
        format!("0-{}\n", ncpus - 1).into_bytes()
    }
}

/// A directory per interface of `net`, with its attributes.
fn net_class_now(fs: FsInfo, net: &Netstack) -> Arc<dyn Inode> {
    let dirs: Vec<(Vec<u8>, Arc<dyn Inode>)> = crate::net::iflist::links(net)
        .iter()
        .map(|l| {
            let attrs: Vec<(&[u8], Arc<dyn Inode>)> = crate::net::procfs::sysfs_attrs(l)
                .into_iter()
                .map(|(n, v)| {
                    (
                        n.as_bytes(),
                        StaticFile::new(fs, v.into_bytes(), ATTR_SIZE) as Arc<dyn Inode>,
                    )
                })
                .collect();
            (
                l.name.as_bytes().to_vec(),
                StaticDir::new(fs, 0o755, attrs) as Arc<dyn Inode>,
            )
        })
        .collect();
    StaticDir::new(
        fs,
        0o755,
        dirs.iter()
            .map(|(n, i)| (n.as_slice(), i.clone()))
            .collect(),
    )
}

/// `class/net`: the interfaces of the network namespace the sysfs instance was
/// mounted in (as Linux's, tagged at mount time: a namespace made inside the
/// sandbox shows its `lo` only). The sandbox's first sysfs is mounted before
/// the pod's interface is attached, so the directory is made on first use once it
/// is (before that, and in a sandbox without one, it holds `lo` only).
struct NetClass {
    fs: FsInfo,
    net: Weak<Netstack>,
    lo_only: Arc<dyn Inode>,
    with_pod: OnceLock<Arc<dyn Inode>>,
}

impl NetClass {
    fn now(&self) -> Arc<dyn Inode> {
        match self.net.upgrade() {
            // A namespace made inside: its own lo, as it is now (never the host's
            // view, which only the sandbox's first namespace has).
            Some(net) if net.is_namespaced() => net_class_now(self.fs, &net),
            Some(net) if net.external().is_some() || net.host_view() => self
                .with_pod
                .get_or_init(|| net_class_now(self.fs, &net))
                .clone(),
            _ => self.lo_only.clone(),
        }
    }
}

impl Inode for NetClass {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn stat(&self) -> SysResult<Stat> {
        self.now().stat()
    }
    fn lookup(&self, name: &[u8]) -> SysResult<Arc<dyn Inode>> {
        self.now().lookup(name)
    }
    fn open(&self, flags: i32) -> SysResult<Box<dyn FileImpl>> {
        self.now().open(flags)
    }
    fn mutation_refused(&self) -> Errno {
        Errno::EPERM
    }
    fn fs_id(&self) -> usize {
        self.fs.dev as usize
    }
    fn statfs(&self) -> SysResult<StatFs> {
        self.now().statfs()
    }
}

fn net_class(fs: FsInfo, net: &Arc<Netstack>) -> Arc<dyn Inode> {
    Arc::new(NetClass {
        fs,
        net: Arc::downgrade(net),
        lo_only: net_class_now(fs, &Netstack::default()),
        with_pod: OnceLock::new(),
    })
}

/// Builds the root of a sysfs instance for a sandbox with `ncpus` CPUs and the
/// network `net`.
pub fn new_root(ncpus: usize, net: &Arc<Netstack>) -> Arc<dyn Inode> {
    let fs = FsInfo {
        dev: SYSFS_DEV,
        magic: SYSFS_MAGIC,
    };
    let list = cpu_list(ncpus);
    let attr = |d: &[u8]| -> Arc<dyn Inode> { StaticFile::new(fs, d.to_vec(), ATTR_SIZE) };
    let mut cpu_entries: Vec<(Vec<u8>, Arc<dyn Inode>)> = vec![
        (b"online".to_vec(), attr(&list)),
        (b"possible".to_vec(), attr(&list)),
        (b"present".to_vec(), attr(&list)),
    ];
    for i in 0..ncpus {
        cpu_entries.push((
            format!("cpu{i}").into_bytes(),
            StaticDir::new(fs, 0o755, vec![]),
        ));
    }
    let cpu = StaticDir::new(
        fs,
        0o755,
        cpu_entries
            .iter()
            .map(|(n, i)| (n.as_slice(), i.clone()))
            .collect(),
    );
    let system = StaticDir::new(fs, 0o755, vec![(b"cpu", cpu)]);
    let devices = StaticDir::new(fs, 0o755, vec![(b"system", system)]);
    let empty = || -> Arc<dyn Inode> { StaticDir::new(fs, 0o755, vec![]) };
    StaticDir::new(
        fs,
        0o555,
        vec![
            (b"block", empty()),
            (b"bus", empty()),
            (
                b"class",
                StaticDir::new(fs, 0o755, vec![(b"net", net_class(fs, net))]),
            ),
            (b"dev", empty()),
            (b"devices", devices),
            (b"firmware", empty()),
            // The cgroup filesystem's mountpoint, as on Linux.
            (b"fs", StaticDir::new(fs, 0o755, vec![(b"cgroup", empty())])),
            (b"kernel", empty()),
            (b"module", empty()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_files() {
        let root = new_root(4, &Netstack::new());
        let cpu = root
            .lookup(b"devices")
            .and_then(|d| d.lookup(b"system"))
            .and_then(|d| d.lookup(b"cpu"))
            .unwrap();
        let f = cpu.lookup(b"online").unwrap().open(libc::O_RDONLY).unwrap();
        let mut b = [0u8; 64];
        let n = f.read(&mut b, 0).unwrap();
        assert_eq!(&b[..n], b"0-3\n");
        assert!(cpu.lookup(b"cpu3").unwrap().stat().unwrap().is_dir());
        assert!(cpu.lookup(b"cpu4").is_err());
        assert!(cpu.lookup(b"online").unwrap().open(libc::O_WRONLY).is_err());
        assert_eq!(cpu_list(1), b"0\n");
    }
}
