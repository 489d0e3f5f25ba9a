//! Credentials: the ids and capabilities the sentry checks. They are the container's
//! own; the host never sees them.
//!
//! Capabilities follow capabilities(7) for a kernel without file capabilities: no
//! file in the sandbox carries `security.capability`, so an exec recomputes the sets
//! from the process's own sets, its uids and the securebits only.

pub mod userns;

use std::sync::Arc;

use userns::UserNs;

/// The highest capability number Linux defines (`CAP_LAST_CAP`, CAP_CHECKPOINT_RESTORE).
pub const CAP_LAST_CAP: u32 = 40;

/// Every capability bit Linux defines (CAP_LAST_CAP = 40).
pub const ALL_CAPS: u64 = (1u64 << (CAP_LAST_CAP + 1)) - 1;

/// The capability sets of a process as a container spec states them
/// (`process.capabilities`), as bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Ambient set.
    pub ambient: u64,
}

impl CapSets {
    /// The same sets without `cap`.
    pub fn without(self, cap: u32) -> CapSets {
        let m = !(1u64 << cap);
        CapSets {
            bounding: self.bounding & m,
            effective: self.effective & m,
            inheritable: self.inheritable & m,
            permitted: self.permitted & m,
            ambient: self.ambient & m,
        }
    }
}

// Securebits (`linux/securebits.h`).
/// `SECURE_NOROOT`: uid 0 gets no capabilities from exec.
pub const SECBIT_NOROOT: u32 = 1 << 0;
/// `SECURE_NO_SETUID_FIXUP`: uid changes leave the capability sets alone.
pub const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;
/// `SECURE_KEEP_CAPS`: permitted survives all uids leaving 0 (cleared by exec).
pub const SECBIT_KEEP_CAPS: u32 = 1 << 4;
/// `SECURE_KEEP_CAPS_LOCKED`.
pub const SECBIT_KEEP_CAPS_LOCKED: u32 = 1 << 5;
/// `SECURE_NO_CAP_AMBIENT_RAISE`: ambient capabilities may not be raised.
pub const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
/// Every settable bit (`SECURE_ALL_BITS`).
pub const SECURE_ALL_BITS: u32 = 0x55;
/// Every lock bit (`SECURE_ALL_LOCKS`): each locks the bit below it.
pub const SECURE_ALL_LOCKS: u32 = 0xaa;

/// A task's identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Real uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Saved set-user-id.
    pub suid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved set-group-id.
    pub sgid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capabilities: the set every permission check uses.
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Bounding set.
    pub cap_bounding: u64,
    /// Inheritable capabilities.
    pub cap_inheritable: u64,
    /// Ambient capabilities (always within permitted and inheritable).
    pub cap_ambient: u64,
    /// `SECBIT_*` flags (`PR_SET_SECUREBITS`; `PR_SET_KEEPCAPS` is `SECBIT_KEEP_CAPS`).
    pub securebits: u32,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// The user namespace the ids and capabilities belong to (`None`: the
    /// sandbox's initial one). The ids above are kernel ids whatever it is.
    pub user_ns: Option<Arc<UserNs>>,
}

impl Credentials {
    /// The credentials of a container process started as `uid:gid` with no stated
    /// capabilities: a full bounding set, root gets every capability, anyone else
    /// none (as Linux does on exec without file caps).
    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Self {
        let caps = if uid == 0 { ALL_CAPS } else { 0 };
        Credentials {
            uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups,
            cap_effective: caps,
            cap_permitted: caps,
            cap_bounding: ALL_CAPS,
            ..Default::default()
        }
    }

    /// The credentials an OCI runtime gives a container process just before it
    /// execs the process's program: the ids, then exactly the stated sets (as runc
    /// sets them with keep-caps across its own setuid), and no_new_privs. The sets are
    /// cut to what Linux lets a process hold (effective within permitted, ambient
    /// within permitted and inheritable); the exec that follows then transforms them.
    pub fn for_container(
        uid: u32,
        gid: u32,
        groups: Vec<u32>,
        caps: &CapSets,
        no_new_privs: bool,
    ) -> Self {
        let permitted = caps.permitted & ALL_CAPS;
        let inheritable = caps.inheritable & ALL_CAPS;
        Credentials {
            cap_bounding: caps.bounding & ALL_CAPS,
            cap_permitted: permitted,
            cap_effective: caps.effective & permitted,
            cap_inheritable: inheritable,
            cap_ambient: caps.ambient & permitted & inheritable,
            no_new_privs,
            ..Credentials::new(uid, gid, groups)
        }
    }

