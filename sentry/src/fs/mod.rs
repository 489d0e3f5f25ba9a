//! Filesystems the VFS mounts: the gofer-backed root, and the host stdio passthrough.

pub mod devfs;
pub mod epoll;
pub mod eventfd;
pub mod gofer;
pub mod host;
pub mod memfd;
pub mod pipe;
pub mod signalfd;
pub mod synthetic;
pub mod sysfs;
pub mod timerfd;
