//! The sentry: rvisor's application kernel.
//!
//! An untrusted application's system calls are trapped by a [`platform`] and serviced
//! here, by a Linux-compatible kernel that runs as an ordinary, confined host process.
//! Host files arrive only through the gofer. Modules follow kernel concepts:
//! [`kernel`] (tasks, limits, signals), [`creds`], [`wait`] and [`cbpf`] (credentials,
//! wait queues and the classic BPF interpreter, primitives below the files), [`mm`] (address spaces),
//! [`loader`] (exec), [`vfs`] and [`fs`] (files), [`syscalls`] (the ABI),
//! [`platform`] (how app code runs), [`sys`] (the thin host layer).

pub mod boot;
pub mod cbpf;
pub mod config;
pub mod control;
pub mod creds;
pub mod errno;
pub mod fs;
pub mod kernel;
#[cfg(test)]
mod layers;
pub mod loader;
pub mod mm;
pub mod net;
pub mod platform;
pub mod sys;
pub mod syscalls;
pub mod vfs;
pub mod wait;

pub use errno::{Errno, SysResult};