    /// True if the effective set holds capability `cap` over the sandbox's initial
    /// user namespace (Linux's `capable`): never for a process in a namespace
    /// made inside.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.user_ns.is_none() && self.cap_in_effective(cap)
    }

    fn cap_in_effective(&self, cap: u32) -> bool {
        cap < 64 && self.cap_effective & (1 << cap) != 0
    }

    /// The user namespace the process is in.
    pub fn user_ns(&self) -> &Arc<UserNs> {
        self.user_ns.as_ref().unwrap_or_else(|| userns::init())
    }

    /// True if the process holds `cap` over user namespace `ns` (`ns_capable`):
    /// in its effective set when `ns` is its own namespace; every capability when
    /// `ns` lies below its own and was made by its effective uid there (or lies
    /// below one that was); none otherwise.
    pub fn has_cap_in(&self, ns: &Arc<UserNs>, cap: u32) -> bool {
        let own = self.user_ns();
        let mut cur = ns;
        loop {
            if Arc::ptr_eq(cur, own) {
                return self.cap_in_effective(cap);
            }
            if cur.level <= own.level {
                return false;
            }
            let Some(parent) = cur.parent.as_ref() else {
                return false;
            };
            if Arc::ptr_eq(parent, own) && cur.owner.0 == self.euid {
                return true;
            }
            cur = parent;
        }
    }

    /// True if the process holds `cap` over its own user namespace.
    pub fn has_ns_cap(&self, cap: u32) -> bool {
        self.cap_in_effective(cap)
    }

    /// `capable_wrt_inode_uidgid`: `cap` over the process's own namespace, for a
    /// file whose owner and group (kernel ids) are both mapped there.
    pub fn has_cap_over(&self, cap: u32, uid: u32, gid: u32) -> bool {
        let ns = self.user_ns();
        self.cap_in_effective(cap) && ns.uid_up(uid).is_some() && ns.gid_up(gid).is_some()
    }

    /// The kernel uid that is root in the process's user namespace, if mapped.
    pub fn root_uid(&self) -> Option<u32> {
        self.user_ns().uid_down(0)
    }

    /// Enters user namespace `ns`, as its creator or a `setns` into it does: every
    /// capability in permitted, effective and bounding there, none inheritable or
    /// ambient, no securebits.
    pub fn enter_user_ns(&mut self, ns: Arc<UserNs>) {
        self.cap_permitted = ALL_CAPS;
        self.cap_effective = ALL_CAPS;
        self.cap_bounding = ALL_CAPS;
        self.cap_inheritable = 0;
        self.cap_ambient = 0;
        self.securebits = 0;
        self.user_ns = (!Arc::ptr_eq(&ns, userns::init())).then_some(ns);
    }

    /// True if securebit `bit` (an `SECBIT_*` mask) is set.
    pub fn secure(&self, bit: u32) -> bool {
        self.securebits & bit != 0
    }
}

/// Whether a task may open raw (`SOCK_RAW`, `SOCK_PACKET`) or packet (`AF_PACKET`)
/// sockets: Linux asks for CAP_NET_RAW in the effective set. Without the runtime's
/// `--net-raw` the capability is taken from every set of every process at start, so
/// no process of the sandbox can hold it.
pub fn may_open_raw(creds: &Credentials) -> bool {
    creds.has_cap(CAP_NET_RAW)
}

