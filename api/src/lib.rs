//! The machine-readable part of the `rvisor` CLI's interface, shared by `rvisor` and
//! the containerd shim so both sides agree on one type instead of parsing words:
//!
//! - [`ErrorKind`]: what kind of failure a command had. rvisor writes it as the
//!   [`KIND_FIELD`] field of the error line of its JSON log (`--log FILE
//!   --log-format json`), beside the message.
//! - [`Stats`]: the `data` of a `stats` event of `rvisor events` (runc's shape).

mod error;
mod stats;

pub use error::{ErrorKind, KindError, KIND_FIELD};
pub use stats::{Cpu, CpuUsage, Memory, MemoryEntry, Pids, Stats, Throttling};
