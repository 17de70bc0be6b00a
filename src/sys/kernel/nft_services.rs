//! The nftables table vxswitch owns for service VIPs: `table ip vxswitch_services`.
//!
//! Per service with live backends `B0..Bn-1` (`nft list table ip vxswitch_services`):
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority dstnat;    # from containers
//!     ip daddr VIP tcp dport PORT meta mark set 0x5658 dnat to numgen random mod n map { 0 : B0, 1 : B1, ... } }
//! chain output      { type nat hook output priority dstnat;        # from the host itself
//!     (the same rule) }
//! chain postrouting { type nat hook postrouting priority srcnat;
//!     meta mark 0x5658 masquerade }
//! ```
//!
//! `numgen random` gives each new connection a uniformly random backend, like kube-proxy's
//! `-m statistic --mode random`; conntrack keeps a connection on its backend. The masquerade is
//! needed because client and backend usually share the overlay subnet: without it the backend
//! would answer the client directly, from its own address rather than the VIP.
//!
//! The table and its chains stay while any service is live; a change flushes and refills the
//! chains in one transaction, so the NAT hooks are never unregistered under established flows.
//!
//! Container traffic to a VIP must be *routed* by the host (the container's route to the VIPs
//! goes via its host's bridge address). With `br_netfilter` loaded and
//! `net.bridge.bridge-nf-call-iptables = 1`, the bridge runs these hooks on the frame first and,
//! when the DNAT target sits on the same bridge, bridges it there without the masquerade: the
//! backend then answers the client directly and the connection fails. Hosts with br_netfilter
//! need `net.bridge.bridge-nf-call-iptables = 0`.

use std::borrow::Cow;

use nftables::batch::Batch;
use nftables::expr::{Expression, Map, Meta, MetaKey, NamedExpression, NgMode, Numgen, SetItem};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Rule, Table};
use nftables::stmt::{Mangle, Statement, NAT};
use nftables::types::{NfFamily, NfHook};

use super::nft_build::{eq, field, nat_chain};
use crate::control::{Proto, ServiceView};

fn chain(name: &'static str, hook: NfHook, prio: i32) -> Chain<'static> {
    nat_chain(TABLE, name, hook, prio)
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>, comment: String) -> Rule<'static> {
    super::nft_build::rule(TABLE, chain, expr, comment)
}

/// The table's name (family `ip`).
pub const TABLE: &str = "vxswitch_services";
/// The packet mark of service traffic (masqueraded on the way out).
pub const MARK: u32 = 0x5658;

fn mark() -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key: MetaKey::Mark }))
}

/// The DNAT rule of one service (which must have a live backend).
fn service_rule(chain: &'static str, s: &ServiceView) -> Rule<'static> {
    let proto = match s.key.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let choices = s
        .live
        .iter()
        .enumerate()
        .map(|(i, b)| SetItem::Mapping(Expression::Number(i as u32), Expression::String(Cow::Owned(b.to_string()))))
        .collect();
    let pick = Expression::Named(NamedExpression::Map(Box::new(Map {
        key: Expression::Named(NamedExpression::Numgen(Numgen { mode: NgMode::Random, ng_mod: s.live.len() as u32, offset: None })),
        data: Expression::Named(NamedExpression::Set(choices)),
    })));
    let expr = vec![
        eq(field("ip", "daddr"), Expression::String(Cow::Owned(s.key.vip.to_string()))),
        eq(field(proto, "dport"), Expression::Number(u32::from(s.key.port))),
        Statement::Mangle(Mangle { key: mark(), value: Expression::Number(MARK) }),
        Statement::DNAT(Some(NAT { addr: Some(pick), family: None, port: None, flags: None })),
    ];
    rule(chain, expr, format!("service {}", s.key))
}

/// The commands that make the table hold exactly the rules for `services`: the table and its
/// chains are kept (added if missing) and the chains flushed and refilled in one transaction, so
/// the NAT hooks stay registered for the flows already set up; no live service at all deletes the
/// table.
pub fn ruleset(services: &[ServiceView]) -> nftables::schema::Nftables<'static> {
    let table = || NfListObject::Table(Table { family: NfFamily::IP, name: TABLE.into(), handle: None });
    let mut batch = Batch::new();
    batch.add(table());
    let live: Vec<&ServiceView> = services.iter().filter(|s| !s.live.is_empty()).collect();
    if live.is_empty() {
        batch.delete(table());
        return batch.to_nftables();
    }
    let chains = [
        chain("prerouting", NfHook::Prerouting, -100),
        chain("output", NfHook::Output, -100),
        chain("postrouting", NfHook::Postrouting, 100),
    ];
    for c in &chains {
        batch.add(NfListObject::Chain(c.clone()));
    }
    for c in chains {
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(c)));
    }
    for s in live {
        batch.add(NfListObject::Rule(service_rule("prerouting", s)));
        batch.add(NfListObject::Rule(service_rule("output", s)));
    }
    let masq = vec![eq(mark(), Expression::Number(MARK)), Statement::Masquerade(None)];
    batch.add(NfListObject::Rule(rule("postrouting", masq, "service traffic".into())));
    batch.to_nftables()
}

/// Replace the table with exactly the rules for `services` (none live: the table is deleted).
pub fn apply(services: &[ServiceView]) -> Result<(), NftablesError> {
    helper::apply_ruleset(&ruleset(services))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_spreads_over_the_live_backends_with_numgen() {
        let s = ServiceView {
            key: "10.96.0.10:80/tcp".parse().unwrap(),
            backends: vec!["192.0.2.11".parse().unwrap(), "192.0.2.21".parse().unwrap()],
            live: vec!["192.0.2.11".parse().unwrap(), "192.0.2.21".parse().unwrap()],
        };
        let json = serde_json::to_string(&ruleset(std::slice::from_ref(&s))).unwrap();
        assert!(json.contains(r#""numgen":{"mode":"random","mod":2}"#), "{json}");
        assert!(json.contains(r#"[0,"192.0.2.11"],[1,"192.0.2.21"]"#), "{json}");
        assert!(json.contains(r#""comment":"service 10.96.0.10:80/tcp""#), "{json}");
        let dead = ServiceView { live: Vec::new(), ..s };
        let json = serde_json::to_string(&ruleset(&[dead])).unwrap();
        assert!(json.contains(r#"{"delete":{"table""#), "no live backend, no table: {json}");
    }
}