// Capability numbers (`linux/capability.h`).
/// `CAP_CHOWN`.
pub const CAP_CHOWN: u32 = 0;
/// `CAP_DAC_OVERRIDE`.
pub const CAP_DAC_OVERRIDE: u32 = 1;
/// `CAP_DAC_READ_SEARCH`.
pub const CAP_DAC_READ_SEARCH: u32 = 2;
/// `CAP_FOWNER`.
pub const CAP_FOWNER: u32 = 3;
/// `CAP_FSETID`.
pub const CAP_FSETID: u32 = 4;
/// `CAP_KILL`.
pub const CAP_KILL: u32 = 5;
/// `CAP_SETGID`.
pub const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`.
pub const CAP_SETUID: u32 = 7;
/// `CAP_SETPCAP`.
pub const CAP_SETPCAP: u32 = 8;
/// `CAP_NET_BIND_SERVICE`.
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// `CAP_NET_ADMIN`.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`.
pub const CAP_NET_RAW: u32 = 13;
/// `CAP_IPC_LOCK`.
pub const CAP_IPC_LOCK: u32 = 14;
/// `CAP_IPC_OWNER`.
pub const CAP_IPC_OWNER: u32 = 15;
/// `CAP_SYS_CHROOT`.
pub const CAP_SYS_CHROOT: u32 = 18;
/// `CAP_SYS_PTRACE`.
pub const CAP_SYS_PTRACE: u32 = 19;
/// `CAP_SYS_ADMIN`.
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_SYS_NICE`.
pub const CAP_SYS_NICE: u32 = 23;
/// `CAP_SYS_RESOURCE`.
pub const CAP_SYS_RESOURCE: u32 = 24;
/// `CAP_MKNOD`.
pub const CAP_MKNOD: u32 = 27;

/// Capability names by number, as `linux/capability.h` and the OCI spec spell them.
pub const CAP_NAMES: [&str; CAP_LAST_CAP as usize + 1] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability named as the OCI spec does (`CAP_CHOWN`) or without
/// the prefix in any case (`chown`, `Chown`).
pub fn cap_by_name(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAP_NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// Capabilities the filesystem uid drops when it leaves 0 (CAP_CHOWN,
/// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_LINUX_IMMUTABLE,
/// CAP_MKNOD, CAP_MAC_OVERRIDE).
const FS_CAPS: u64 =
    (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 9) | (1 << 27) | (1 << 32);

impl Credentials {
    /// Applies Linux's capability rules after a `setuid`, `setreuid` or `setresuid`
    /// from uids `old` (capabilities(7), "Effect of user ID changes on capabilities"):
    /// all of real, effective and saved uid leaving 0 empties permitted and effective
    /// (unless SECBIT_KEEP_CAPS) and ambient; the effective uid leaving 0 empties
    /// effective, returning to 0 restores it from permitted. SECBIT_NO_SETUID_FIXUP
    /// turns all of this off.
    pub fn fix_caps_after_uid_change(&mut self, old: (u32, u32, u32, u32)) {
        if self.secure(SECBIT_NO_SETUID_FIXUP) {
            return;
        }
        let (ouid, oeuid, osuid, _) = old;
        let root = self.root_uid();
        let is_root = |u: u32| Some(u) == root;
        let had_root = is_root(ouid) || is_root(oeuid) || is_root(osuid);
        let has_root = is_root(self.uid) || is_root(self.euid) || is_root(self.suid);
        if had_root && !has_root {
            if !self.secure(SECBIT_KEEP_CAPS) {
                self.cap_permitted = 0;
                self.cap_effective = 0;
            }
            self.cap_ambient = 0;
        }
        if is_root(oeuid) && !is_root(self.euid) {
            self.cap_effective = 0;
        }
        if !is_root(oeuid) && is_root(self.euid) {
            self.cap_effective = self.cap_permitted;
        }
    }

    /// Applies Linux's rule after a `setfsuid` from filesystem uid `old_fsuid`: the
    /// filesystem capabilities leave effective when the fsuid leaves 0 and come back
    /// from permitted when it returns (not with SECBIT_NO_SETUID_FIXUP).
    pub fn fix_caps_after_fsuid_change(&mut self, old_fsuid: u32) {
        if self.secure(SECBIT_NO_SETUID_FIXUP) {
            return;
        }
        let root = self.root_uid();
        if Some(old_fsuid) == root && Some(self.fsuid) != root {
            self.cap_effective &= !FS_CAPS;
        }
        if Some(old_fsuid) != root && Some(self.fsuid) == root {
            self.cap_effective |= self.cap_permitted & FS_CAPS;
        }
    }

    /// The uids as a tuple (real, effective, saved, filesystem).
    pub fn uids(&self) -> (u32, u32, u32, u32) {
        (self.uid, self.euid, self.suid, self.fsuid)
    }
}

impl Credentials {
    /// The credential change of `execve` for a file without file capabilities
    /// (capabilities(7), "Transformation of capabilities during execve"), given the
    /// effective ids the file's set-user-ID and set-group-ID bits give (`euid`,
    /// `egid`; the caller already ignores those bits under no_new_privs):
    /// - unless SECBIT_NOROOT, a real or new effective uid 0 makes the new permitted
    ///   set bounding | inheritable, and a new effective uid 0 makes effective follow
    ///   permitted; otherwise permitted starts empty;
    /// - a set-id exec clears ambient; ambient is then added to permitted, and is the
    ///   effective set when root's rule does not apply;
    /// - under no_new_privs a set-id exec falls back to the real ids and permitted
    ///   never grows;
    /// - saved and filesystem ids follow the effective ones; SECBIT_KEEP_CAPS clears.
    pub fn apply_exec(&mut self, euid: u32, egid: u32) {
        let old_permitted = self.cap_permitted;
        let mut euid = euid;
        let mut egid = egid;
        let mut permitted = 0u64;
        let mut effective = false;
        // Root is the namespace's uid 0 (no one, while it is unmapped).
        let root = self.root_uid();
        if !self.secure(SECBIT_NOROOT) {
            if Some(euid) == root || Some(self.uid) == root {
                permitted = self.cap_bounding | self.cap_inheritable;
            }
            effective = Some(euid) == root;
        }
        let is_setid = euid != self.uid || egid != self.gid;
        let gained = permitted & !old_permitted != 0;
        if (is_setid || gained) && self.no_new_privs {
            euid = self.uid;
            egid = self.gid;
            permitted &= old_permitted;
        }
        if is_setid {
            self.cap_ambient = 0;
        }
        permitted |= self.cap_ambient;
        self.cap_permitted = permitted;
        self.cap_effective = if effective {
            permitted
        } else {
            self.cap_ambient
        };
        self.euid = euid;
        self.suid = euid;
        self.fsuid = euid;
        self.egid = egid;
        self.sgid = egid;
        self.fsgid = egid;
        self.securebits &= !SECBIT_KEEP_CAPS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(c: &Credentials) -> [u64; 5] {
        [
            c.cap_bounding,
            c.cap_effective,
            c.cap_inheritable,
            c.cap_permitted,
            c.cap_ambient,
        ]
    }

    #[test]
    fn root_exec_gets_bounding_and_inheritable() {
        let caps = CapSets {
            bounding: 0b111,
            ..Default::default()
        };
        let mut c = Credentials::for_container(0, 0, vec![], &caps, false);
        c.apply_exec(0, 0);
        assert_eq!(sets(&c), [0b111, 0b111, 0, 0b111, 0]);
        // no_new_privs: permitted may not grow past what the process had.
        let mut c = Credentials::for_container(0, 0, vec![], &caps, true);
        c.apply_exec(0, 0);
        assert_eq!(sets(&c), [0b111, 0, 0, 0, 0]);
        // SECBIT_NOROOT: root is nobody special.
        let mut c = Credentials::for_container(0, 0, vec![], &caps, false);
        c.securebits = SECBIT_NOROOT;
        c.apply_exec(0, 0);
        assert_eq!(c.cap_permitted, 0);
    }

    #[test]
    fn non_root_exec_keeps_only_ambient() {
        let caps = CapSets {
            bounding: ALL_CAPS,
            effective: 0b11,
            permitted: 0b11,
            inheritable: 0b10,
            ambient: 0b110,
        };
        let mut c = Credentials::for_container(1000, 1000, vec![], &caps, false);
        // Ambient is cut to permitted & inheritable at once.
        assert_eq!(c.cap_ambient, 0b10);
        c.apply_exec(1000, 1000);
        assert_eq!(sets(&c)[1..], [0b10, 0b10, 0b10, 0b10]);
        // A set-user-ID exec clears ambient.
        c.apply_exec(1001, 1000);
        assert_eq!((c.cap_permitted, c.cap_ambient, c.euid), (0, 0, 1001));
    }

    #[test]
    fn setuid_away_from_root_drops_sets_unless_keepcaps() {
        let mut c = Credentials::new(0, 0, vec![]);
        c.cap_inheritable = 1;
        c.cap_ambient = 1;
        let old = c.uids();
        (c.uid, c.euid, c.suid, c.fsuid) = (5, 5, 5, 5);
        c.fix_caps_after_uid_change(old);
        assert_eq!((c.cap_permitted, c.cap_effective, c.cap_ambient), (0, 0, 0));
        let mut c = Credentials::new(0, 0, vec![]);
        c.securebits = SECBIT_KEEP_CAPS;
        let old = c.uids();
        (c.uid, c.euid, c.suid, c.fsuid) = (5, 5, 5, 5);
        c.fix_caps_after_uid_change(old);
        assert_eq!((c.cap_permitted, c.cap_effective), (ALL_CAPS, 0));
        let mut c = Credentials::new(0, 0, vec![]);
        c.securebits = SECBIT_NO_SETUID_FIXUP;
        let old = c.uids();
        (c.uid, c.euid, c.suid, c.fsuid) = (5, 5, 5, 5);
        c.fix_caps_after_uid_change(old);
        assert_eq!((c.cap_permitted, c.cap_effective), (ALL_CAPS, ALL_CAPS));
    }

    #[test]
    fn names() {
        assert_eq!(cap_by_name("CAP_CHOWN"), Some(0));
        assert_eq!(cap_by_name("net_raw"), Some(13));
        assert_eq!(cap_by_name("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_by_name("bogus"), None);
        assert_eq!(CAP_NAMES[CAP_MKNOD as usize], "CAP_MKNOD");
    }
}
