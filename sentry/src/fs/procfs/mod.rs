//! procfs: the container's view of its own processes and of the (virtual) machine.
//! Everything is generated from the sentry's state; nothing comes from the host's
//! /proc.

pub mod comm;
pub mod fdlink;
pub mod mounts;
pub mod node;
pub mod ns;
pub mod sysctl;
pub mod userns;

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use crate::errno::{Errno, SysResult};
use crate::kernel::process::{self, ThreadGroup};
use crate::kernel::{Kernel, PID_MAX, RELEASE, VERSION};
use crate::mm::VmaBacking;
use crate::mm::VmaRole;
use crate::net::{addr::Family, procfs as netproc, Netstack};
use crate::sys::host;
use crate::vfs::Inode;

use crate::creds::userns::MapKind;
use crate::kernel::ns::PidNs;
use node::{GenDir, GenFile, GenLink};

/// Generates one per-process file.
type PidGen = fn(&Arc<ThreadGroup>, &Arc<Kernel>, i32) -> SysResult<Vec<u8>>;
/// Generates one per-process file that names other processes (by their ids in
/// the procfs's pid namespace).
type NsGen = fn(&Arc<ThreadGroup>, &Arc<Kernel>, i32, &PidNs) -> SysResult<Vec<u8>>;

/// Inode numbers: fixed entries below this, per-pid ones above.
const PID_INO_BASE: u64 = 1 << 32;

fn file(ino: u64, gen: impl Fn() -> SysResult<Vec<u8>> + Send + Sync + 'static) -> Arc<dyn Inode> {
    GenFile::new(ino, 0o444, (0, 0), Arc::new(gen))
}

fn text(ino: u64, s: String) -> Arc<dyn Inode> {
    file(ino, move || Ok(s.clone().into_bytes()))
}

/// `/proc/sys/kernel/yama` (inode numbers 135 and 136): `ptrace_scope`, which a
/// writer with `CAP_SYS_PTRACE` may change (see [`crate::kernel::yama`]).
fn yama_dir(k: &Weak<Kernel>) -> Arc<dyn Inode> {
    let (kr, kw, writer) = (k.clone(), k.clone(), caller_creds(k));
    let scope = GenFile::int_setting(
        136,
        move || Ok(kr.upgrade().ok_or(Errno::ESRCH)?.yama.scope()),
        move |v: i64| {
            let k = kw.upgrade().ok_or(Errno::ESRCH)?;
            k.yama
                .set_scope(v, writer()?.has_cap(crate::creds::CAP_SYS_PTRACE))
        },
    );
    GenDir::fixed(135, vec![("ptrace_scope", scope as Arc<dyn Inode>)])
}

/// The root of a procfs for `kernel` showing the processes of pid namespace
/// `pid_ns` (the mounter's) by their ids there.
pub fn new_root(kernel: &Arc<Kernel>, pid_ns: Arc<PidNs>) -> Arc<dyn Inode> {
    let k = Arc::downgrade(kernel);
    let ncpus = kernel.ncpus;
    let kh = k.clone();
    let sys = GenDir::fixed(
        100,
        vec![
            (
                "kernel",
                GenDir::fixed(
                    101,
                    vec![
                        (
                            "cap_last_cap",
                            text(107, format!("{}\n", crate::creds::CAP_LAST_CAP)),
                        ),
                        (
                            "hostname",
                            file(102, move || {
                                let k = kh.upgrade().ok_or(Errno::ESRCH)?;
                                let uts = reader_ns(&k).uts;
                                let h = uts.hostname.lock().map_err(|_| Errno::EIO)?.clone();
                                Ok(format!("{h}\n").into_bytes())
                            }),
                        ),
                        ("osrelease", text(103, format!("{RELEASE}\n"))),
                        ("ostype", text(104, "Linux\n".into())),
                        ("pid_max", text(105, format!("{PID_MAX}\n"))),
                        ("version", text(106, format!("{VERSION}\n"))),
                        ("yama", yama_dir(&k)),
                    ]
                    .into_iter()
                    .chain(sysctl::kernel_entries())
                    .collect(),
                ) as Arc<dyn Inode>,
            ),
            ("net", net_sys(&k)),
            (
                "vm",
                GenDir::fixed(
                    110,
                    [("overcommit_memory", text(111, "0\n".into()))]
                        .into_iter()
                        .chain(sysctl::vm_entries(kernel.platform.min_user_address()))
                        .collect(),
                ) as Arc<dyn Inode>,
            ),
            (
                "fs",
                sysctl::fs_dir(mqueue_sysctl(kernel), aio_sysctl(kernel)),
            ),
            ("net", sysctl::net_dir()),
            (
                "user",
                GenDir::fixed(
                    190,
                    vec![(
                        "max_user_namespaces",
                        userns::max_user_namespaces(191, caller_creds(&k)),
                    )],
                ),
            ),
        ],
    );
    let k1 = k.clone();
    let k2 = k.clone();
    let k3 = k.clone();
    let k4 = k.clone();
    let k5 = k.clone();
    let k6 = k.clone();
    let (ns1, ns2, ns3, ns4) = (
        pid_ns.clone(),
        pid_ns.clone(),
        pid_ns.clone(),
        pid_ns.clone(),
    );
    let fixed: Vec<(&'static str, Arc<dyn Inode>)> = vec![
        ("cpuinfo", file(2, move || Ok(cpuinfo(ncpus).into_bytes()))),
        ("meminfo", file(3, move || Ok(meminfo(&k6)?.into_bytes()))),
        ("stat", file(4, move || Ok(stat_text(&k1, ncpus)?.into_bytes()))),
        ("uptime", file(5, move || Ok(uptime(&k2, ncpus)?.into_bytes()))),
        ("loadavg", file(6, move || Ok(loadavg(&k3)?.into_bytes()))),
        ("version", text(7, format!("Linux version {RELEASE} (rvisor) {VERSION}\n"))),
        ("filesystems", text(8, "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevtmpfs\nnodev\tdevpts\nnodev\tmqueue\nnodev\toverlay\n".into())),
        ("mounts", GenLink::new(9, (0, 0), Arc::new(|| Ok(b"self/mounts".to_vec())))),
        ("self", GenLink::new(10, (0, 0), Arc::new(move || {
            let g = ns1.local(process::current().0).ok_or(Errno::ENOENT)?;
            Ok(g.to_string().into_bytes())
        }))),
        (
            "thread-self",
            GenLink::new(11, (0, 0), Arc::new(move || {
                let (g, t) = process::current();
                let (g, t) = (ns2.local(g).ok_or(Errno::ENOENT)?, ns2.local(t).ok_or(Errno::ENOENT)?);
                Ok(format!("{g}/task/{t}").into_bytes())
            })),
        ),
        ("sys", sys),
        // Each process's own network namespace, as Linux's `self/net`.
        ("net", GenLink::new(13, (0, 0), Arc::new(|| Ok(b"self/net".to_vec())))),
        // As on a cgroup v2 host (hierarchy 0): JVMs read it to find the
        // controllers before they look for the cgroup2 mount.
        ("cgroups", text(12, crate::fs::cgroupfs::proc_cgroups())),
    ];
    let names: Arc<Vec<(&'static str, Arc<dyn Inode>)>> = Arc::new(fixed);
    let n2 = names.clone();
    GenDir::new(
        1,
        0o555,
        (0, 0),
        Arc::new(move |name| {
            if let Some((_, i)) = names.iter().find(|(n, _)| n.as_bytes() == name) {
                return Ok(i.clone());
            }
            let pid: i32 = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Errno::ENOENT)?;
            let kernel = k4.upgrade().ok_or(Errno::ENOENT)?;
            let pid = ns3.global(pid).ok_or(Errno::ENOENT)?;
            let tg = kernel.registry()?.group(pid).ok_or(Errno::ENOENT)?;
            Ok(pid_dir(&kernel, &tg, None, &ns3))
        }),
        Arc::new(move || {
            let mut v: Vec<(u64, u8, Vec<u8>)> = n2
                .iter()
                .map(|(n, i)| {
                    let st = i.stat().unwrap_or_default();
                    (st.ino, node::dtype(st.mode), n.as_bytes().to_vec())
                })
                .collect();
            if let Some(kernel) = k5.upgrade() {
                for pid in kernel.registry()?.groups.keys() {
                    let Some(local) = ns4.local(*pid) else {
                        continue;
                    };
                    v.push((
                        PID_INO_BASE + (*pid as u64) * 64,
                        libc::DT_DIR,
                        local.to_string().into_bytes(),
                    ));
                }
            }
            Ok(v)
        }),
    )
}

