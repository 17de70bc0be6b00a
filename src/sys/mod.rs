//! Drivers: the only place with file descriptors, syscalls, clocks, threads and `unsafe`.
