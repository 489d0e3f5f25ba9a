//! `/proc/sys` values programs read at start-up (and abort without). Each value is the sandbox's own limit where
//! it has one (file descriptors, pipe sizes, System V IPC), else Linux's default.

use std::sync::{Arc, OnceLock};

use crate::errno::SysResult;
use crate::fs::pipe::MAX_UNPRIVILEGED_CAPACITY;
use crate::kernel::limits::NR_OPEN;
use crate::kernel::{msg, sem, shm};
use crate::sys::host;
use crate::vfs::Inode;

use super::node::GenDir;
use super::{file, text};

/// A random version-4 UUID in its text form.
fn uuid() -> SysResult<String> {
    let mut b = [0u8; 16];
    host::random_bytes(&mut b, 0)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// This sandbox's boot id: made once, the same for every read.
fn boot_id() -> SysResult<String> {
    static ID: OnceLock<String> = OnceLock::new();
    if let Some(id) = ID.get() {
        return Ok(id.clone());
    }
    let id = uuid()?;
    Ok(ID.get_or_init(|| id).clone())
}

/// Entries of `/proc/sys/kernel` (besides the names and versions), inode numbers
/// from 120.
pub fn kernel_entries() -> Vec<(&'static str, Arc<dyn Inode>)> {
    let random = GenDir::fixed(
        120,
        vec![
            (
                "boot_id",
                file(121, || Ok(format!("{}\n", boot_id()?).into_bytes())),
            ),
            (
                "uuid",
                file(122, || Ok(format!("{}\n", uuid()?).into_bytes())),
            ),
            ("entropy_avail", text(123, "256\n".into())),
            ("poolsize", text(124, "256\n".into())),
        ],
    );
    vec![
        ("random", random as Arc<dyn Inode>),
        ("shmmax", text(125, format!("{}\n", shm::SHMMAX))),
        // No total beyond each segment's and the sandbox's memory: Linux's default.
        ("shmall", text(126, format!("{}\n", shm::SHMALL))),
        ("shmmni", text(127, format!("{}\n", shm::SHMMNI))),
        ("msgmax", text(128, format!("{}\n", msg::MSGMAX))),
        ("msgmnb", text(129, format!("{}\n", msg::MSGMNB))),
        ("msgmni", text(130, format!("{}\n", msg::MSGMNI))),
        (
            "sem",
            text(
                131,
                format!(
                    "{}\t{}\t{}\t{}\n",
                    sem::SEMMSL,
                    sem::SEMMNS,
                    sem::SEMOPM,
                    sem::SEMMNI
                ),
            ),
        ),
        ("ngroups_max", text(132, "65536\n".into())),
        ("overflowuid", text(133, "65534\n".into())),
        ("overflowgid", text(134, "65534\n".into())),
    ]
}

/// `/proc/sys/fs`, inode numbers from 140.
pub fn fs_dir(mqueue: Arc<dyn Inode>, aio: Vec<(&'static str, Arc<dyn Inode>)>) -> Arc<dyn Inode> {
    GenDir::fixed(
        140,
        aio.into_iter()
            .chain(vec![
                ("nr_open", text(141, format!("{NR_OPEN}\n"))),
                (
                    "pipe-max-size",
                    text(142, format!("{MAX_UNPRIVILEGED_CAPACITY}\n")),
                ),
                ("file-max", text(143, "9223372036854775807\n".into())),
                // No directory notification (F_NOTIFY is EINVAL, as on such a Linux).
                ("dir-notify-enable", text(144, "0\n".into())),
                ("inotify", inotify_dir()),
                ("mqueue", mqueue),
            ])
            .collect(),
    )
}

/// `/proc/sys/fs/inotify`: the limits the sandbox's inotify enforces (inode
/// numbers 145 to 148).
fn inotify_dir() -> Arc<dyn Inode> {
    use crate::fs::inotify::{MAX_QUEUED_EVENTS, MAX_USER_INSTANCES, MAX_USER_WATCHES};
    GenDir::fixed(
        145,
        vec![
            (
                "max_queued_events",
                text(146, format!("{MAX_QUEUED_EVENTS}\n")),
            ),
            (
                "max_user_instances",
                text(147, format!("{MAX_USER_INSTANCES}\n")),
            ),
            (
                "max_user_watches",
                text(148, format!("{MAX_USER_WATCHES}\n")),
            ),
        ],
    )
}

/// Entries of `/proc/sys/vm` besides overcommit_memory, inode numbers from 150.
pub fn vm_entries(min_user_address: u64) -> Vec<(&'static str, Arc<dyn Inode>)> {
    vec![
        ("max_map_count", text(151, "65530\n".into())),
        ("mmap_min_addr", text(152, format!("{min_user_address}\n"))),
    ]
}

/// `/proc/sys/net`: the sandbox does not forward packets. Inode numbers from 160.
pub fn net_dir() -> Arc<dyn Inode> {
    let ipv4 = GenDir::fixed(161, vec![("ip_forward", text(162, "0\n".into()))]);
    GenDir::fixed(160, vec![("ipv4", ipv4 as Arc<dyn Inode>)])
}