/// `/proc/sys/net` of the reader's network namespace: the sysctls programs read
/// (fixed values, see `net::procfs`).
fn net_sys(k: &Weak<Kernel>) -> Arc<dyn Inode> {
    // The reader's (writer's) network namespace, at each read and write.
    let stack = |k: &Weak<Kernel>| -> SysResult<Arc<Netstack>> {
        let k = k.upgrade().ok_or(Errno::ESRCH)?;
        let ns = reader_ns(&k);
        Ok(ns.net.stack.clone())
    };
    let (k1, k2) = (k.clone(), k.clone());
    let mut core = Vec::new();
    let mut ipv4 = Vec::new();
    for (i, (path, val)) in netproc::SYSCTLS.iter().enumerate() {
        let (dir, name) = path.split_once('/').unwrap_or(("ipv4", path));
        let f = text(300 + i as u64, val.to_string());
        if dir == "core" {
            core.push((name, f));
        } else {
            ipv4.push((name, f));
        }
    }
    // Writable by root (the file's owner, so the credential check of the open
    // decides, as Linux's net sysctls for the namespace's root).
    ipv4.push((
        "ping_group_range",
        GenFile::writable(
            299,
            0o644,
            (0, 0),
            Arc::new(move || Ok(netproc::ping_group_range_text(&*stack(&k1)?).into_bytes())),
            Arc::new(move |buf: &[u8]| netproc::set_ping_group_range(&*stack(&k2)?, buf)),
        ),
    ));
    GenDir::fixed(
        200,
        vec![
            ("core", GenDir::fixed(201, core) as Arc<dyn Inode>),
            ("ipv4", GenDir::fixed(202, ipv4) as Arc<dyn Inode>),
        ],
    )
}

/// The network stack a `/proc/PID/net` file shows, looked up at each read (the
/// process may have moved to another network namespace since the directory was
/// made).
type NetOf = Arc<dyn Fn() -> SysResult<Arc<Netstack>> + Send + Sync>;

/// `/proc/PID/net`: the sockets of the stack `net` gives and its interface, and
/// the unix sockets of `unix`.
fn net_dir(net: NetOf, unix: Arc<crate::fs::unix::UnixSpace>) -> Arc<dyn Inode> {
    // Under --network=host the internet sockets and interfaces are the host's:
    // its own text of the file (net::hostview).
    let n = |name: &'static str, f: fn(&Netstack) -> String| {
        let net = net.clone();
        move || {
            if let Some(t) = crate::net::hostview::proc_file(name) {
                return Ok(t);
            }
            let stack = net()?;
            Ok(f(&stack).into_bytes())
        }
    };
    use netproc as p;
    GenDir::fixed(
        210,
        vec![
            ("tcp", file(211, n("tcp", |n| p::tcp(n, Family::V4)))),
            ("tcp6", file(212, n("tcp6", |n| p::tcp(n, Family::V6)))),
            ("udp", file(213, n("udp", |n| p::udp(n, Family::V4)))),
            ("udp6", file(214, n("udp6", |n| p::udp(n, Family::V6)))),
            (
                "udplite",
                file(220, n("udplite", |n| p::udplite(n, Family::V4))),
            ),
            (
                "udplite6",
                file(221, n("udplite6", |n| p::udplite(n, Family::V6))),
            ),
            ("dev", file(215, n("dev", p::dev))),
            ("if_inet6", file(216, n("if_inet6", p::if_inet6))),
            ("route", file(217, n("route", p::route))),
            ("sockstat", file(218, n("sockstat", p::sockstat))),
            ("snmp", file(222, n("snmp", p::snmp))),
            ("snmp6", file(223, n("snmp6", p::snmp6))),
            ("netstat", file(224, n("netstat", p::netstat))),
            (
                "unix",
                file(219, move || {
                    Ok(crate::fs::unix::proc_net_unix(&unix).into_bytes())
                }),
            ),
        ],
    )
}

