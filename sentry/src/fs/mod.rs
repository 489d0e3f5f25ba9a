//! Filesystems the VFS mounts: the gofer-backed root and its overlay, procfs, and
//! the host stdio passthrough.

pub mod cgroupfs;
pub mod devfs;
pub mod epoll;
pub mod eventfd;
pub mod gofer;
pub mod host;
pub mod inotify;
pub mod memfd;
pub mod memfile;
pub mod mqueue;
pub mod overlay;
pub mod pipe;
pub mod procfs;
pub mod signalfd;
pub mod space;
pub mod sysfs;
pub mod timerfd;
pub mod tmpfs;
pub mod unix;
