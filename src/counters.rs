//! One way to declare counters, so that every counter vxswitch keeps is also exported.
//!
//! Why: vxswitch promises that every drop is counted and visible to an operator. When each set of
//! counters was declared its own way and the `stats` JSON and the Prometheus page were written by
//! hand from them, a counter could be added to a struct and never reach either page. Here a set is
//! declared once, with [`counters!`] (plain counters, gauges and nested sets) or [`reasons!`] (one
//! counter per drop reason, exported with a label). Every declared set enumerates itself through
//! [`CounterSet::visit`] (name, help text, kind, value), and both exports walk that enumeration:
//! the JSON through the `Serialize` impl the macros generate, the metrics page through
//! [`samples`]. Nothing is listed twice, so nothing can be forgotten.
//!
//! The per-packet path does not change: a declared set is a plain struct of `u64` fields, and a
//! reason set a `[u64; N]` indexed by the reason, both incremented directly (no maps, no atomics).
//! Enumeration costs something only when an operator asks.
//!
//! # Naming scheme
//!
//! Each exported set lives in a section of `stats` (`counters`, `driver`, `fdb`, `esp`, `gossip`)
//! and has a metric prefix (empty, or the section name plus `_`). Names are snake_case and stable:
//! dashboards and scripts depend on them.
//!
//! | declared as                         | `stats` JSON                     | Prometheus                                        |
//! |-------------------------------------|----------------------------------|---------------------------------------------------|
//! | `field: u64 = counter`              | `section.field`                  | `vxswitch_<prefix>field_total`                    |
//! | `field: u64 = gauge`                | `section.field`                  | `vxswitch_<prefix>field`                          |
//! | `field: Set = nested`               | `section.field.inner`            | `vxswitch_<prefix>field_inner[_total]`            |
//! | `field: Reasons = nested`           | `section.field.reason`           | `vxswitch_<prefix>field_total{reason="reason"}`   |
//! | `field: Set = flatten`              | `section.inner`                  | `vxswitch_<prefix>inner[_total]`                  |
//! | `field: u64 = counter => fam(h) k = "v"` | `section.field`             | `vxswitch_<prefix>fam_total{k="v"}`               |
//!
//! The last form groups related counters of one struct into one labelled family (the driver's
//! I/O errors: `driver.tap_read_errors` is `vxswitch_io_errors_total{reason="tap_read"}`).

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Whether a value only grows (a counter) or is a level that can also fall (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows; exported with the `_total` suffix.
    Counter,
    /// A current level (table size, members alive).
    Gauge,
}

/// How one declared counter appears on the metrics page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Its own metric, named after the field.
    Own,
    /// One series of the family named by the enclosing field, labelled `reason="<name>"`.
    Reason,
    /// One series of the family `family` (help `help`), labelled `key="value"`.
    Series {
        /// Family name, under the set's prefix.
        family: &'static str,
        /// Help text of the family.
        help: &'static str,
        /// Label key.
        key: &'static str,
        /// Label value.
        value: &'static str,
    },
}

/// One declared counter: what an export needs to know besides the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    /// Field name (the key in `stats`), or the reason label.
    pub name: &'static str,
    /// Help text, taken from the declaration's doc comment.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// How it is named on the metrics page.
    pub export: Export,
}

/// Receives the counters of a set, in declaration order.
pub trait Visitor {
    /// One counter and its current value.
    fn value(&mut self, desc: &Desc, value: u64);
    /// A nested set under the field `name`, documented by `help`.
    fn nested(&mut self, name: &'static str, help: &'static str, set: &dyn CounterSet);
}

/// A declared set of counters that can enumerate itself.
pub trait CounterSet {
    /// Hands every counter (and nested set) to `v`, in declaration order.
    fn visit(&self, v: &mut dyn Visitor);
}

impl<T: CounterSet + ?Sized> CounterSet for &T {
    fn visit(&self, v: &mut dyn Visitor) {
        (**self).visit(v)
    }
}

/// One exported series: where it goes in `stats` and on the metrics page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Path of the value inside its `stats` section, e.g. `["drops", "tap_malformed"]`.
    pub path: Vec<&'static str>,
    /// Metric family name including the set's prefix, without `vxswitch_` or `_total`.
    pub family: String,
    /// Help text of the family.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The series' label, if the family has several series.
    pub label: Option<(&'static str, &'static str)>,
    /// Current value.
    pub value: u64,
}

/// Every counter of `set` as a flat list of series, with metric names under `prefix`.
pub fn samples(prefix: &str, set: &dyn CounterSet) -> Vec<Sample> {
    let mut c = Collector { path: Vec::new(), prefix: prefix.to_string(), enclosing: None, out: Vec::new() };
    set.visit(&mut c);
    c.out
}