/// `/proc/sys/fs/mqueue`: the limits of the reader's IPC namespace.
fn mqueue_sysctl(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
    let k = Arc::downgrade(kernel);
    crate::fs::mqueue::MqNamespace::sysctl_dir(Arc::new(move || match k.upgrade() {
        Some(k) => reader_ns(&k).ipc.mq.clone(),
        None => Default::default(),
    }))
}

/// `/proc/sys/fs/aio-nr` and `aio-max-nr` (root may write the latter).
fn aio_sysctl(kernel: &Arc<Kernel>) -> Vec<(&'static str, Arc<dyn Inode>)> {
    use std::sync::atomic::Ordering;
    let (a, b, c) = (
        Arc::downgrade(kernel),
        Arc::downgrade(kernel),
        Arc::downgrade(kernel),
    );
    let nr = GenFile::new(
        178,
        0o444,
        (0, 0),
        Arc::new(move || {
            let k = a.upgrade().ok_or(Errno::ENOENT)?;
            Ok(format!("{}\n", k.aio.nr()).into_bytes())
        }),
    );
    let max = GenFile::int_setting(
        179,
        move || {
            Ok(b.upgrade()
                .ok_or(Errno::ENOENT)?
                .aio
                .max_nr
                .load(Ordering::Relaxed))
        },
        move |v: u64| {
            let k = c.upgrade().ok_or(Errno::ENOENT)?;
            k.aio.max_nr.store(v, Ordering::Relaxed);
            Ok(())
        },
    );
    vec![("aio-nr", nr as Arc<dyn Inode>), ("aio-max-nr", max)]
}

/// The credentials of the process making the current call (for writes to files
/// whose rules depend on the writer).
fn caller_creds(k: &Weak<Kernel>) -> userns::CredsOf {
    let k = k.clone();
    Arc::new(move || {
        let k = k.upgrade().ok_or(Errno::ESRCH)?;
        let g = k
            .registry()?
            .group(process::current().0)
            .ok_or(Errno::ESRCH)?;
        let c = g.state()?.view.creds.clone();
        Ok(c)
    })
}

/// The published credentials of process `g`.
fn creds_of(g: &Weak<ThreadGroup>) -> userns::CredsOf {
    let g = g.clone();
    Arc::new(move || {
        let g = g.upgrade().ok_or(Errno::ESRCH)?;
        let c = g.state()?.view.creds.clone();
        Ok(c)
    })
}

/// The namespaces of the process reading (the sandbox's first ones when it is
/// not a task of this kernel).
fn reader_ns(k: &Kernel) -> crate::kernel::ns::NsSet {
    let (tgid, _) = process::current();
    let g = k.registry().ok().and_then(|r| r.group(tgid));
    g.and_then(|g| g.state().ok().and_then(|s| s.view.ns.as_deref().cloned()))
        .unwrap_or_else(|| k.root_ns.clone())
}

/// `/proc/PID/net`: the files of the process's network namespace.
fn pid_net(kernel: &Arc<Kernel>, tg: &Arc<ThreadGroup>) -> Arc<dyn Inode> {
    let g = Arc::downgrade(tg);
    let first = Arc::downgrade(&kernel.net);
    net_dir(
        Arc::new(move || {
            let g = g.upgrade().ok_or(Errno::ESRCH)?;
            let own = g.state()?.view.ns.as_ref().map(|n| n.net.stack.clone());
            own.or_else(|| first.upgrade()).ok_or(Errno::ESRCH)
        }),
        kernel.unix.clone(),
    )
}

