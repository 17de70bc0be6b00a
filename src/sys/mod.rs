//! Drivers: the only place with file descriptors, syscalls, clocks, threads and `unsafe`.

pub mod hostsubnet;
pub mod netlink;
pub mod netns;
