//! The `service` control-socket commands and the `services` section of `stats` and `peers`.
//!
//! ```text
//! service add VIP:PORT/PROTO BACKEND...   define (or redefine) a service on this host
//! service del VIP:PORT/PROTO              remove this host's definition
//! service list                            the services section
//! ```
//!
//! A definition made here is spread to every host by gossip and lasts until this daemon restarts
//! or reloads its configuration (`[[service]]` is what lasts).

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::control::services::MAX_BACKENDS;
use crate::control::{ServiceKey, ServiceSpec};
use crate::node::Node;
use crate::sys::kernel::services::ServicesDriver;

/// What a `service` command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Define a service.
    Add(ServiceSpec),
    /// Remove a definition.
    Del(ServiceKey),
    /// Show the services.
    List,
}

/// Parses the words after `service`.
pub fn parse(args: &str) -> Result<ServiceCommand, String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.as_slice() {
        ["list"] | [] => Ok(ServiceCommand::List),
        ["del", key] => Ok(ServiceCommand::Del(key.parse()?)),
        ["add", key, backends @ ..] if !backends.is_empty() && backends.len() <= MAX_BACKENDS => {
            let backends = backends
                .iter()
                .map(|b| b.parse::<Ipv4Addr>().map_err(|_| format!("{b:?} is not an IPv4 address")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ServiceCommand::Add(ServiceSpec { key: key.parse()?, backends }))
        }
        _ => Err(format!("usage: service add VIP:PORT/PROTO BACKEND... (1 to {MAX_BACKENDS}) | service del VIP:PORT/PROTO | service list")),
    }
}

/// `specs` after `cmd`.
pub fn apply(mut specs: Vec<ServiceSpec>, cmd: &ServiceCommand) -> Vec<ServiceSpec> {
    match cmd {
        ServiceCommand::Add(spec) => {
            specs.retain(|s| s.key != spec.key);
            specs.push(spec.clone());
        }
        ServiceCommand::Del(key) => specs.retain(|s| s.key != *key),
        ServiceCommand::List => {}
    }
    specs
}

/// The `services` section: every service this host programs, its backends and the live ones.
pub fn section(node: &Node, driver: &ServicesDriver) -> Value {
    let services: Vec<Value> = node
        .services()
        .iter()
        .map(|s| {
            json!({
                "service": s.key.to_string(),
                "backends": s.backends.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
                "live": s.live.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "services": services,
        "defined_here": node.local_services().iter().map(|s| s.key.to_string()).collect::<Vec<_>>(),
        "backends_withdrawn": driver.io().withdrawn,
        "errors": driver.io().errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_change_the_list() {
        let add = parse("add 10.96.0.10:80/tcp 192.0.2.11 192.0.2.21").unwrap();
        let specs = apply(Vec::new(), &add);
        assert_eq!(specs[0].backends.len(), 2);
        assert_eq!(apply(specs.clone(), &add).len(), 1, "redefining replaces");
        assert!(apply(specs, &parse("del 10.96.0.10:80/tcp").unwrap()).is_empty());
        for bad in ["add 10.96.0.10:80/tcp", "add 10.96.0.10:80 192.0.2.11", "add 10.96.0.10:80/tcp x", "del x", "frob"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
