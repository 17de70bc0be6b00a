//! `[underlay]` settings for the benchmark's vxswitch daemons, so the cost or gain of a knob
//! (`workers`, `busy_poll_us`, `offload`, ...) is measured side by side with the default in one
//! run instead of across two runs on a machine whose load drifts.
//!
//! - `--underlay KEY=VALUE` (repeatable) applies to every vxswitch mode of the run.
//! - `--variant KEY=VALUE[,KEY=VALUE...]` (repeatable) adds, next to each selected vxswitch mode,
//!   a row with those keys on top: `vxswitch-vxlan+busy_poll_us=0`. The variants take part in the
//!   interleaving of repeats like any mode, so the default and the variant see the same drift.
//!
//! Values are TOML as they would be written in the configuration file; the keys go into the
//! `[underlay]` table of the generated configuration, where the daemon's own parser checks them
//! (an unknown key or a value out of range fails that mode with the daemon's line/key/reason).

use std::fmt;
use std::str::FromStr;

/// One `KEY=VALUE` for the `[underlay]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knob {
    /// The key, as in the configuration file.
    pub key: String,
    /// The value, TOML as written in the configuration file.
    pub value: String,
}

impl FromStr for Knob {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(format!("{s:?}: the key must be an [underlay] key (lower-case letters, digits, _)"));
        }
        if value.is_empty() || value.contains('\n') {
            return Err(format!("{s:?}: the value must be one TOML value on one line"));
        }
        Ok(Knob { key: key.into(), value: value.into() })
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// The keys of one `--variant`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant(pub Vec<Knob>);

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let knobs = s.split(',').map(str::parse).collect::<Result<Vec<Knob>, _>>()?;
        let mut keys: Vec<&str> = knobs.iter().map(|k| k.key.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("{s:?}: key {} given twice", w[0]));
        }
        Ok(Variant(knobs))
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Knob::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// `base` with `on_top` applied: a key of `on_top` replaces the same key of `base`.
pub fn merged(base: &[Knob], on_top: &[Knob]) -> Vec<Knob> {
    let mut out: Vec<Knob> = base.iter().filter(|b| !on_top.iter().any(|t| t.key == b.key)).cloned().collect();
    out.extend(on_top.iter().cloned());
    out
}

/// `config` (a generated daemon configuration with one `[underlay]` table) with `knobs` set in
/// that table: an existing `key = ...` line of the table is replaced, others are added at its top.
pub fn apply(config: &str, knobs: &[Knob]) -> Result<String, String> {
    if knobs.is_empty() {
        return Ok(config.to_string());
    }
    let lines: Vec<&str> = config.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "[underlay]").ok_or("the configuration has no [underlay] table")?;
    let end = lines[start + 1..].iter().position(|l| l.trim_start().starts_with('[')).map_or(lines.len(), |p| start + 1 + p);
    let key_of = |l: &str| l.split_once('=').map(|(k, _)| k.trim().to_string());
    let mut out: Vec<String> = lines[..=start].iter().map(|l| l.to_string()).collect();
    out.extend(knobs.iter().map(|k| format!("{} = {}", k.key, k.value)));
    out.extend(lines[start + 1..end].iter().filter(|l| key_of(l).is_none_or(|k| !knobs.iter().any(|n| n.key == k))).map(|l| l.to_string()));
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    let mut text = out.join("\n");
    if config.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knob(s: &str) -> Knob {
        s.parse().unwrap()
    }

    #[test]
    fn knobs_parse_and_print_back() {
        assert_eq!(knob("workers=1"), Knob { key: "workers".into(), value: "1".into() });
        assert_eq!(knob(" busy_poll_us = 0 ").to_string(), "busy_poll_us=0");
        assert_eq!(knob("offload=false").value, "false");
        for bad in ["workers", "=1", "workers=", "Workers=1", "a b=1", "x.y=2"] {
            assert!(bad.parse::<Knob>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn variants_split_at_commas_and_refuse_a_key_twice() {
        let v: Variant = "workers=1,busy_poll_us=0".parse().unwrap();
        assert_eq!(v.0, [knob("workers=1"), knob("busy_poll_us=0")]);
        assert_eq!(v.to_string(), "workers=1,busy_poll_us=0");
        assert!("workers=1,workers=2".parse::<Variant>().unwrap_err().contains("twice"));
        assert!("workers=1,".parse::<Variant>().is_err());
    }

    #[test]
    fn a_variant_key_replaces_the_run_wide_one() {
        let m = merged(&[knob("workers=2"), knob("busy_poll_us=50")], &[knob("workers=1")]);
        assert_eq!(m, [knob("busy_poll_us=50"), knob("workers=1")]);
    }

    #[test]
    fn keys_go_into_the_underlay_table_replacing_what_is_there() {
        let config = "control_socket = \"/s\"\n\n[underlay]\naddress = \"10.0.0.1\"\nworkers = 2\n\n[[network]]\nvni = 1\nworkers = 9\n";
        let out = apply(config, &[knob("workers=1"), knob("busy_poll_us=0")]).unwrap();
        assert_eq!(
            out,
            "control_socket = \"/s\"\n\n[underlay]\nworkers = 1\nbusy_poll_us = 0\naddress = \"10.0.0.1\"\n\n[[network]]\nvni = 1\nworkers = 9\n"
        );
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(parsed["underlay"]["workers"].as_integer(), Some(1));
        assert_eq!(apply(config, &[]).unwrap(), config);
        assert!(apply("[[network]]\nvni = 1\n", &[knob("workers=1")]).is_err());
    }

    #[test]
    fn the_daemon_parser_reads_the_knobs_of_a_lab_configuration() {
        let config = "control_socket = \"/tmp/x.sock\"\n\n[underlay]\naddress = \"192.0.2.1\"\n\n[[network]]\nvni = 42\ntap = \"vxs42\"\npeers = [\"192.0.2.2\"]\n";
        let base = crate::config::Config::parse(config).unwrap();
        let c = crate::config::Config::parse(&apply(config, &[knob("workers=1"), knob("busy_poll_us=0")]).unwrap()).unwrap();
        assert_eq!(c.underlay.workers, 1);
        assert!(c.underlay.busy_poll.is_zero());
        assert_ne!((base.underlay.workers, base.underlay.busy_poll), (c.underlay.workers, c.underlay.busy_poll));
        let err = crate::config::Config::parse(&apply(config, &[knob("workers=7")]).unwrap()).unwrap_err().to_string();
        assert!(err.contains("workers"), "{err}");
    }
}
