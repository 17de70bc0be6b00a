//! The CNI plugin's pure parts: the CNI 1.1.0 wire format ([`spec`]) and the built-in IPAM's
//! bookkeeping ([`ipam`]). What touches the system (namespaces, veths, the IPAM store, the
//! daemon) is in [`crate::sys::cni`].

pub mod ipam;
pub mod spec;
