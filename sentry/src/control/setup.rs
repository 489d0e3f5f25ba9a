//! What a sandbox and its processes are made of, from the runtime's config: the
//! filesystems its mounts may name and the process specs of the first process and
//! of those the runtime starts later. Shared by [`crate::boot`] (the first process)
//! and the control channel (`exec`, added containers).

use std::collections::HashMap;
use std::sync::Arc;

use crate::fs::tmpfs::Tmpfs;
use crate::kernel::creds::{CapSets, Credentials, ALL_CAPS, CAP_NET_RAW};
use crate::kernel::limits::{Limit, Limits};
use crate::kernel::spawn::ProcessSpec;
use crate::kernel::Kernel;
use crate::vfs::mount::{self, FsConstructor};
use crate::vfs::path::{resolve, Follow};
use crate::vfs::{Dentry, FdTable, FsContext};

/// Filesystem constructors by mount kind (`mqueue` is the root IPC namespace's
/// queues).
///
/// `bind` entries are the gofer's bind mounts, attached by position: the runtime
/// passes the gofer one `--mount` per `bind` entry of `config.mounts`, in the same
/// order, and the mount table builds the entries in order, so the n-th `bind`
/// constructed is the gofer's mount n.
///
/// `devices` are the spec's emulated `linux.devices`, added to devfs; a clash with
/// devfs's own entries is an error naming the path.
pub fn fs_constructors(
    kernel: &Arc<Kernel>,
    client: &Arc<gofer::Client>,
    devices: &[crate::config::DeviceConfig],
) -> Result<HashMap<String, FsConstructor>, String> {
    let mut m: HashMap<String, FsConstructor> = HashMap::new();
    // A tmpfs without `size=` gets half the machine's memory, as on Linux; with a
    // memory limit that machine is the limit, so filling a tmpfs ends in ENOSPC
    // before the host cgroup runs out (its pages, written by the sentry, count for
    // no process the host's OOM killer could pick but the sentry).
    let tmpfs = Tmpfs::constructor(kernel.mem.clone());
    let half = kernel.resources.memory_limit().map(|l| l / 2);
    m.insert(
        "tmpfs".to_string(),
        Box::new(move |mc| match half {
            Some(h) if !mc.options.iter().any(|o| o.starts_with("size=")) => {
                let mut sized = mc.clone();
                sized.options.push(format!("size={h}"));
                tmpfs(&sized)
            }
            _ => tmpfs(mc),
        }),
    );
    let mq = kernel.root_ns.ipc.mq.clone();
    m.insert("mqueue".to_string(), Box::new(move |_| Ok(mq.root())));
    let next_bind = std::sync::atomic::AtomicU32::new(0);
    let client = client.clone();
    m.insert(
        "bind".to_string(),
        Box::new(move |mc| {
            let index = next_bind.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (flags, _) = mount::parse_options(&mc.options);
            crate::fs::gofer::GoferFs::mount_bind(
                client.clone(),
                index,
                flags & libc::MS_RDONLY != 0,
            )
        }),
    );
    let k = Arc::downgrade(kernel);
    m.insert(
        "proc".to_string(),
        Box::new(move |_| {
            k.upgrade()
                .map(|k| crate::fs::procfs::new_root(&k, k.root_ns.pid_children.clone()))
                .ok_or(crate::errno::Errno::EIO)
        }),
    );
    // devfs carries its own pts directory (so /dev/ptmx and /dev/pts share ptys);
    // a separate devpts mount over /dev/pts is therefore the same tree.
    let devfs =
        crate::fs::devfs::new_root_with(devices).map_err(|e| format!("linux.devices: {e}"))?;
    let devfs2 = devfs.clone();
    m.insert("devtmpfs".to_string(), Box::new(move |_| Ok(devfs.clone())));
    m.insert(
        "devpts".to_string(),
        Box::new(move |_| devfs2.lookup(b"pts")),
    );
    let kc = Arc::downgrade(kernel);
    let cgroupfs: FsConstructor = Box::new(move |_| {
        kc.upgrade()
            .map(|k| crate::fs::cgroupfs::new_root(&k))
            .ok_or(crate::errno::Errno::EIO)
    });
    m.insert("cgroup2".to_string(), cgroupfs);
    let ncpus = kernel.ncpus;
    let net = kernel.net.clone();
    m.insert(
        "sysfs".to_string(),
        Box::new(move |_| Ok(crate::fs::sysfs::new_root(ncpus, &net))),
    );
    Ok(m)
}

/// The credentials a process started from outside the sandbox has just before its
/// program is exec'd (see [`Credentials::for_container`]).
pub fn process_creds(p: &crate::config::ProcessConfig, net_raw: bool) -> Credentials {
    let groups = p.additional_gids.clone();
    let mut caps = match &p.capabilities {
        Some(c) => CapSets {
            bounding: c.bounding,
            effective: c.effective,
            inheritable: c.inheritable,
            permitted: c.permitted,
            ambient: c.ambient,
        },
        None => {
            let all = if p.uid == 0 { ALL_CAPS } else { 0 };
            CapSets {
                bounding: ALL_CAPS,
                effective: all,
                permitted: all,
                ..Default::default()
            }
        }
    };
    if !net_raw {
        caps = caps.without(CAP_NET_RAW);
    }
    Credentials::for_container(p.uid, p.gid, groups, &caps, p.no_new_privs)
}

/// A process started from outside the sandbox (the first one, or an exec'd one),
/// from its config, with root `root`, open files `fds` and parent `parent` (0: none
/// in the sandbox). Without `net_raw` (the runtime's `--net-raw`), CAP_NET_RAW is
/// taken from every capability set whatever the config asks.
pub fn process_spec(
    root: &Arc<Dentry>,
    fds: FdTable,
    p: &crate::config::ProcessConfig,
    parent: i32,
    net_raw: bool,
) -> Result<ProcessSpec, String> {
    if p.args.is_empty() {
        return Err("process.args: must not be empty".into());
    }
    let start = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask: 0o022,
    };
    let cwd = resolve(&start, root, p.cwd.as_bytes(), Follow::Yes)
        .map_err(|e| format!("process.cwd {:?}: {e}", p.cwd))?;
    if !cwd.inode().stat().map(|s| s.is_dir()).unwrap_or(false) {
        return Err(format!("process.cwd {:?}: not a directory", p.cwd));
    }
    let fs = FsContext {
        root: root.clone(),
        cwd,
        umask: 0o022,
    };
    let creds = process_creds(p, net_raw);
    let mut limits = Limits::default();
    for r in &p.rlimits {
        limits
            .set(
                r.resource,
                Limit {
                    cur: r.soft,
                    max: r.hard,
                },
                true,
            )
            .map_err(|e| format!("process.rlimits: resource {}: {e}", r.resource))?;
    }
    Ok(ProcessSpec {
        argv: p.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        envp: p.env.iter().map(|e| e.as_bytes().to_vec()).collect(),
        fs,
        creds,
        limits,
        fds,
        parent,
        oom_score_adj: p.oom_score_adj,
        gate: None,
        seccomp: p
            .seccomp
            .as_ref()
            .map(|c| crate::kernel::seccomp_spec::compile(c, &crate::syscalls::TABLE))
            .transpose()?,
    })
}
