//! `vxswitch bench --quick` end to end: every mode yields a positive figure or says why not, the
//! JSON/CSV/SVG outputs are well formed, and no namespace of the run survives it, also when the
//! run is interrupted. Needs root; without it each test prints SKIP (or fails with
//! VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns_common::have_root;
use quick_xml::events::Event;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Namespaces whose name carries this run's pid (`vxs-<tag>-<pid>` or `vxs-<tag>-<pid>-...`).
fn leftovers(pid: u32) -> Vec<String> {
    let marker = format!("-{pid}");
    vxswitch::testnet::netns::list()
        .into_iter()
        .filter(|n| n.starts_with("vxs-"))
        .filter(|n| n.match_indices(&marker).any(|(i, _)| matches!(n.as_bytes().get(i + marker.len()), None | Some(b'-'))))
        .collect()
}

/// A scratch directory removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(purpose: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vxs-{purpose}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Split one CSV line (RFC 4180 quoting) into fields; `None` if a quote is left open.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut()?.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut()?.push(c),
        }
    }
    (!quoted).then_some(fields)
}

/// Strict well-formedness: every tag closes in order, exactly one root `<svg>`, no errors.
fn check_svg(text: &str) {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots, mut elements) = (0usize, 0usize, 0usize);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if depth == 0 {
                    roots += 1;
                    assert_eq!(e.name().as_ref(), b"svg", "root element");
                }
                depth += 1;
                elements += 1;
            }
            Ok(Event::Empty(_)) => {
                assert!(depth > 0, "element outside the root");
                elements += 1;
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Text(t)) => {
                t.unescape().expect("text unescapes");
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("SVG is not well-formed XML at {}: {e}", reader.buffer_position()),
        }
    }
    assert_eq!((depth, roots), (0, 1), "unbalanced SVG");
    assert!(elements > 50, "SVG has only {elements} elements");
}

#[test]
fn netns_bench_quick_reports_every_mode_and_cleans_up() {
    if !have_root("netns_bench_quick_reports_every_mode_and_cleans_up") {
        return;
    }
    let dir = Scratch::new("benchq");
    let (json, csv, svg) = (dir.0.join("b.json"), dir.0.join("b.csv"), dir.0.join("b.svg"));
    let start = Instant::now();
    let child = Command::new(bin())
        .arg("bench")
        .arg("--quick")
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(&svg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed ({}):\n{stdout}\n{stderr}", out.status);
    eprintln!("bench --quick took {:.1} s\n{stdout}", start.elapsed().as_secs_f64());
    assert!(leftovers(pid).is_empty(), "namespaces left behind: {:?}", leftovers(pid));

    // JSON: every mode measured with positive figures, or explicitly unsupported / not available.
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["run_id"].as_u64(), Some(u64::from(pid)));
    let modes = report["modes"].as_array().unwrap();
    let ids: Vec<&str> = modes.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(
        ids,
        ["veth", "host-subnet", "kernel-vxlan", "vxswitch-vxlan", "vxswitch-vxlan6", "vxswitch-routed", "vxswitch-esp", "kernel-xfrm"],
        "every mode is reported, in order"
    );
    for m in modes {
        let id = m["id"].as_str().unwrap();
        match m["status"].as_str().unwrap() {
            "measured" => {
                for key in ["tcp_1_gbps", "tcp_n_gbps", "udp64_kpps", "rtt_p50_us", "rtt_p99_us", "kernel_cpu_s_per_gb"] {
                    let v = m["metrics"][key]["median"].as_f64().unwrap_or(0.0);
                    assert!(v > 0.0, "{id}: {key} = {v}");
                }
                if id.starts_with("vxswitch") {
                    let v = m["metrics"]["switch_cpu_s_per_gb"]["median"].as_f64().unwrap_or(0.0);
                    assert!(v > 0.0, "{id}: switch CPU = {v}");
                    let pinged = m["metrics"]["switch_ping_cpu_pct"]["median"].as_f64();
                    assert!(pinged.is_some_and(|p| (0.0..=200.0).contains(&p)), "{id}: switch CPU during the latency run = {pinged:?}");
                }
                assert_eq!(m["metrics"]["tcp_1_gbps"]["samples"].as_array().map(Vec::len), Some(1), "--quick is one repeat");
            }
            "unsupported" | "not_available" => {
                let reason = m["reason"].as_str().unwrap_or("");
                assert!(reason.contains("unsupported") || reason.contains("not available"), "{id}: reason {reason:?}");
            }
            other => panic!("{id}: status {other}: {}", m["reason"]),
        }
    }
    for reference in ["veth", "host-subnet", "kernel-vxlan", "vxswitch-vxlan", "vxswitch-vxlan6", "vxswitch-routed", "vxswitch-esp"] {
        let m = modes.iter().find(|m| m["id"] == reference).unwrap();
        assert_eq!(m["status"], "measured", "{reference} runs on every kernel with veth, bridge, vxlan and TAP");
    }
    let vx = modes.iter().find(|m| m["id"] == "vxswitch-vxlan").unwrap();
    assert!(vx["metrics"]["tcp_1_gbps"]["vs_host_subnet"].as_f64().is_some_and(|r| r > 0.0));
    assert!(vx["metrics"]["tcp_1_gbps"]["vs_veth"].as_f64().is_some_and(|r| r > 0.0));
    assert!(vx["metrics"]["rtt_p50_us"]["vs_kernel_vxlan"].as_f64().is_some_and(|r| r > 0.0), "the fast path's yardstick");

    // CSV: a header, then rows with as many fields, agreeing with the JSON.
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<String>> = text.lines().map(|l| csv_fields(l).unwrap_or_else(|| panic!("bad CSV line {l}"))).collect();
    assert_eq!(rows[0][0], "mode");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "ragged CSV:\n{text}");
    let median =
        |mode: &str, metric: &str| -> f64 { rows.iter().find(|r| r[0] == mode && r[3] == metric).map(|r| r[5].parse().unwrap()).unwrap() };
    let json_median = report["modes"][0]["metrics"]["tcp_1_gbps"]["median"].as_f64().unwrap();
    assert!((median("veth", "tcp_1_gbps") - json_median).abs() < 1e-3);
    let xfrm = rows.iter().find(|r| r[0] == "kernel-xfrm").expect("kernel-xfrm row");
    assert!(xfrm[2] == "unsupported" || xfrm[2] == "measured", "{xfrm:?}");

    // SVG: well-formed, names every mode.
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    check_svg(&svg_text);
    for name in ["veth baseline", "host-subnet", "kernel vxlan", "vxswitch VXLAN", "vxswitch ESP"] {
        assert!(svg_text.contains(name), "SVG lacks {name}");
    }
    // The terminal table names every mode too.
    assert!(stdout.contains("| vxswitch VXLAN |") && stdout.contains("Method:"), "{stdout}");
}

#[test]
fn netns_bench_interrupted_removes_every_namespace() {
    if !have_root("netns_bench_interrupted_removes_every_namespace") {
        return;
    }
    let mut child = Command::new(bin())
        .args(["bench", "--quick", "--modes", "host-subnet,vxswitch-vxlan"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Interrupt in the middle of a measurement, when the lab is fully built.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("latency") {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("latency")), "no progress line: {seen:?}");
    assert!(!leftovers(pid).is_empty(), "the lab should exist mid-run");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "bench did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest = drain.join().unwrap();
    assert!(!status.success(), "an interrupted run must not report success");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    assert!(leftovers(pid).is_empty(), "namespaces left behind: {:?}", leftovers(pid));
}
