//! `#!` parsing (placeholder until the loader branch merges).
use crate::errno::{Errno, SysResult};
/// A parsed script.
pub struct Script {
    /// interpreter
    pub interpreter: Vec<u8>,
    /// argv
    pub argv: Vec<Vec<u8>>,
}
/// Parses.
pub fn parse(_head: &[u8], _path: &[u8], _argv: &[Vec<u8>]) -> SysResult<Script> {
    Err(Errno::ENOEXEC)
}
