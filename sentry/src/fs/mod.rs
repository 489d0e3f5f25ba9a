//! Filesystems the VFS mounts: the gofer-backed root, and the host stdio passthrough.

pub mod gofer;
pub mod host;
pub mod memfile;
pub mod synthetic;
pub mod tmpfs;
