//! Benchmark of whole lab runs: bring up, prove, tear down.
//!
//! Usage (as root, release build):
//! `cargo run -p portolan-lab --release --example lab_bench -- [WHAT] [ROUNDS]`
//! where WHAT is `circonus` (the Circonus Inside example, every feature on,
//! then none), `generated[:COMPONENTS:FLOWS]` (a generated spec, by default
//! 100 components and 2,000 flows) or `all` (the default); ROUNDS defaults
//! to 3. Prints one line per run with the time of each phase and the number
//! of checks, then the medians.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use portolan_lab::{run_lab, FeatureChoice, LabOptions, LabReport};
use portolan_spec::{load_spec, SourceFile, Spec};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "all".to_owned());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    if let Err(e) = portolan_lab::check_privileges() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let mut cases: Vec<(String, Spec, FeatureChoice)> = Vec::new();
    if what == "all" || what == "circonus" {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/circonus-inside/portolan.yaml");
        let spec = load(&path.display().to_string(), &read(&path));
        cases.push((
            "circonus, every feature".into(),
            spec.clone(),
            FeatureChoice::All,
        ));
        cases.push((
            "circonus, no feature".into(),
            spec,
            FeatureChoice::Listed(Vec::new()),
        ));
    }
    if what == "all" || what.starts_with("generated") {
        let mut parts = what.split(':').skip(1);
        let components = parts.next().and_then(|p| p.parse().ok()).unwrap_or(100);
        let flows = parts.next().and_then(|p| p.parse().ok()).unwrap_or(2000);
        let text = generated_spec(components, flows);
        if let Some(out) = std::env::var_os("PORTOLAN_BENCH_SPEC_OUT") {
            // To inspect the spec, or to run `portolan lab` on it.
            if let Err(e) = std::fs::write(&out, &text) {
                eprintln!("error: {}: {e}", Path::new(&out).display());
                std::process::exit(2);
            }
        }
        let spec = load("generated.yaml", &text);
        cases.push((
            format!(
                "generated, {} components, {} flows",
                spec.components.len(),
                spec.flows.len()
            ),
            spec,
            FeatureChoice::Listed(vec!["f0".into(), "f1".into(), "f2".into()]),
        ));
    }
    if cases.is_empty() {
        eprintln!("error: WHAT is circonus, generated[:COMPONENTS:FLOWS] or all");
        std::process::exit(2);
    }
    for (name, spec, features) in cases {
        println!("== {name}");
        let mut rows: Vec<[Duration; 9]> = Vec::new();
        for round in 1..=rounds {
            let options = LabOptions {
                features: features.clone(),
                ..LabOptions::default()
            };
            let report = match run_lab(&spec, &options) {
                Ok((report, _)) => report,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            };
            println!("round {round}: {}", line(&report));
            if !report.holds() {
                for f in report.failures().take(10) {
                    println!("  FAILED {} [{:?}]", f.line(), f.os_error);
                }
            }
            let t = report.timings;
            rows.push([
                t.total,
                t.cleanup,
                t.plan,
                t.namespaces,
                t.rules,
                t.listeners,
                t.dns,
                t.probes,
                t.teardown,
            ]);
        }
        let median = |i: usize| {
            let mut v: Vec<Duration> = rows.iter().map(|r| r[i]).collect();
            v.sort();
            v[v.len() / 2].as_secs_f64()
        };
        println!(
            "median of {rounds}: total {:.3} s (cleanup {:.3}, plan {:.3}, namespaces {:.3}, rules {:.3}, listeners {:.3}, dns {:.3}, probes {:.3}, teardown {:.3})",
            median(0),
            median(1),
            median(2),
            median(3),
            median(4),
            median(5),
            median(6),
            median(7),
            median(8)
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("error: {}: {e}", path.display());
        std::process::exit(2);
    })
}

fn load(name: &str, text: &str) -> Spec {
    match load_spec(SourceFile::new(name, text)) {
        Ok(loaded) => loaded.value,
        Err(d) => {
            eprintln!(
                "error: {name} is not a valid spec:\n{}",
                portolan_spec::render_diagnostics(&d, portolan_spec::RenderStyle::Plain)
            );
            std::process::exit(2);
        }
    }
}

fn line(report: &LabReport) -> String {
    let t = &report.timings;
    let s = &report.summary;
    format!(
        "{} hosts, {} checks ({} flows passed, {} blocked, {} failing): total {:.3} s = cleanup {:.3} + plan {:.3} + namespaces {:.3} + rules {:.3} + listeners {:.3} + dns {:.3} + probes {:.3} + teardown {:.3}",
        report.hosts.len(),
        s.checks,
        s.passed,
        s.blocked,
        s.checks - s.holding,
        t.total.as_secs_f64(),
        t.cleanup.as_secs_f64(),
        t.plan.as_secs_f64(),
        t.namespaces.as_secs_f64(),
        t.rules.as_secs_f64(),
        t.listeners.as_secs_f64(),
        t.dns.as_secs_f64(),
        t.probes.as_secs_f64(),
        t.teardown.as_secs_f64()
    )
}

/// A spec of `components` components (a tenth of them dependencies), one
/// outside world, ten external host names, ten features, and `flows` flows:
/// mostly TCP between components on a pool of 150 ports, some UDP, some
/// from the outside world and to external hosts, a tenth conditional on a
/// feature, one multicast group. Deterministic.
fn generated_spec(components: usize, flows: usize) -> String {
    let mut seed = 0x5eed_u64;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n.max(1)
    };
    let mut out = String::from("portolan: 1\nsystem: {name: Generated}\ncomponents:\n");
    for c in 0..components {
        let kind = if c % 10 == 9 { "dependency" } else { "system" };
        let _ = writeln!(out, "  - {{id: c{c:03}, kind: {kind}}}");
    }
    out.push_str("  - {id: clients, kind: external}\nexternals:\n");
    for e in 0..10 {
        let _ = writeln!(out, "  - {{id: e{e}, host: api{e}.example.com}}");
    }
    out.push_str("features:\n");
    for f in 0..10 {
        let _ = writeln!(out, "  - {{id: f{f}}}");
    }
    out.push_str("flows:\n");
    let _ = writeln!(
        out,
        "  - {{from: c000, to: c000, protocol: udp, port: 8082, multicast: 225.0.1.9}}"
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut written = 1;
    while written < flows {
        let kind = next(100);
        let when = if next(10) == 0 {
            format!(", required: false, when: f{}", next(10))
        } else {
            String::new()
        };
        let from = next(components);
        let (to, protocol, port) = if kind < 5 {
            ("clients-src".to_owned(), "tcp", 443)
        } else if kind < 9 {
            (format!("e{}", next(10)), "tcp", 443)
        } else if kind < 17 {
            (
                format!("c{:03}", next(components)),
                "udp",
                9000 + next(50) as u16,
            )
        } else {
            (
                format!("c{:03}", next(components)),
                "tcp",
                10000 + next(150) as u16,
            )
        };
        let line = if to == "clients-src" {
            format!(
                "  - {{from: clients, to: c{from:03}, protocol: {protocol}, port: {port}{when}}}"
            )
        } else {
            format!("  - {{from: c{from:03}, to: {to}, protocol: {protocol}, port: {port}{when}}}")
        };
        let key = line.split(", required").next().unwrap_or(&line).to_owned();
        if seen.insert(key) {
            out.push_str(&line);
            out.push('\n');
            written += 1;
        }
    }
    out
}
