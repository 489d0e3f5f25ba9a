//! The ptrace platform: application code runs in stub processes traced with
//! `PTRACE_SYSEMU`.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::platform::{AddressSpace, Context, Platform};

/// The ptrace backend.
pub struct PtracePlatform {}

impl PtracePlatform {
    /// Prepares the backend (builds the stub program).
    pub fn new() -> SysResult<Self> {
        Err(Errno::ENOSYS)
    }
}

impl Platform for PtracePlatform {
    fn name(&self) -> &'static str {
        "ptrace"
    }
    fn max_user_address(&self) -> u64 {
        0x7fff_0000_0000
    }
    fn new_address_space(&self) -> SysResult<Arc<dyn AddressSpace>> {
        Err(Errno::ENOSYS)
    }
    fn new_context(&self, _space: &Arc<dyn AddressSpace>) -> SysResult<Box<dyn Context>> {
        Err(Errno::ENOSYS)
    }
}
