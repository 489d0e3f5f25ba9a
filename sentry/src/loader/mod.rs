//! Loading a program image: ELF (static, static-PIE, and dynamic through PT_INTERP)
//! and `#!` scripts, then the initial stack (argv, envp, auxv).
//!
//! The loader reads executables through [`ExecFile`] (the VFS, backed by the gofer —
//! never a host path) and maps them through the [`MemoryManager`](crate::mm::MemoryManager).

pub mod elf;
pub mod script;
pub mod stack;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::errno::SysResult;
use crate::mm::Mappable;

/// An executable file as the loader sees it.
pub trait ExecFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; short only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> SysResult<usize>;
    /// The file's size in bytes.
    fn size(&self) -> SysResult<u64>;
    /// The file as a mapping source; `ENODEV` for a file that cannot be mapped.
    fn mappable(&self) -> SysResult<Arc<dyn Mappable>>;
}

/// Opens another file for the loader (the PT_INTERP interpreter, a `#!` interpreter),
/// resolving `path` in the exec'ing task's filesystem context.
pub type OpenFn<'a> = dyn Fn(&[u8]) -> SysResult<Arc<dyn ExecFile>> + 'a;

/// The result of loading an image: where to start and what the auxv must say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadedImage {
    /// Where the program starts: the interpreter's entry for dynamic programs.
    pub entry: u64,
    /// The program's own entry (AT_ENTRY).
    pub program_entry: u64,
    /// Address of the program headers in memory (AT_PHDR).
    pub phdr: u64,
    /// Size of one program header (AT_PHENT).
    pub phent: u64,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u64,
    /// Load base of the interpreter, 0 without one (AT_BASE).
    pub interp_base: u64,
    /// End of the highest segment: brk starts here.
    pub brk_start: u64,
    /// Whether the stack must be executable (PT_GNU_STACK with PF_X).
    pub exec_stack: bool,
}
