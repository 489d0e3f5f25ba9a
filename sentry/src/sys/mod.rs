//! The thin host layer: raw host syscalls and byte views the rest of the sentry uses
//! without writing `unsafe` itself.

pub mod confine;
pub mod core_sched;
pub mod host;
pub mod host_tmpfs;
pub mod hostnet;
pub mod isolation;
pub mod packet;
pub mod pod;