/// `/proc/PID` (or `/proc/PID/task/TID` with `tid`).
fn pid_dir(
    kernel: &Arc<Kernel>,
    tg: &Arc<ThreadGroup>,
    tid: Option<i32>,
    pid_ns: &Arc<PidNs>,
) -> Arc<dyn Inode> {
    let base = PID_INO_BASE + (tid.unwrap_or(tg.tgid) as u64) * 64;
    let owner = tg
        .state()
        .map(|s| (s.view.ids[1], s.view.ids[5]))
        .unwrap_or((0, 0));
    let g: Weak<ThreadGroup> = Arc::downgrade(tg);
    let kw = Arc::downgrade(kernel);
    let mk_mode = |n: u64, mode: u32, f: PidGen| -> Arc<dyn Inode> {
        let (g, kw) = (g.clone(), kw.clone());
        let id = tid.unwrap_or(0);
        GenFile::new(
            base + n,
            mode,
            owner,
            Arc::new(move || {
                let (g, k) = (
                    g.upgrade().ok_or(Errno::ESRCH)?,
                    kw.upgrade().ok_or(Errno::ESRCH)?,
                );
                f(&g, &k, id)
            }),
        )
    };
    let mk = |n: u64, f: PidGen| mk_mode(n, 0o444, f);
    let mkns = |n: u64, f: NsGen| -> Arc<dyn Inode> {
        let (g, kw, ns) = (g.clone(), kw.clone(), pid_ns.clone());
        let id = tid.unwrap_or(0);
        GenFile::new(
            base + n,
            0o444,
            owner,
            Arc::new(move || {
                let (g, k) = (
                    g.upgrade().ok_or(Errno::ESRCH)?,
                    kw.upgrade().ok_or(Errno::ESRCH)?,
                );
                f(&g, &k, id, &ns)
            }),
        )
    };
    let link = |n: u64, f: fn(&Arc<ThreadGroup>) -> SysResult<Vec<u8>>| -> Arc<dyn Inode> {
        let g = g.clone();
        GenLink::new(
            base + n,
            owner,
            Arc::new(move || f(&g.upgrade().ok_or(Errno::ESRCH)?)),
        )
    };
    let mut entries: Vec<(&'static str, Arc<dyn Inode>)> = vec![
        ("stat", mkns(1, pid_stat)),
        ("status", mkns(2, pid_status)),
        ("statm", mk(3, pid_statm)),
        ("cmdline", mk(4, |g, _, _| mem_range(g, true))),
        // Linux's modes: only the owner reads the environment and the aux vector.
        ("environ", mk_mode(5, 0o400, |g, _, _| mem_range(g, false))),
        ("comm", comm::comm_file(kernel, tg, tid, base + 6, owner)),
        ("maps", mk(7, pid_maps)),
        (
            "mounts",
            mk(8, |g, k, _| {
                Ok(mounts::mounts_text(&proc_root(g, k)?).into_bytes())
            }),
        ),
        (
            "mountinfo",
            mk(9, |g, k, _| {
                Ok(mounts::mountinfo_text(&proc_root(g, k)?).into_bytes())
            }),
        ),
        ("limits", mk(10, pid_limits)),
        ("cgroup", mk(11, |_, _, _| Ok(b"0::/\n".to_vec()))),
        (
            "exe",
            link(12, |g| {
                let e = g.state()?.view.exe.clone();
                if e.is_empty() {
                    return Err(Errno::ENOENT);
                }
                Ok(e)
            }),
        ),
        (
            "cwd",
            link(13, |g| {
                let st = g.state()?;
                match (&st.view.cwd, &st.view.root) {
                    (Some(c), Some(r)) => Ok(c.path_from(r)),
                    _ => Err(Errno::ENOENT),
                }
            }),
        ),
        ("root", link(14, |_| Ok(b"/".to_vec()))),
        ("fd", fd_dir(tg, base + 15, false)),
        ("fdinfo", fd_dir(tg, base + 16, true)),
        ("oom_score_adj", oom_score_adj(tg, kernel, base + 17, owner)),
        (
            "uid_map",
            userns::map_file(
                base + 40,
                owner,
                MapKind::Uid,
                creds_of(&g),
                caller_creds(&kw),
            ),
        ),
        (
            "gid_map",
            userns::map_file(
                base + 41,
                owner,
                MapKind::Gid,
                creds_of(&g),
                caller_creds(&kw),
            ),
        ),
        (
            "setgroups",
            userns::setgroups_file(base + 42, owner, creds_of(&g), caller_creds(&kw)),
        ),
        ("net", pid_net(kernel, tg)),
        ("ns", ns::ns_dir(tg, base + 43, owner)),
        // 44..=53 are the ns links'.
        (
            "timens_offsets",
            timens_offsets(tg, kernel, base + 54, owner),
        ),
        (
            "auxv",
            mk_mode(58, 0o400, |g, _, _| crate::kernel::proc_mem::auxv(g)),
        ),
        (
            "mem",
            crate::kernel::proc_mem::mem_inode(tg, kernel, base + 59, owner),
        ),
    ];
    if tid.is_none() {
        let (g2, g3, kw2) = (g.clone(), g.clone(), kw.clone());
        let (pns2, pns3) = (pid_ns.clone(), pid_ns.clone());
        entries.push((
            "task",
            GenDir::new(
                base + 17,
                0o555,
                owner,
                Arc::new(move |name| {
                    let t: i32 = std::str::from_utf8(name)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or(Errno::ENOENT)?;
                    let g = g2.upgrade().ok_or(Errno::ENOENT)?;
                    let t = pns2.global(t).ok_or(Errno::ENOENT)?;
                    if !g.state()?.threads.contains_key(&t) {
                        return Err(Errno::ENOENT);
                    }
                    Ok(pid_dir(
                        &kw2.upgrade().ok_or(Errno::ENOENT)?,
                        &g,
                        Some(t),
                        &pns2,
                    ))
                }),
                Arc::new(move || {
                    let g = g3.upgrade().ok_or(Errno::ENOENT)?;
                    let tids: Vec<i32> = g.state()?.threads.keys().copied().collect();
                    Ok(tids
                        .into_iter()
                        .filter_map(|t| {
                            Some((
                                PID_INO_BASE + t as u64 * 64,
                                libc::DT_DIR,
                                pns3.local(t)?.to_string().into_bytes(),
                            ))
                        })
                        .collect())
                }),
            ) as Arc<dyn Inode>,
        ));
    }
    let entries = Arc::new(entries);
    let e2 = entries.clone();
    GenDir::new(
        base,
        0o555,
        owner,
        Arc::new(move |name| {
            entries
                .iter()
                .find(|(n, _)| n.as_bytes() == name)
                .map(|(_, i)| i.clone())
                .ok_or(Errno::ENOENT)
        }),
        Arc::new(move || {
            Ok(e2
                .iter()
                .map(|(n, i)| {
                    let st = i.stat().unwrap_or_default();
                    (st.ino, node::dtype(st.mode), n.as_bytes().to_vec())
                })
                .collect())
        }),
    )
}

/// `/proc/PID/timens_offsets`: the offsets of the time namespace the process's
/// children go into (time_namespaces(7)), `monotonic` and `boottime` lines;
/// written (up to two lines, `NAME|CLOCKID SECS NSECS`) through a descriptor
/// whose opener held CAP_SYS_TIME over the namespace's owner until a process enters it (then
/// `EACCES`), each offset keeping the clock within Linux's range (`ERANGE`).
fn timens_offsets(
    tg: &Arc<ThreadGroup>,
    kernel: &Arc<Kernel>,
    ino: u64,
    owner: (u32, u32),
) -> Arc<dyn Inode> {
    const CAP_SYS_TIME: u32 = 25;
    // Linux's KTIME_SEC_MAX.
    const SEC_MAX: i64 = i64::MAX / 1_000_000_000;
    let target = |g: &Weak<ThreadGroup>| -> SysResult<Arc<crate::kernel::ns::TimeNs>> {
        let g = g.upgrade().ok_or(Errno::ESRCH)?;
        let ns = g.state()?.view.ns.clone().ok_or(Errno::ESRCH)?;
        Ok(ns.time_children.clone())
    };
    let (g1, g2) = (Arc::downgrade(tg), Arc::downgrade(tg));
    let kw = Arc::downgrade(kernel);
    let caller = caller_creds(&kw);
    GenFile::writable_as_opened(
        ino,
        0o644,
        owner,
        Arc::new(move || {
            let o = target(&g1)?.offsets();
            Ok(format!(
                "{:<10} {:>10} {:>9}\n{:<10} {:>10} {:>9}\n",
                "monotonic", o.monotonic.0, o.monotonic.1, "boottime", o.boottime.0, o.boottime.1
            )
            .into_bytes())
        }),
        Arc::new(move || {
            // Linux checks the opener's CAP_SYS_TIME (`file_ns_capable`), not the writer's.
            let opener = caller()?;
            let (g2, kw) = (g2.clone(), kw.clone());
            Ok(Arc::new(move |buf: &[u8]| {
                if buf.len() >= 4096 {
                    return Err(Errno::EINVAL);
                }
                let text = String::from_utf8_lossy(buf);
                // Up to two lines, each "CLOCK SECS NSECS" (as Linux's sscanf).
                let mut offs: Vec<(i32, i64, i64)> = Vec::new();
                let mut lines: Vec<&str> = text.split('\n').collect();
                if lines.len() > 1 && lines.last() == Some(&"") {
                    lines.pop();
                }
                for line in lines {
                    let mut w = line.split_ascii_whitespace();
                    let (Some(name), Some(sec), Some(nsec)) = (w.next(), w.next(), w.next()) else {
                        return Err(Errno::EINVAL);
                    };
                    let sec: i64 = sec.parse().map_err(|_| Errno::EINVAL)?;
                    let nsec: u64 = nsec.parse().map_err(|_| Errno::EINVAL)?;
                    if nsec >= 1_000_000_000 {
                        return Err(Errno::EINVAL);
                    }
                    let clock = match name {
                        "monotonic" | "1" => libc::CLOCK_MONOTONIC,
                        "boottime" | "7" => libc::CLOCK_BOOTTIME,
                        _ => return Err(Errno::EINVAL),
                    };
                    offs.push((clock, sec, nsec as i64));
                    if offs.len() == 2 {
                        break;
                    }
                }
                let ns = target(&g2)?;
                if !opener.has_cap_in(crate::kernel::ns::owner(&ns.owner), CAP_SYS_TIME) {
                    return Err(Errno::EPERM);
                }
                let k = kw.upgrade().ok_or(Errno::ESRCH)?;
                for &(clock, sec, nsec) in &offs {
                    if !(-SEC_MAX..=SEC_MAX).contains(&sec) {
                        return Err(Errno::ERANGE);
                    }
                    let now = k.clock_now(clock)?;
                    let mut t = (now.tv_sec + sec, now.tv_nsec + nsec);
                    if t.1 >= 1_000_000_000 {
                        t = (t.0 + 1, t.1 - 1_000_000_000);
                    }
                    if t.0 < 0 || t.0 > SEC_MAX / 2 {
                        return Err(Errno::ERANGE);
                    }
                }
                ns.set_offsets(|o| {
                    for &(clock, sec, nsec) in &offs {
                        if clock == libc::CLOCK_MONOTONIC {
                            o.monotonic = (sec, nsec);
                        } else {
                            o.boottime = (sec, nsec);
                        }
                    }
                })
            }))
        }),
    )
}

