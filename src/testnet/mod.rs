//! Network-namespace labs for the demo, the integration tests and the benchmark.

pub mod demo;
pub mod lab;
pub mod netns;
pub mod probes;
