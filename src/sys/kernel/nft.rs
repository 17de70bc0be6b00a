//! The nftables table vxswitch owns for floating IPs: `table ip vxswitch_floating`.
//!
//! Programmed through the `nftables` crate, which builds typed JSON commands and hands them to
//! `nft -j -f -` (the libnftables JSON API). Typed statements instead of rule strings: nothing
//! is quoted by hand, and the table read back at start is parsed, not scraped. The whole table
//! is replaced in one `nft` transaction on every change (`add table; delete table; add table;
//! chains; rules`): there is never a moment with half the rules, and whatever an earlier run or
//! an operator left in the table is gone.
//!
//! Per held floating IP `F` on uplink `U` for container `C` (`nft list table ip vxswitch_floating`):
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority dstnat;  ip daddr F dnat to C }   # inbound
//! chain output      { type nat hook output priority dstnat;      ip daddr F dnat to C }   # from this host
//! chain postrouting { type nat hook postrouting priority srcnat; ip saddr C oifname U snat to F }
//! ```
//!
//! Each rule's comment is `fip F U`, so a start after a crash can read back which addresses the
//! previous run held (and remove them from their uplinks) before deleting the table.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, NfListObject, NfObject, Rule, Table};
use nftables::stmt::{Statement, NAT};
use nftables::types::{NfFamily, NfHook};

use super::nft_build::{eq as matches, field, nat_chain, DSTNAT, SRCNAT};
use crate::control::FloatingSpec;

fn chain(name: &'static str, hook: NfHook, prio: i32) -> Chain<'static> {
    nat_chain(TABLE, name, hook, prio)
}

fn ip_field(name: &'static str) -> Expression<'static> {
    field("ip", name)
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>, comment: &str) -> Rule<'static> {
    super::nft_build::rule(TABLE, chain, expr, comment.to_string())
}

/// The table's name (family `ip`).
pub const TABLE: &str = "vxswitch_floating";

fn table() -> Table<'static> {
    Table { family: NfFamily::IP, name: TABLE.into(), handle: None }
}

fn addr(ip: Ipv4Addr) -> Expression<'static> {
    Expression::String(Cow::Owned(ip.to_string()))
}

fn nat(to: Ipv4Addr) -> Option<NAT<'static>> {
    Some(NAT { addr: Some(addr(to)), family: None, port: None, flags: None })
}

/// The comment that marks the rules of `spec`.
pub fn comment(spec: &FloatingSpec) -> String {
    format!("fip {} {}", spec.ip, spec.interface)
}

/// The commands that replace the table with exactly the rules for `held`.
pub fn ruleset(held: &[FloatingSpec]) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    // `add` then `delete` never fails whether the table exists or not.
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    if !held.is_empty() {
        batch.add(NfListObject::Table(table()));
        batch.add(NfListObject::Chain(chain("prerouting", NfHook::Prerouting, DSTNAT)));
        batch.add(NfListObject::Chain(chain("output", NfHook::Output, DSTNAT)));
        batch.add(NfListObject::Chain(chain("postrouting", NfHook::Postrouting, SRCNAT)));
    }
    for spec in held {
        let c = comment(spec);
        for ch in ["prerouting", "output"] {
            let r = rule(ch, vec![matches(ip_field("daddr"), addr(spec.ip)), Statement::DNAT(nat(spec.target))], &c);
            batch.add(NfListObject::Rule(r));
        }
        let oif = Expression::Named(NamedExpression::Meta(Meta { key: MetaKey::Oifname }));
        let snat = vec![
            matches(ip_field("saddr"), addr(spec.target)),
            matches(oif, Expression::String(Cow::Owned(spec.interface.clone()))),
            Statement::SNAT(nat(spec.ip)),
        ];
        batch.add(NfListObject::Rule(rule("postrouting", snat, &c)));
    }
    batch.to_nftables()
}

/// Replace the table with exactly the rules for `held` (none: the table is deleted).
pub fn apply(held: &[FloatingSpec]) -> Result<(), NftablesError> {
    helper::apply_ruleset(&ruleset(held))
}

/// The floating IPs (address, uplink) whose rules the table holds now: what an earlier run
/// held. No table: none.
pub fn held_now() -> Result<Vec<(Ipv4Addr, String)>, NftablesError> {
    let listed = match helper::get_current_ruleset_with_args(helper::DEFAULT_NFT, ["list", "table", "ip", TABLE]) {
        Ok(l) => l,
        // "No such file or directory": no table, nothing held.
        Err(NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file") => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<(Ipv4Addr, String)> = Vec::new();
    for obj in listed.objects.iter() {
        let NfObject::ListObject(NfListObject::Rule(r)) = obj else { continue };
        let Some(parsed) = r.comment.as_deref().and_then(parse_comment) else { continue };
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

fn parse_comment(c: &str) -> Option<(Ipv4Addr, String)> {
    let mut words = c.split(' ');
    (words.next()? == "fip").then_some(())?;
    let ip = words.next()?.parse().ok()?;
    let dev = words.next()?.to_string();
    Some((ip, dev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::vxlan::Vni;

    #[test]
    fn ruleset_replaces_the_table_and_marks_each_rule() {
        let spec = FloatingSpec {
            ip: "192.0.2.200".parse().unwrap(),
            interface: "up0".into(),
            vni: Vni::new_const(1),
            target: "10.0.0.5".parse().unwrap(),
        };
        let json = serde_json::to_string(&ruleset(std::slice::from_ref(&spec))).unwrap();
        assert!(
            json.starts_with(r#"{"nftables":[{"add":{"table":{"family":"ip","name":"vxswitch_floating"}}},{"delete":{"table""#),
            "{json}"
        );
        assert!(json.contains(r#""dnat":{"addr":"10.0.0.5"}"#), "{json}");
        assert!(json.contains(r#""snat":{"addr":"192.0.2.200"}"#), "{json}");
        assert!(json.contains(r#""comment":"fip 192.0.2.200 up0""#), "{json}");
        assert_eq!(parse_comment(&comment(&spec)), Some((spec.ip, "up0".to_string())));
        assert_eq!(parse_comment("something else"), None);
        let empty = serde_json::to_string(&ruleset(&[])).unwrap();
        assert_eq!(empty.matches("\"table\"").count(), 2, "add + delete only: {empty}");
    }
}