/// `/proc/PID/oom_score_adj`: the process's value, writable as Linux allows (any
/// value in -1000..=1000 at or above the floor a privileged writer left; lower
/// needs CAP_SYS_RESOURCE, whose holder also moves the floor).
fn oom_score_adj(
    tg: &Arc<ThreadGroup>,
    kernel: &Arc<Kernel>,
    ino: u64,
    owner: (u32, u32),
) -> Arc<dyn Inode> {
    let g = Arc::downgrade(tg);
    let g2 = g.clone();
    let writer = caller_creds(&Arc::downgrade(kernel));
    GenFile::writable(
        ino,
        0o644,
        owner,
        Arc::new(move || {
            let g = g.upgrade().ok_or(Errno::ESRCH)?;
            let v = g.state()?.oom_score_adj.0;
            Ok(format!("{v}\n").into_bytes())
        }),
        Arc::new(move |buf: &[u8]| {
            let g = g2.upgrade().ok_or(Errno::ESRCH)?;
            let v: i32 = node::written_int(buf)?;
            if !(-1000..=1000).contains(&v) {
                return Err(Errno::EINVAL);
            }
            let privileged = writer()?.has_cap(crate::creds::CAP_SYS_RESOURCE);
            let mut st = g.state()?;
            if v < st.oom_score_adj.1 && !privileged {
                return Err(Errno::EACCES);
            }
            st.oom_score_adj.0 = v;
            if privileged {
                st.oom_score_adj.1 = v;
            }
            Ok(())
        }),
    )
}

/// `/proc/PID/fd` (symlinks to what each fd names) or `fdinfo` (pos and flags).
fn fd_dir(tg: &Arc<ThreadGroup>, ino: u64, info: bool) -> Arc<dyn Inode> {
    let g = Arc::downgrade(tg);
    let g2 = g.clone();
    let owner = tg
        .state()
        .map(|s| (s.view.ids[1], s.view.ids[5]))
        .unwrap_or((0, 0));
    GenDir::new(
        ino,
        if info { 0o555 } else { 0o500 },
        owner,
        Arc::new(move |name| {
            let fd: i32 = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Errno::ENOENT)?;
            let g = g.upgrade().ok_or(Errno::ENOENT)?;
            let (fds, root) = {
                let st = g.state()?;
                (
                    st.view
                        .fds
                        .as_ref()
                        .and_then(|w| w.upgrade())
                        .ok_or(Errno::ENOENT)?,
                    st.view.root.clone(),
                )
            };
            let file = fds
                .lock()
                .map_err(|_| Errno::EIO)?
                .get(fd)
                .map_err(|_| Errno::ENOENT)?;
            let ino = ino + 1 + fd as u64;
            if info {
                let cloexec = fds
                    .lock()
                    .map_err(|_| Errno::EIO)?
                    .entry(fd)
                    .map(|e| e.cloexec)
                    .unwrap_or(false);
                let flags = file.flags() | if cloexec { libc::O_CLOEXEC } else { 0 };
                // Files outside any tree (pipes, sockets) count as the root's, as
                // their pseudo filesystems are not listed.
                let mnt_id = match (file.dentry(), &root) {
                    (Some(d), _) => d.mount().id(),
                    (None, Some(r)) => r.mount().id(),
                    (None, None) => 1,
                };
                let text = format!(
                    "pos:\t{}\nflags:\t0{:o}\nmnt_id:\t{mnt_id}\n{}",
                    file.position(),
                    flags,
                    file.imp().fdinfo()
                );
                return Ok(GenFile::new(
                    ino,
                    0o400,
                    owner,
                    Arc::new(move || Ok(text.clone().into_bytes())),
                ) as Arc<dyn Inode>);
            }
            let target = match (file.dentry(), root) {
                (Some(d), Some(r)) => d.path_from(&r),
                _ if file.imp().anon_name().is_some() => {
                    format!("anon_inode:{}", file.imp().anon_name().unwrap_or_default())
                        .into_bytes()
                }
                _ => {
                    let st = file.stat().unwrap_or_default();
                    let kind = match st.mode & libc::S_IFMT {
                        libc::S_IFIFO => "pipe",
                        libc::S_IFSOCK => "socket",
                        _ => "anon_inode",
                    };
                    format!("{kind}:[{}]", st.ino).into_bytes()
                }
            };
            if let Some(to) = fdlink::reopen_target(&file) {
                return Ok(GenLink::magic(ino, owner, target, to) as Arc<dyn Inode>);
            }
            Ok(GenLink::new(ino, owner, Arc::new(move || Ok(target.clone()))) as Arc<dyn Inode>)
        }),
        Arc::new(move || {
            let g = g2.upgrade().ok_or(Errno::ENOENT)?;
            let fds = g
                .state()?
                .view
                .fds
                .as_ref()
                .and_then(|w| w.upgrade())
                .ok_or(Errno::ENOENT)?;
            let list: Vec<i32> = fds
                .lock()
                .map_err(|_| Errno::EIO)?
                .iter()
                .map(|(fd, _)| fd)
                .collect();
            let kind = if info { libc::DT_REG } else { libc::DT_LNK };
            Ok(list
                .into_iter()
                .map(|fd| (ino + 1 + fd as u64, kind, fd.to_string().into_bytes()))
                .collect())
        }),
    )
}

