//! ELF parsing and mapping (placeholder until the loader branch merges).
use std::sync::Arc;
use crate::errno::{Errno, SysResult};
use crate::loader::{ExecFile, LoadedImage, OpenFn};
use crate::mm::MemoryManager;
/// Loads an ELF.
pub fn load_elf(_mm: &mut MemoryManager, _file: &Arc<dyn ExecFile>, _open: &OpenFn) -> SysResult<LoadedImage> {
    Err(Errno::ENOEXEC)
}