struct Collector {
    path: Vec<&'static str>,
    prefix: String,
    enclosing: Option<(String, &'static str)>,
    out: Vec<Sample>,
}

impl Visitor for Collector {
    fn value(&mut self, desc: &Desc, value: u64) {
        let (family, help, label) = match desc.export {
            Export::Own => (format!("{}{}", self.prefix, desc.name), desc.help, None),
            Export::Reason => {
                let (family, help) = self.enclosing.clone().unwrap_or_else(|| (self.prefix.trim_end_matches('_').to_string(), desc.help));
                (family, help, Some(("reason", desc.name)))
            }
            Export::Series { family, help, key, value } => (format!("{}{family}", self.prefix), help, Some((key, value))),
        };
        let mut path = self.path.clone();
        path.push(desc.name);
        self.out.push(Sample { path, family, help, kind: desc.kind, label, value });
    }

    fn nested(&mut self, name: &'static str, help: &'static str, set: &dyn CounterSet) {
        let family = format!("{}{name}", self.prefix);
        let saved_prefix = std::mem::replace(&mut self.prefix, format!("{family}_"));
        let saved_enclosing = self.enclosing.replace((family, help));
        self.path.push(name);
        set.visit(self);
        self.path.pop();
        self.prefix = saved_prefix;
        self.enclosing = saved_enclosing;
    }
}

/// A set as a tree of values, the shape it has in `stats`.
enum Node {
    Value(u64),
    Set(Vec<(&'static str, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Value(v) => s.serialize_u64(*v),
            Node::Set(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (name, node) in fields {
                    map.serialize_entry(name, node)?;
                }
                map.end()
            }
        }
    }
}

struct TreeBuilder(Vec<(&'static str, Node)>);

impl Visitor for TreeBuilder {
    fn value(&mut self, desc: &Desc, value: u64) {
        self.0.push((desc.name, Node::Value(value)));
    }

    fn nested(&mut self, name: &'static str, _help: &'static str, set: &dyn CounterSet) {
        let mut inner = TreeBuilder(Vec::new());
        set.visit(&mut inner);
        self.0.push((name, Node::Set(inner.0)));
    }
}

/// Serializes `set` as a JSON-style object keyed by field (what `stats` prints); the macros'
/// `Serialize` impls call this.
pub fn serialize<S: Serializer>(set: &dyn CounterSet, s: S) -> Result<S::Ok, S::Error> {
    let mut tree = TreeBuilder(Vec::new());
    set.visit(&mut tree);
    Node::Set(tree.0).serialize(s)
}

/// Declares a struct of counters that enumerates itself ([`CounterSet`]) and serializes as
/// `stats` shows it.
///
/// Each field is `doc, name: type = kind`, where kind is `counter` or `gauge` (type `u64`),
/// `nested` (another declared set, exported under the field's name) or `flatten` (another
/// declared set whose counters are exported as if declared here). A counter may add
/// `=> family("help") key = "value"` to be exported as one series of a labelled family.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident : $ty:ty = $kind:ident $(=> $family:ident ($fhelp:expr) $key:ident = $value:literal)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[doc = $doc])* $fvis $field: $ty, )*
        }

        impl $crate::counters::CounterSet for $name {
            fn visit(&self, v: &mut dyn $crate::counters::Visitor) {
                $( $crate::counters::counter_field!(v, self.$field, $field, concat!($($doc),*).trim(), $kind $(, $family, $fhelp, $key, $value)?); )*
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::counters::serialize(self, s)
            }
        }
    };
}
pub(crate) use counters;

/// One field of a [`counters!`] set, handed to the visitor according to its kind.
macro_rules! counter_field {
    ($v:ident, $val:expr, $field:ident, $help:expr, counter) => {
        $v.value(
            &$crate::counters::Desc {
                name: stringify!($field),
                help: $help,
                kind: $crate::counters::Kind::Counter,
                export: $crate::counters::Export::Own,
            },
            $val,
        )
    };
    ($v:ident, $val:expr, $field:ident, $help:expr, gauge) => {
        $v.value(
            &$crate::counters::Desc {
                name: stringify!($field),
                help: $help,
                kind: $crate::counters::Kind::Gauge,
                export: $crate::counters::Export::Own,
            },
            $val,
        )
    };
    ($v:ident, $val:expr, $field:ident, $help:expr, counter, $family:ident, $fhelp:expr, $key:ident, $value:literal) => {
        $v.value(
            &$crate::counters::Desc {
                name: stringify!($field),
                help: $help,
                kind: $crate::counters::Kind::Counter,
                export: $crate::counters::Export::Series {
                    family: stringify!($family),
                    help: $fhelp,
                    key: stringify!($key),
                    value: $value,
                },
            },
            $val,
        )
    };
    ($v:ident, $val:expr, $field:ident, $help:expr, nested) => {
        $v.nested(stringify!($field), $help, &$val)
    };
    ($v:ident, $val:expr, $field:ident, $help:expr, flatten) => {
        $crate::counters::CounterSet::visit(&$val, $v)
    };
}
pub(crate) use counter_field;