/// The root a process's mount table is seen from: its own (chroot included), the
/// sandbox's while it has none recorded yet.
fn proc_root(g: &Arc<ThreadGroup>, k: &Arc<Kernel>) -> SysResult<Arc<crate::vfs::Dentry>> {
    Ok(g.state()?
        .view
        .root
        .clone()
        .unwrap_or_else(|| k.root.clone()))
}

fn mem_range(g: &Arc<ThreadGroup>, args: bool) -> SysResult<Vec<u8>> {
    let mm = g.state()?.view.mm.as_ref().and_then(|w| w.upgrade());
    let Some(mm) = mm else { return Ok(Vec::new()) };
    let (range, space) = {
        let m = mm.lock().map_err(|_| Errno::EIO)?;
        (
            if args { m.arg_range } else { m.env_range },
            m.space().clone(),
        )
    };
    let len = range.1.saturating_sub(range.0).min(1 << 20) as usize;
    let mut buf = vec![0u8; len];
    let n = space.read(range.0, &mut buf).unwrap_or(0);
    buf.truncate(n);
    Ok(buf)
}

fn pid_stat(g: &Arc<ThreadGroup>, k: &Arc<Kernel>, tid: i32, ns: &PidNs) -> SysResult<Vec<u8>> {
    let st = g.state()?;
    let state = if st.zombie.is_some() {
        'Z'
    } else if st.stopped.is_some() {
        'T'
    } else {
        'S'
    };
    let vsize: u64 = st
        .view
        .mm
        .as_ref()
        .and_then(|w| w.upgrade())
        .and_then(|m| {
            m.lock()
                .ok()
                .map(|m| m.vmas().map(|v| v.end - v.start).sum())
        })
        .unwrap_or(0);
    let pid = ns.shown(if tid != 0 { tid } else { g.tgid });
    let comm = String::from_utf8_lossy(&st.comm).to_string();
    let _ = k;
    let mut s = format!(
        "{pid} ({comm}) {state} {} {} {} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 {} 0 {} {vsize} {} 18446744073709551615",
        ns.shown(st.parent),
        ns.shown(st.pgid),
        ns.shown(st.sid),
        st.threads.len().max(1),
        st.view.start_ticks,
        vsize / 4096 / 4,
    );
    // The remaining fields (startcode .. exit_code) as Linux lays them out, zeroed.
    for _ in 0..27 {
        s.push_str(" 0");
    }
    s.push('\n');
    Ok(s.into_bytes())
}

/// The live thread `tid` of `g` (its leader for 0).
fn st_tracee(
    g: &Arc<ThreadGroup>,
    k: &Arc<Kernel>,
    tid: i32,
) -> Option<Arc<crate::kernel::process::ThreadHandle>> {
    let t = if tid != 0 { tid } else { g.tgid };
    k.registry().ok()?.thread(t).map(|(h, _)| h)
}

