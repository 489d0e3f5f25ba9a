//! Credentials: the ids and capabilities the sentry checks. They are the container's
//! own; the host never sees them.

/// Every capability bit Linux defines (CAP_LAST_CAP = 40).
pub const ALL_CAPS: u64 = (1u64 << 41) - 1;

/// A task's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Effective capabilities.
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Bounding set.
    pub cap_bounding: u64,
    /// Inheritable capabilities.
    pub cap_inheritable: u64,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// `PR_SET_KEEPCAPS`.
    pub keep_caps: bool,
}

impl Credentials {
    /// The credentials of a container process started as `uid:gid`: root gets every
    /// capability, anyone else none (as Linux does on exec without file caps).
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
            cap_inheritable: 0,
            no_new_privs: false,
            keep_caps: false,
        }
    }

    /// True if the effective set holds capability `cap`.
    pub fn has_cap(&self, cap: u32) -> bool {
        cap < 64 && self.cap_effective & (1 << cap) != 0
    }
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
/// Capabilities the filesystem uid drops when it leaves 0 (CAP_CHOWN,
/// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_LINUX_IMMUTABLE,
/// CAP_MKNOD, CAP_MAC_OVERRIDE).
const FS_CAPS: u64 =
    (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 9) | (1 << 27) | (1 << 32);

impl Credentials {
    /// Applies Linux's capability rules after a uid change from `old` (see
    /// capabilities(7), "Effect of user ID changes on capabilities").
    pub fn fix_caps_after_uid_change(&mut self, old: (u32, u32, u32, u32)) {
        let (ouid, oeuid, osuid, ofsuid) = old;
        let had_root = ouid == 0 || oeuid == 0 || osuid == 0;
        let has_root = self.uid == 0 || self.euid == 0 || self.suid == 0;
        if had_root && !has_root && !self.keep_caps {
            self.cap_permitted = 0;
            self.cap_effective = 0;
        }
        if oeuid == 0 && self.euid != 0 {
            self.cap_effective = 0;
        }
        if oeuid != 0 && self.euid == 0 {
            self.cap_effective = self.cap_permitted;
        }
        if ofsuid == 0 && self.fsuid != 0 {
            self.cap_effective &= !FS_CAPS;
        }
        if ofsuid != 0 && self.fsuid == 0 {
            self.cap_effective |= self.cap_permitted & FS_CAPS;
        }
    }

    /// The uids as a tuple (real, effective, saved, filesystem).
    pub fn uids(&self) -> (u32, u32, u32, u32) {
        (self.uid, self.euid, self.suid, self.fsuid)
    }
}

impl Credentials {
    /// The credential change of `execve` (capabilities(7), "Transformation of
    /// capabilities during execve", for files without file capabilities): the new
    /// effective ids, saved ids copied from them, and capabilities as root gets them
    /// (everything in the bounding set when the real or new effective uid is 0,
    /// effective only for effective uid 0).
    pub fn apply_exec(&mut self, euid: u32, egid: u32) {
        self.euid = euid;
        self.suid = euid;
        self.fsuid = euid;
        self.egid = egid;
        self.sgid = egid;
        self.fsgid = egid;
        if self.uid == 0 || euid == 0 {
            self.cap_permitted =
                self.cap_bounding & (self.cap_permitted | self.cap_inheritable | self.cap_bounding);
            self.cap_effective = if euid == 0 { self.cap_permitted } else { 0 };
        } else {
            self.cap_permitted &= self.cap_inheritable;
            self.cap_effective = 0;
        }
        self.keep_caps = false;
    }
}
