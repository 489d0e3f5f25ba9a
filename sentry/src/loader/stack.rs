//! The initial process stack (placeholder until the loader branch merges).
use crate::errno::{Errno, SysResult};
use crate::loader::LoadedImage;
use crate::mm::MemoryManager;
/// Stack inputs.
pub struct StackArgs<'a> {
    /// argv
    pub argv: &'a [Vec<u8>],
    /// envp
    pub envp: &'a [Vec<u8>],
    /// execfn
    pub execfn: &'a [u8],
    /// image
    pub image: &'a LoadedImage,
    /// uid
    pub uid: u32,
    /// euid
    pub euid: u32,
    /// gid
    pub gid: u32,
    /// egid
    pub egid: u32,
    /// secure
    pub secure: bool,
    /// hwcap
    pub hwcap: u64,
    /// random
    pub random: [u8; 16],
}
/// Builds the stack.
pub fn build_stack(_mm: &mut MemoryManager, _top: u64, _a: &StackArgs) -> SysResult<u64> {
    Err(Errno::ENOEXEC)
}