/// Declares an enum of drop reasons and a set with one counter per reason.
///
/// ```text
/// reasons! {
///     /// Why a packet was not forwarded.
///     pub enum DropReason;
///     /// One counter per reason.
///     pub struct DropCounts;
///     /// A frame shorter than an Ethernet header.
///     TapMalformed => "tap_malformed",
/// }
/// ```
/// The label is the reason's key in `stats` and its `reason` label on the metrics page.
macro_rules! reasons {
    (
        $(#[doc = $edoc:literal])*
        $evis:vis enum $reason:ident;
        $(#[doc = $sdoc:literal])*
        $svis:vis struct $counts:ident;
        $( $(#[doc = $doc:literal])* $variant:ident => $label:literal, )*
    ) => {
        $(#[doc = $edoc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $evis enum $reason {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl $reason {
            /// Every reason, in declaration (and counter) order.
            pub const ALL: &'static [$reason] = &[$($reason::$variant,)*];

            /// Stable snake_case name: the key in `stats` and the `reason` label of the metric.
            pub const fn label(self) -> &'static str {
                match self { $($reason::$variant => $label,)* }
            }

            /// What the reason means (its doc comment).
            pub fn help(self) -> &'static str {
                match self { $($reason::$variant => concat!($($doc),*).trim(),)* }
            }
        }

        impl ::core::fmt::Display for $reason {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.label())
            }
        }

        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $svis struct $counts {
            counts: [u64; $reason::ALL.len()],
        }

        impl Default for $counts {
            fn default() -> Self {
                $counts { counts: [0; $reason::ALL.len()] }
            }
        }

        impl $counts {
            /// Counts one drop for `reason`.
            // hot path
            #[inline]
            pub fn add(&mut self, reason: $reason) {
                self.counts[reason as usize] += 1;
            }

            /// The count for one reason.
            pub fn get(&self, reason: $reason) -> u64 {
                self.counts[reason as usize]
            }

            /// The sum over all reasons.
            pub fn total(&self) -> u64 {
                self.counts.iter().sum()
            }

            /// `(reason, count)` pairs, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = ($reason, u64)> + '_ {
                $reason::ALL.iter().map(move |r| (*r, self.get(*r)))
            }

            /// Adds another set of counts into this one.
            pub fn merge(&mut self, other: &$counts) {
                for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
                    *a += b;
                }
            }
        }

        impl $crate::counters::CounterSet for $counts {
            fn visit(&self, v: &mut dyn $crate::counters::Visitor) {
                for (reason, value) in self.iter() {
                    let desc = $crate::counters::Desc {
                        name: reason.label(),
                        help: reason.help(),
                        kind: $crate::counters::Kind::Counter,
                        export: $crate::counters::Export::Reason,
                    };
                    v.value(&desc, value);
                }
            }
        }

        impl ::serde::Serialize for $counts {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::counters::serialize(self, s)
            }
        }
    };
}
pub(crate) use reasons;

#[cfg(test)]
mod tests {
    use super::*;

    reasons! {
        /// Test reasons.
        pub enum Why;
        /// Test counts.
        pub struct WhyCounts;
        /// First reason.
        First => "first",
        /// Second reason,
        /// on two lines.
        Second => "second",
    }

    counters! {
        /// An inner set.
        #[derive(Debug, Default)]
        pub struct Inner {
            /// Inner hits.
            pub hits: u64 = counter,
        }
    }

    counters! {
        /// An outer set.
        #[derive(Debug, Default)]
        pub struct Outer {
            /// Frames seen.
            pub frames: u64 = counter,
            /// Entries now.
            pub entries: u64 = gauge,
            /// Read failures.
            pub read_errors: u64 = counter => io_errors("I/O failures, by kind") reason = "read",
            /// Inner counters.
            pub inner: Inner = nested,
            /// Flattened counters.
            pub flat: Inner = flatten,
            /// Drops, by reason.
            drops: WhyCounts = nested,
        }
    }

    #[test]
    fn sets_enumerate_themselves_for_both_exports() {
        let mut o = Outer { frames: 1, entries: 2, read_errors: 3, ..Default::default() };
        o.inner.hits = 4;
        o.flat.hits = 5;
        o.drops.add(Why::Second);
        let mut twice = o.drops;
        twice.merge(&o.drops);
        assert_eq!(twice.total(), 2);
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"frames": 1, "entries": 2, "read_errors": 3, "inner": {"hits": 4}, "hits": 5, "drops": {"first": 0, "second": 1}})
        );
        let s = samples("x_", &o);
        let names: Vec<_> = s.iter().map(|s| (s.family.as_str(), s.label, s.value)).collect();
        assert_eq!(
            names,
            [
                ("x_frames", None, 1),
                ("x_entries", None, 2),
                ("x_io_errors", Some(("reason", "read")), 3),
                ("x_inner_hits", None, 4),
                ("x_hits", None, 5),
                ("x_drops", Some(("reason", "first")), 0),
                ("x_drops", Some(("reason", "second")), 1),
            ]
        );
        assert_eq!(s[0].help, "Frames seen.");
        assert_eq!(s[1].kind, Kind::Gauge);
        assert_eq!(s[2].help, "I/O failures, by kind");
        assert_eq!(s[5].help, "Drops, by reason.");
        assert_eq!(Why::Second.help(), "Second reason, on two lines.");
        assert_eq!(s[6].path, ["drops", "second"]);
    }
}