fn pid_status(g: &Arc<ThreadGroup>, k: &Arc<Kernel>, tid: i32, ns: &PidNs) -> SysResult<Vec<u8>> {
    // Ids as the reader's user namespace names them (looked up before the
    // process's state is locked: the reader may be the process itself).
    let reader = caller_creds(&Arc::downgrade(k))()
        .map(|c| c.user_ns().clone())
        .unwrap_or_else(|_| crate::creds::userns::init().clone());
    // The fd table is locked with the process state released, as everywhere else.
    let fds = g.state()?.view.fds.clone();
    let fd_size = fds
        .and_then(|w| w.upgrade())
        .and_then(|t| t.lock().ok().map(|t| t.capacity()))
        .unwrap_or(0);
    // The tracer of the thread shown (the leader for /proc/PID/status).
    let shown = st_tracee(g, k, tid);
    let tracer = shown
        .as_ref()
        .and_then(|h| h.ptrace.lock().ok().map(|t| t.tracer))
        .unwrap_or(0);
    let traced_stop = shown
        .as_ref()
        .and_then(|h| h.ptrace.lock().ok().map(|t| t.stop.is_some()))
        .unwrap_or(false);
    let st = g.state()?;
    let ids = st.view.ids;
    let state = if st.zombie.is_some() {
        "Z (zombie)"
    } else if traced_stop {
        "t (tracing stop)"
    } else if st.stopped.is_some() {
        "T (stopped)"
    } else {
        "S (sleeping)"
    };
    let groups: Vec<String> = st
        .view
        .groups
        .iter()
        .map(|g| reader.gid_shown(*g).to_string())
        .collect();
    let u = |i: usize| reader.uid_shown(ids[i]);
    let gi = |i: usize| reader.gid_shown(ids[i]);
    let pending = g.pending.lock().map(|q| q.set()).unwrap_or(0);
    let (ign, cgt) = {
        let a = g.actions()?;
        let mut ign = 0u64;
        let mut cgt = 0u64;
        for sig in 1..=64u32 {
            if let Ok(x) = a.get(sig) {
                if x.handler == 1 {
                    ign |= 1 << (sig - 1);
                } else if x.handler > 1 {
                    cgt |= 1 << (sig - 1);
                }
            }
        }
        (ign, cgt)
    };
    let mut s = String::new();
    let gpid = if tid != 0 { tid } else { g.tgid };
    let pid = ns.shown(gpid);
    let tracer = ns.shown(tracer);
    let _ = writeln!(s, "Name:\t{}", comm::status_name(&st.comm));
    let _ = writeln!(s, "Umask:\t{:04o}", st.view.umask);
    let _ = writeln!(s, "State:\t{state}");
    let _ = writeln!(
        s,
        "Tgid:\t{}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{}\nTracerPid:\t{tracer}",
        ns.shown(g.tgid),
        ns.shown(st.parent)
    );
    let _ = writeln!(s, "Uid:\t{}\t{}\t{}\t{}", u(0), u(1), u(2), u(3));
    let _ = writeln!(s, "Gid:\t{}\t{}\t{}\t{}", gi(4), gi(5), gi(6), gi(7));
    let _ = writeln!(s, "FDSize:\t{fd_size}\nGroups:\t{}", groups.join(" "));
    let nsids = |id: i32| -> String {
        let v: Vec<String> = g
            .pid_ns
            .ids_from(ns, id)
            .iter()
            .map(|i| i.to_string())
            .collect();
        v.join("\t")
    };
    let _ = writeln!(
        s,
        "NStgid:\t{}\nNSpid:\t{}\nNSpgid:\t{}\nNSsid:\t{}",
        nsids(g.tgid),
        nsids(gpid),
        nsids(st.pgid),
        nsids(st.sid)
    );
    // Sizes of the address space as its mappings give them (resident sizes are the
    // host's business and not known here, so no VmRSS line).
    let mm = st.view.mm.as_ref().and_then(|w| w.upgrade());
    if let Some(m) = mm.as_ref().and_then(|m| m.lock().ok()) {
        let kib = |f: &dyn Fn(&crate::mm::Vma) -> bool| -> u64 {
            m.vmas()
                .filter(|v| f(v))
                .map(|v| (v.end - v.start) / 1024)
                .sum()
        };
        let size = kib(&|_| true);
        let locked = kib(&|v| v.locked);
        let stack = kib(&|v| v.role == crate::mm::VmaRole::Stack);
        let data = kib(&|v| {
            !v.shared && v.prot & libc::PROT_WRITE != 0 && v.role != crate::mm::VmaRole::Stack
        });
        let _ = writeln!(
            s,
            "VmSize:\t{size:8} kB\nVmLck:\t{locked:8} kB\nVmData:\t{data:8} kB\nVmStk:\t{stack:8} kB"
        );
    }
    let _ = writeln!(s, "Threads:\t{}", st.threads.len().max(1));
    let _ = writeln!(s, "SigQ:\t0/{}", 0x1_0000);
    let _ = writeln!(s, "SigPnd:\t{:016x}\nShdPnd:\t{pending:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}", 0, 0);
    let c = &st.view.creds;
    for (name, set) in [
        ("CapInh", c.cap_inheritable),
        ("CapPrm", c.cap_permitted),
        ("CapEff", c.cap_effective),
        ("CapBnd", c.cap_bounding),
        ("CapAmb", c.cap_ambient),
    ] {
        let _ = writeln!(s, "{name}:\t{set:016x}");
    }
    let _ = writeln!(s, "NoNewPrivs:\t{}", c.no_new_privs as u8);
    let sc = st
        .threads
        .get(&pid)
        .or_else(|| st.threads.values().next())
        .map(|t| t.seccomp.get())
        .unwrap_or_default();
    let _ = writeln!(s, "Seccomp:\t{}", sc.mode as u32);
    let _ = writeln!(s, "Seccomp_filters:\t{}", sc.filter_count());
    let _ = writeln!(s, "Cpus_allowed_list:\t0-{}", k.ncpus.saturating_sub(1));
    let _ = writeln!(
        s,
        "voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0"
    );
    Ok(s.into_bytes())
}

fn pid_statm(g: &Arc<ThreadGroup>, _k: &Arc<Kernel>, _tid: i32) -> SysResult<Vec<u8>> {
    let pages: u64 = g
        .state()?
        .view
        .mm
        .as_ref()
        .and_then(|w| w.upgrade())
        .and_then(|m| {
            m.lock()
                .ok()
                .map(|m| m.vmas().map(|v| (v.end - v.start) / 4096).sum())
        })
        .unwrap_or(0);
    Ok(format!("{pages} 0 0 0 0 0 0\n").into_bytes())
}

fn pid_maps(g: &Arc<ThreadGroup>, _k: &Arc<Kernel>, _tid: i32) -> SysResult<Vec<u8>> {
    let mm = g.state()?.view.mm.as_ref().and_then(|w| w.upgrade());
    let Some(mm) = mm else { return Ok(Vec::new()) };
    let m = mm.lock().map_err(|_| Errno::EIO)?;
    let mut s = String::new();
    for v in m.vmas() {
        let p = |bit: i32, c: char| if v.prot & bit != 0 { c } else { '-' };
        let (off, dev, ino, name) = match &v.backing {
            VmaBacking::File { file, offset } => {
                let (d, i) = file.dev_ino();
                (*offset, d, i, file.display_name())
            }
            VmaBacking::Anonymous => (0, 0, 0, String::new()),
        };
        let name = match v.role {
            VmaRole::Heap => "[heap]".to_string(),
            VmaRole::Stack => "[stack]".to_string(),
            VmaRole::Vdso => "[vdso]".to_string(),
            VmaRole::Vvar => "[vvar]".to_string(),
            VmaRole::Patch => "[rvisor-patch]".to_string(),
            VmaRole::Plain => name,
        };
        let _ = write!(
            s,
            "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {}",
            v.start,
            v.end,
            p(libc::PROT_READ, 'r'),
            p(libc::PROT_WRITE, 'w'),
            p(libc::PROT_EXEC, 'x'),
            if v.shared { 's' } else { 'p' },
            off,
            (dev >> 8) & 0xfff,
            dev & 0xff,
            ino
        );
        if name.is_empty() {
            s.push('\n');
        } else {
            let _ = writeln!(
                s,
                "{:>width$}{name}",
                "",
                width = 26usize.saturating_sub(ino.to_string().len())
            );
        }
    }
    Ok(s.into_bytes())
}

