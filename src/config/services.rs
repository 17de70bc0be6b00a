//! `[[service]]`: service VIPs (see [`crate::control::services`]).
//!
//! ```toml
//! [[service]]
//! address = "10.96.0.10:80/tcp"                           # VIP:PORT/PROTO (tcp or udp)
//! backends = ["192.0.2.11", "192.0.2.21", "192.0.2.31"]  # container addresses, same port
//! ```

use std::net::Ipv4Addr;

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, ConfigError};
use crate::control::services::{MAX_BACKENDS, MAX_SERVICES};
use crate::control::{ServiceKey, ServiceSpec};

/// One `[[service]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub address: Spanned<String>,
    pub backends: Spanned<Vec<Ipv4Addr>>,
}

/// Checks the `[[service]]` entries.
pub(super) fn validate(text: &str, raw: Vec<RawService>) -> Result<Vec<ServiceSpec>, ConfigError> {
    let mut out: Vec<ServiceSpec> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let err = |span: std::ops::Range<usize>, k: &str, reason: String| ConfigError {
            file: None,
            line: Some(line_of(text, span.start)),
            key: format!("service[{i}].{k}"),
            reason,
        };
        if i >= MAX_SERVICES {
            return Err(err(s.address.span(), "address", format!("at most {MAX_SERVICES} services")));
        }
        let key: ServiceKey = s.address.get_ref().parse().map_err(|e| err(s.address.span(), "address", e))?;
        if out.iter().any(|o| o.key == key) {
            return Err(err(s.address.span(), "address", format!("{key} is given twice")));
        }
        let backends = s.backends.get_ref().clone();
        if backends.is_empty() || backends.len() > MAX_BACKENDS {
            return Err(err(s.backends.span(), "backends", format!("give 1 to {MAX_BACKENDS} backend addresses")));
        }
        if let Some(b) = backends.iter().find(|b| b.is_unspecified() || b.is_multicast() || b.is_broadcast()) {
            return Err(err(s.backends.span(), "backends", format!("{b} is not a unicast address")));
        }
        out.push(ServiceSpec { key, backends });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 7\ntap = \"vxs7\"\n";

    #[test]
    fn services_parse_and_bad_ones_name_line_key_and_reason() {
        let c =
            Config::parse(&format!("{BASE}\n[[service]]\naddress = \"10.96.0.10:80/tcp\"\nbackends = [\"192.0.2.11\", \"192.0.2.21\"]\n"))
                .unwrap();
        assert_eq!(c.services[0].key.to_string(), "10.96.0.10:80/tcp");
        assert_eq!(c.services[0].backends.len(), 2);
        for (entry, key, reason) in [
            ("address = \"10.96.0.10:80\"\nbackends = [\"192.0.2.11\"]\n", "service[0].address", "VIP:PORT/PROTO"),
            ("address = \"10.96.0.10:80/sctp\"\nbackends = [\"192.0.2.11\"]\n", "service[0].address", "tcp or udp"),
            ("address = \"10.96.0.10:80/tcp\"\nbackends = []\n", "service[0].backends", "1 to"),
            ("address = \"10.96.0.10:80/tcp\"\nbackends = [\"0.0.0.0\"]\n", "service[0].backends", "unicast"),
        ] {
            let e = Config::parse(&format!("{BASE}\n[[service]]\n{entry}")).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(reason), "{e}");
            assert!(e.line.is_some_and(|l| l >= 9), "{e}");
        }
    }
}
