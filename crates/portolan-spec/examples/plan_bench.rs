//! Benchmark of `portolan plan`'s library work on generated systems:
//! reading and checking the spec, reading and checking the deployment
//! against it, and planning.
//!
//! Usage (release build):
//! `cargo run -p portolan-spec --release --example plan_bench -- [SIZES] [ROUNDS]`
//! where SIZES is a comma-separated list of component counts (default
//! `500,1000,2000,5000,10000`; each system has twice as many flows) and
//! ROUNDS defaults to 3. Prints one line per size with the median wall time
//! of each step, their total, and the CPU time of the whole. With `PORTOLAN_BENCH_OUT=DIR` the spec and deployment of each
//! size are written to `DIR/spec-N.yaml` and `DIR/deployment-N.yaml`, to
//! time the whole command (`portolan plan DIR/spec-N.yaml -d DIR/deployment-N.yaml`).
//!
//! The generated system is meant to exercise every check of the deployment:
//! components grouped three to a host (equal address sets), one host in
//! eight given a `host:` name, a dependency placed as a block, external
//! endpoints with CIDRs, features, parameters, and flows of every kind.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use portolan_spec::deployment::load_deployment;
use portolan_spec::{load_spec, SourceFile};

fn main() {
    let mut args = std::env::args().skip(1);
    let sizes: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "500,1000,2000,5000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let out_dir = std::env::var_os("PORTOLAN_BENCH_OUT").map(PathBuf::from);
    println!(
        "| components | flows | spec | deployment | plan | total | CPU |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for n in sizes {
        let (spec_text, deployment_text) = generate(n, 2 * n);
        if let Some(dir) = &out_dir {
            for (name, text) in [("spec", &spec_text), ("deployment", &deployment_text)] {
                let path = dir.join(format!("{name}-{n}.yaml"));
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("error: {}: {e}", path.display());
                    std::process::exit(2);
                }
            }
        }
        let mut times: Vec<[Duration; 4]> = Vec::new();
        let mut planned = 0;
        for _ in 0..rounds {
            let cpu0 = cpu_time();
            let t0 = Instant::now();
            let spec = match load_spec(SourceFile::new("spec.yaml", spec_text.clone())) {
                Ok(loaded) => loaded.value,
                Err(d) => fail(&portolan_spec::render_diagnostics(
                    &d,
                    portolan_spec::RenderStyle::Plain,
                )),
            };
            let t1 = Instant::now();
            let source = SourceFile::new("deployment.yaml", deployment_text.clone());
            let deployment = match load_deployment(source, &spec) {
                Ok(loaded) => loaded.value,
                Err(d) => fail(&portolan_spec::render_diagnostics(
                    &d,
                    portolan_spec::RenderStyle::Plain,
                )),
            };
            let t2 = Instant::now();
            let plan = portolan_spec::plan::plan(&spec, &deployment);
            let t3 = Instant::now();
            planned = plan.flows.len();
            times.push([t1 - t0, t2 - t1, t3 - t2, cpu_time().saturating_sub(cpu0)]);
        }
        let median = |i: usize| {
            let mut v: Vec<Duration> = times.iter().map(|t| t[i]).collect();
            v.sort();
            v[v.len() / 2]
        };
        let (s, d, p, cpu) = (median(0), median(1), median(2), median(3));
        println!(
            "| {n} | {} | {:.3} s | {:.3} s | {:.3} s | **{:.3} s** | {:.3} s |",
            2 * n,
            s.as_secs_f64(),
            d.as_secs_f64(),
            p.as_secs_f64(),
            (s + d + p).as_secs_f64(),
            cpu.as_secs_f64()
        );
        eprintln!("{n} components: {planned} flows planned");
    }
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`): on a
/// machine shared with other work, wall time counts their turns too.
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn fail(message: &str) -> ! {
    eprintln!("error: the generated input does not load: {message}");
    std::process::exit(2);
}

/// A spec of `components` components and `flows` flows, and a deployment
/// placing every component.
fn generate(components: usize, flows: usize) -> (String, String) {
    let mut spec = String::from(
        "portolan: 1\nsystem: {name: Generated}\nfeatures:\n  - {id: alpha}\n  - {id: beta}\n\
         parameters:\n  - {id: db-port, default: 5432}\ncomponents:\n",
    );
    for i in 0..components {
        let kind = match i % 50 {
            0 => "dependency",
            _ => "system",
        };
        let _ = writeln!(spec, "  - {{id: c{i}, kind: {kind}}}");
    }
    spec.push_str("  - {id: outside, kind: external}\nexternals:\n");
    for i in 0..10 {
        let _ = writeln!(spec, "  - {{id: net{i}, cidr: 203.0.{i}.0/24}}");
    }
    spec.push_str("  - {id: vendor, host: api.vendor.example}\nflows:\n");
    for f in 0..flows {
        let from = f % components;
        let to = (f * 7 + 1) % components;
        let to = if to == from {
            (to + 1) % components
        } else {
            to
        };
        // Every flow has its own port (or pair of ends), so none is a duplicate.
        let port = 1 + f % 65535;
        let line = match f % 10 {
            0 => format!("{{from: c{from}, to: net{}, protocol: tcp, port: {port}}}", (f / 10) % 10),
            1 => format!("{{from: c{from}, to: c{to}, protocol: udp, port: {port}, when: alpha}}"),
            2 => format!("{{from: c{from}, to: c{to}, protocol: tcp, port: [$db-port, {port}]}}"),
            3 => format!("{{from: outside, to: c{to}, protocol: tcp, port: [80, {port}]}}"),
            4 => format!("{{from: c{from}, to: vendor, protocol: tcp, port: {port}, required: false, when: {{not: beta}}}}"),
            5 if f < components => format!("{{from: c{from}, to: c{to}, protocol: icmp}}"),
            _ => format!("{{from: c{from}, to: c{to}, protocol: tcp, port: \"{}-{}\"}}", port.min(65000), port.min(65000) + 100),
        };
        let _ = writeln!(spec, "  - {line}");
    }
    let mut deployment =
        String::from("deployment: 1\nname: bench\nfeatures: [alpha]\ncomponents:\n");
    for i in 0..components {
        // Three components to a host; 10.0.0.0/8 holds the hosts, and one
        // component in fifty (a dependency) is a /30 block of its own in 172.16/12.
        let host = i / 3;
        if i % 50 == 0 {
            let block = i / 50;
            let _ = writeln!(
                deployment,
                "  c{i}: {{addresses: [172.{}.{}.{}/30]}}",
                16 + (block >> 14) % 16,
                (block >> 6) & 255,
                (block & 63) * 4
            );
            continue;
        }
        let name = if host % 8 == 0 {
            format!(", host: host-{host}")
        } else {
            String::new()
        };
        let _ = writeln!(
            deployment,
            "  c{i}: {{addresses: [10.{}.{}.{}, \"fd00::{:x}\"]{name}}}",
            (host >> 16) & 255,
            (host >> 8) & 255,
            host & 255,
            host + 1
        );
    }
    (spec, deployment)
}
