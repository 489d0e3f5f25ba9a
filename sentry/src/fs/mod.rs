//! Filesystems the VFS mounts: the gofer-backed root and its overlay, procfs, and
//! the host stdio passthrough.

pub mod gofer;
pub mod host;
pub mod overlay;
pub mod procfs;
pub mod synthetic;
