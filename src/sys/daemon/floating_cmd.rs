//! The `floating` control-socket commands: bind and unbind floating IPs on a running daemon.
//!
//! ```text
//! floating add ADDRESS INTERFACE CONTAINER VNI   bind ADDRESS (on uplink INTERFACE) to CONTAINER
//! floating del ADDRESS                          unbind it (released at once if held here)
//! floating list                                 the floating section of `stats`
//! ```
//!
//! A binding made here lasts until the daemon restarts or reloads its configuration, which then
//! sets the configured `[[floating_ip]]` list again: put lasting bindings in the file. Every host
//! that may hold the address needs the same binding (the hosts decide among themselves which one
//! holds it).

use std::net::Ipv4Addr;

use crate::config::{Config, Mode};
use crate::control::FloatingSpec;

/// What a `floating` command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloatingCommand {
    /// Bind (or re-bind) an address.
    Add(FloatingSpec),
    /// Unbind an address.
    Del(Ipv4Addr),
    /// Show the bindings and owners.
    List,
}

/// Parses the words after `floating`, checking the network against `config`.
pub fn parse(args: &str, config: &Config) -> Result<FloatingCommand, String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let ip = |w: &str| w.parse::<Ipv4Addr>().map_err(|_| format!("{w:?} is not an IPv4 address"));
    match words.as_slice() {
        ["list"] | [] => Ok(FloatingCommand::List),
        ["del", address] => Ok(FloatingCommand::Del(ip(address)?)),
        ["add", address, interface, container, vni] => {
            let address = ip(address)?;
            if address.is_unspecified() || address.is_multicast() || address.is_broadcast() || address.is_loopback() {
                return Err(format!("{address} is not a unicast address"));
            }
            if interface.is_empty() || interface.len() > 15 || interface.contains('/') {
                return Err(format!("{interface:?} is not an interface name (1-15 characters)"));
            }
            let vni: u32 = vni.parse().map_err(|_| format!("{vni:?} is not a VNI"))?;
            let net = config
                .networks
                .iter()
                .find(|n| n.vni.get() == vni && n.mode == Mode::Overlay)
                .ok_or_else(|| format!("no overlay network with vni {vni} on this host"))?;
            if config.gossip.is_none() {
                return Err("a floating IP moves by gossip: configure [gossip]".into());
            }
            Ok(FloatingCommand::Add(FloatingSpec { ip: address, interface: interface.to_string(), vni: net.vni, target: ip(container)? }))
        }
        _ => Err("usage: floating add ADDRESS INTERFACE CONTAINER VNI | floating del ADDRESS | floating list".into()),
    }
}

/// `specs` after `cmd` (unchanged for `List`).
pub fn apply(mut specs: Vec<FloatingSpec>, cmd: &FloatingCommand) -> Vec<FloatingSpec> {
    match cmd {
        FloatingCommand::Add(spec) => {
            specs.retain(|s| s.ip != spec.ip);
            specs.push(spec.clone());
        }
        FloatingCommand::Del(ip) => specs.retain(|s| s.ip != *ip),
        FloatingCommand::List => {}
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 7\ntap = \"vxs7\"\n\n[gossip]\ncluster = \"c\"\nname = \"a\"\nkey_file = \"/nonexistent\"\n";

    #[test]
    fn commands_parse_and_change_the_list() {
        let config = Config::parse(CONFIG).unwrap();
        let add = parse("add 192.0.2.200 eth1 10.0.0.5 7", &config).unwrap();
        let FloatingCommand::Add(spec) = &add else { panic!("{add:?}") };
        assert_eq!(
            (spec.ip.to_string(), spec.interface.as_str(), spec.target.to_string()),
            ("192.0.2.200".into(), "eth1", "10.0.0.5".into())
        );
        let specs = apply(Vec::new(), &add);
        assert_eq!(specs.len(), 1);
        assert_eq!(apply(specs.clone(), &add).len(), 1, "re-binding replaces");
        assert!(apply(specs, &parse("del 192.0.2.200", &config).unwrap()).is_empty());
        assert_eq!(parse("list", &config).unwrap(), FloatingCommand::List);
        for bad in [
            "add 192.0.2.200 eth1 10.0.0.5 8",
            "add 224.0.0.1 eth1 10.0.0.5 7",
            "add x eth1 10.0.0.5 7",
            "add 192.0.2.1 a/b 10.0.0.5 7",
            "frob",
        ] {
            assert!(parse(bad, &config).is_err(), "{bad}");
        }
    }
}
