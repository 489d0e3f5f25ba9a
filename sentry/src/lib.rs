//! The sentry: rvisor's application kernel.
//!
//! An untrusted application's system calls are trapped by a [`platform`] and serviced
//! here, by a Linux-compatible kernel that runs as an ordinary, confined host process.
//! Host files arrive only through the gofer. See `DESIGN.md` at the repository root of
//! the steering project for the overall shape.

pub mod boot;
pub mod config;
pub mod errno;
pub mod loader;
pub mod mm;
pub mod platform;
pub mod sys;

pub use errno::{Errno, SysResult};
