//! Measures how long creating and destroying a lab takes.
//!
//! Usage (as root): `cargo run -p portolan-lab --release --example lab_timings -- [HOSTS] [ROUNDS]`
//! (defaults: 15 hosts, 3 rounds). Prints one line per round with the phase
//! timings, then the medians.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use portolan_lab::{Lab, Topology};

fn main() {
    let mut args = std::env::args().skip(1);
    let hosts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    if let Err(e) = portolan_lab::check_privileges() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let mut topology = Topology::new();
        for i in 0..hosts {
            if let Err(e) = topology.add_host(&format!("h{i}")) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        let lab = match Lab::create(topology) {
            Ok(lab) => lab,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let t = lab.timings();
        // First moment a TCP connection from the first to the last host works.
        let ready = first_connect(&lab, hosts);
        let started = Instant::now();
        let run = lab.run_id().to_string();
        if let Err(e) = lab.destroy() {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        let destroy = started.elapsed();
        println!(
            "round {round}: {hosts} hosts ({run}): create {:>8.1?} (namespaces {:>8.1?}, links {:>8.1?}), \
             first connect {:>8.1?}, destroy {:>8.1?}",
            t.total, t.namespaces, t.links, ready, destroy
        );
        rows.push([t.total, t.namespaces, t.links, ready, destroy]);
    }
    let median = |i: usize| {
        let mut v: Vec<Duration> = rows.iter().map(|r| r[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "median of {rounds}: create {:.1?} (namespaces {:.1?}, links {:.1?}), first connect {:.1?}, destroy {:.1?}",
        median(0),
        median(1),
        median(2),
        median(3),
        median(4)
    );
}

/// Time from now until a TCP connect from host 0 to host N-1 succeeds (bounded).
fn first_connect(lab: &Lab, hosts: usize) -> Duration {
    if hosts < 2 {
        return Duration::ZERO;
    }
    let last = format!("h{}", hosts - 1);
    let target = match lab.host(&last) {
        Ok(h) => h.ipv4(),
        Err(_) => return Duration::ZERO,
    };
    let listener = match lab.run_in(&last, || std::net::TcpListener::bind("0.0.0.0:7777")) {
        Ok(t) => t.join(),
        Err(e) => Err(e),
    };
    let Ok(Ok(_listener)) = listener else {
        return Duration::ZERO;
    };
    let started = Instant::now();
    let probe = lab.run_in("h0", move || {
        for _ in 0..200 {
            if std::net::TcpStream::connect_timeout(
                &(target, 7777).into(),
                Duration::from_millis(100),
            )
            .is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    });
    match probe.map(|p| p.join()) {
        Ok(Ok(true)) => started.elapsed(),
        _ => Duration::MAX,
    }
}
