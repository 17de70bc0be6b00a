//! Network-namespace labs for the demo, the integration tests and the benchmark: namespaces that
//! delete themselves ([`netns`]), running code inside one ([`setns`]), the traffic probes
//! ([`probe`]) and running them in the lab ([`probes`]). Lab code only; the daemon never uses it.

pub mod demo;
pub mod interrupt;
pub mod lab;
pub mod netns;
pub mod pattern;
pub mod probe;
pub mod probes;
pub mod qemu;
pub mod setns;
