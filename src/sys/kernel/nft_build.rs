//! Typed nftables building blocks shared by vxswitch's own tables ([`super::nft`] for floating
//! IPs, [`super::nft_services`] for service VIPs): NAT base chains, payload matches and rules with
//! a comment, all in family `ip`.

use std::borrow::Cow;

use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{Chain, Rule};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainType, NfFamily, NfHook};

/// Priority `dstnat`.
pub const DSTNAT: i32 = -100;
/// Priority `srcnat`.
pub const SRCNAT: i32 = 100;

/// A NAT base chain `name` of `table` on `hook` at `prio`.
pub fn nat_chain(table: &'static str, name: &'static str, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: table.into(),
        name: name.into(),
        _type: Some(NfChainType::NAT),
        hook: Some(hook),
        prio: Some(prio),
        ..Chain::default()
    }
}

/// A header field, e.g. `ip daddr` or `tcp dport`.
pub fn field(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField { protocol: protocol.into(), field: field.into() })))
}

/// `left == right`.
pub fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op: Operator::EQ })
}

/// A rule in `chain` of `table`, with a comment (what a start after a crash reads back).
pub fn rule(table: &'static str, chain: &'static str, expr: Vec<Statement<'static>>, comment: String) -> Rule<'static> {
    Rule {
        family: NfFamily::IP,
        table: table.into(),
        chain: chain.into(),
        expr: expr.into(),
        comment: Some(Cow::Owned(comment)),
        ..Rule::default()
    }
}
