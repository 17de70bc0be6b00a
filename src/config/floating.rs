//! `[[floating_ip]]`: external addresses that follow their container (see
//! [`crate::control::floating`]).
//!
//! ```toml
//! [[floating_ip]]
//! address = "192.0.2.200"   # the external address
//! interface = "eth1"        # the uplink it lives on (on every host that may hold it)
//! container = "10.42.0.5"   # the container it forwards to
//! vni = 1042                # the container's network (a switched network of this host)
//! ```
//!
//! A floating IP moves only by gossip, so `[gossip]` is required.

use std::net::Ipv4Addr;

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, ConfigError, Network};
use crate::control::FloatingSpec;

/// One `[[floating_ip]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFloating {
    pub address: Spanned<Ipv4Addr>,
    pub interface: Spanned<String>,
    pub container: Spanned<Ipv4Addr>,
    pub vni: Spanned<u64>,
}

/// Checks the `[[floating_ip]]` entries against the networks.
pub(super) fn validate(text: &str, raw: Vec<RawFloating>, networks: &[Network], gossip: bool) -> Result<Vec<FloatingSpec>, ConfigError> {
    let mut out: Vec<FloatingSpec> = Vec::new();
    for (i, f) in raw.into_iter().enumerate() {
        let err = |span: std::ops::Range<usize>, k: &str, reason: String| ConfigError {
            file: None,
            line: Some(line_of(text, span.start)),
            key: format!("floating_ip[{i}].{k}"),
            reason,
        };
        let ip = *f.address.get_ref();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback() {
            return Err(err(f.address.span(), "address", format!("{ip} is not a unicast address")));
        }
        if out.iter().any(|o| o.ip == ip) {
            return Err(err(f.address.span(), "address", format!("{ip} is given twice")));
        }
        if !gossip {
            return Err(err(f.address.span(), "address", "a floating IP moves by gossip: configure [gossip]".into()));
        }
        let name = f.interface.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(err(f.interface.span(), "interface", format!("{name:?} is not an interface name (1-15 characters)")));
        }
        let vni = *f.vni.get_ref();
        let Some(net) = networks.iter().find(|n| u64::from(n.vni.get()) == vni) else {
            return Err(err(f.vni.span(), "vni", format!("no [[network]] with vni {vni}")));
        };
        if !matches!(net.mode, super::Mode::Overlay) {
            return Err(err(
                f.vni.span(),
                "vni",
                format!("network {vni} is {:?}; floating IPs follow containers of overlay networks", net.mode),
            ));
        }
        let target = *f.container.get_ref();
        if target.is_unspecified() || target.is_multicast() || target.is_broadcast() {
            return Err(err(f.container.span(), "container", format!("{target} is not a unicast address")));
        }
        out.push(FloatingSpec { ip, interface: name.clone(), vni: net.vni, target });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 7\ntap = \"vxs7\"\n\n[gossip]\ncluster = \"c\"\nname = \"a\"\nkey_file = \"/nonexistent\"\n";

    fn with(entry: &str) -> String {
        format!("{BASE}\n[[floating_ip]]\n{entry}")
    }

    #[test]
    fn floating_ips_parse_with_their_network() {
        let c = Config::parse(&with("address = \"192.0.2.200\"\ninterface = \"eth1\"\ncontainer = \"10.0.0.5\"\nvni = 7\n")).unwrap();
        assert_eq!(c.floating.len(), 1);
        assert_eq!(
            (c.floating[0].ip.to_string(), c.floating[0].interface.as_str(), c.floating[0].vni.get()),
            ("192.0.2.200".into(), "eth1", 7)
        );
        assert!(Config::parse(BASE).unwrap().floating.is_empty(), "none by default");
    }

    #[test]
    fn bad_floating_ips_name_line_key_and_reason() {
        let cases = [
            (
                "address = \"224.0.0.1\"\ninterface = \"eth1\"\ncontainer = \"10.0.0.5\"\nvni = 7\n",
                "floating_ip[0].address",
                "not a unicast",
            ),
            (
                "address = \"192.0.2.200\"\ninterface = \"a-very-long-interface-name\"\ncontainer = \"10.0.0.5\"\nvni = 7\n",
                "floating_ip[0].interface",
                "1-15",
            ),
            (
                "address = \"192.0.2.200\"\ninterface = \"eth1\"\ncontainer = \"10.0.0.5\"\nvni = 8\n",
                "floating_ip[0].vni",
                "no [[network]]",
            ),
            (
                "address = \"192.0.2.200\"\ninterface = \"eth1\"\ncontainer = \"0.0.0.0\"\nvni = 7\n",
                "floating_ip[0].container",
                "not a unicast",
            ),
        ];
        for (entry, key, reason) in cases {
            let e = Config::parse(&with(entry)).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(reason), "{e}");
            assert!(e.line.is_some_and(|l| l > 12), "{e}");
        }
        let twice = format!(
            "{}\n[[floating_ip]]\naddress = \"192.0.2.200\"\ninterface = \"eth2\"\ncontainer = \"10.0.0.6\"\nvni = 7\n",
            with("address = \"192.0.2.200\"\ninterface = \"eth1\"\ncontainer = \"10.0.0.5\"\nvni = 7\n")
        );
        assert!(Config::parse(&twice).unwrap_err().reason.contains("twice"));
        let no_gossip = BASE.split("[gossip]").next().unwrap().to_string()
            + "\n[[floating_ip]]\naddress = \"192.0.2.200\"\ninterface = \"eth1\"\ncontainer = \"10.0.0.5\"\nvni = 7\n";
        assert!(Config::parse(&no_gossip).unwrap_err().reason.contains("gossip"));
    }
}