fn pid_limits(g: &Arc<ThreadGroup>, _k: &Arc<Kernel>, _tid: i32) -> SysResult<Vec<u8>> {
    const ROWS: [(&str, u32, &str); 16] = [
        ("Max cpu time", 0, "seconds"),
        ("Max file size", 1, "bytes"),
        ("Max data size", 2, "bytes"),
        ("Max stack size", 3, "bytes"),
        ("Max core file size", 4, "bytes"),
        ("Max resident set", 5, "bytes"),
        ("Max processes", 6, "processes"),
        ("Max open files", 7, "files"),
        ("Max locked memory", 8, "bytes"),
        ("Max address space", 9, "bytes"),
        ("Max file locks", 10, "locks"),
        ("Max pending signals", 11, "signals"),
        ("Max msgqueue size", 12, "bytes"),
        ("Max nice priority", 13, ""),
        ("Max realtime priority", 14, ""),
        ("Max realtime timeout", 15, "us"),
    ];
    let l = g.limits.lock().map_err(|_| Errno::EIO)?;
    let mut s = format!(
        "{:<26}{:<21}{:<21}{:<10}\n",
        "Limit", "Soft Limit", "Hard Limit", "Units"
    );
    let show = |v: u64| {
        if v == u64::MAX {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    for (name, r, unit) in ROWS {
        let x = l.get(r)?;
        let _ = writeln!(
            s,
            "{:<26}{:<21}{:<21}{:<10}",
            name,
            show(x.cur),
            show(x.max),
            unit
        );
    }
    Ok(s.into_bytes())
}

fn cpuinfo(ncpus: usize) -> String {
    let brand = host::cpu_brand();
    let flags = host::cpu_flags().join(" ");
    let mut s = String::new();
    for i in 0..ncpus {
        let _ = write!(
            s,
            "processor\t: {i}\nvendor_id\t: {}\nmodel name\t: {brand}\ncpu cores\t: {ncpus}\nflags\t\t: {flags}\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n",
            host::cpu_vendor()
        );
    }
    s
}

/// `/proc/meminfo`: the container's memory limit is the machine's memory (see
/// [`Kernel::mem_view`]); lines the sandbox has no figure for read 0.
fn meminfo(k: &Weak<Kernel>) -> SysResult<String> {
    let k = k.upgrade().ok_or(Errno::EIO)?;
    let m = k.mem_view()?;
    let lines: [(&str, u64); 24] = [
        ("MemTotal", m.total),
        ("MemFree", m.free),
        ("MemAvailable", m.available),
        ("Buffers", m.buffers),
        ("Cached", m.cached),
        ("SwapCached", 0),
        ("Active", m.anon + m.shmem),
        ("Inactive", m.cached.saturating_sub(m.shmem)),
        ("Active(anon)", m.anon + m.shmem),
        ("Inactive(anon)", 0),
        ("Active(file)", 0),
        ("Inactive(file)", m.cached.saturating_sub(m.shmem)),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", m.swap),
        ("SwapFree", m.swap),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", m.anon),
        ("Mapped", m.mapped),
        ("Shmem", m.shmem),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
    ];
    let mut s = String::new();
    for (name, v) in lines {
        let _ = writeln!(s, "{:<16}{:>8} kB", format!("{name}:"), v / 1024);
    }
    let _ = writeln!(
        s,
        "{:<16}{:>8} kB",
        "CommitLimit:",
        (m.total + m.swap) / 1024
    );
    let _ = writeln!(
        s,
        "{:<16}{:>8} kB",
        "Committed_AS:",
        (m.anon + m.shmem) / 1024
    );
    s.push_str("VmallocTotal:   34359738367 kB\nVmallocUsed:           0 kB\nVmallocChunk:          0 kB\n");
    s.push_str("HugePages_Total:       0\nHugePages_Free:        0\nHugePages_Rsvd:        0\nHugePages_Surp:        0\nHugepagesize:       2048 kB\n");
    Ok(s)
}

fn cpu_ticks() -> u64 {
    host::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID)
        .map(|t| t.tv_sec as u64 * 100 + t.tv_nsec as u64 / 10_000_000)
        .unwrap_or(0)
}

fn stat_text(k: &Weak<Kernel>, ncpus: usize) -> SysResult<String> {
    let k = k.upgrade().ok_or(Errno::EIO)?;
    let up = k.boot_time.elapsed().as_millis() as u64 / 10;
    // The sandbox's CPU time as its host cgroup counts it, when it has one.
    let used = k
        .resources
        .cpu_usage()
        .map_or_else(cpu_ticks, |u| u.total.as_millis() as u64 / 10);
    let idle = (up * ncpus as u64).saturating_sub(used);
    let mut s = format!("cpu  {used} 0 0 {idle} 0 0 0 0 0 0\n");
    for i in 0..ncpus {
        let _ = writeln!(
            s,
            "cpu{i} {} 0 0 {} 0 0 0 0 0 0",
            used / ncpus as u64,
            idle / ncpus as u64
        );
    }
    let boot =
        host::clock_gettime(libc::CLOCK_REALTIME)?.tv_sec as u64 - k.boot_time.elapsed().as_secs();
    let (procs, running) = {
        let r = k.registry()?;
        (r.groups.len(), r.threads.len())
    };
    let _ = write!(
        s,
        "ctxt 0\nbtime {boot}\nprocesses {procs}\nprocs_running {}\nprocs_blocked 0\n",
        running.max(1)
    );
    Ok(s)
}

fn uptime(k: &Weak<Kernel>, ncpus: usize) -> SysResult<String> {
    let k = k.upgrade().ok_or(Errno::EIO)?;
    let up = k.boot_time.elapsed().as_secs_f64();
    let idle = (up * ncpus as f64 - cpu_ticks() as f64 / 100.0).max(0.0);
    // The reader's time namespace moves its boot time (Linux's timens_add_boottime).
    let up = up + reader_ns(&k).time.offsets().boot_ns() as f64 / 1e9;
    Ok(format!("{up:.2} {idle:.2}\n"))
}

fn loadavg(k: &Weak<Kernel>) -> SysResult<String> {
    let k = k.upgrade().ok_or(Errno::EIO)?;
    let si = host::sysinfo()?;
    let l = |v: u64| v as f64 / 65536.0;
    let (threads, last) = {
        let r = k.registry()?;
        (
            r.threads.len(),
            r.threads.keys().max().copied().unwrap_or(1),
        )
    };
    Ok(format!(
        "{:.2} {:.2} {:.2} 1/{threads} {last}\n",
        l(si.loads[0]),
        l(si.loads[1]),
        l(si.loads[2])
    ))
}
