//! Times the probe engine on loopback: N TCP probes against 127.0.0.1 ports
//! `start..start+N`, of which every `N/open`-th has a Portolan listener.
//!
//! ```text
//! cargo run --release -p portolan-probe --example loopback_bench -- \
//!     [--probes 10000] [--start 20000] [--open 100] [--concurrency 512] \
//!     [--timeout-ms 1000] [--udp] [--hold SECONDS]
//! ```
//!
//! The listener runs on its own thread and runtime; the probes run on a
//! current-thread runtime, as in the lab. `--hold` keeps the listener up after
//! the run so that another scanner (`nmap -sT -p20000-29999 127.0.0.1`,
//! RustScan) can be timed against the same ports. The last line is JSON.

// An example binary: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portolan_probe::{
    run_probes, Endpoint, ListenProtocol, Listener, ListenerConfig, ProbeOptions, ProbeSpec,
    Protocol, UdpMode,
};

const TOKEN: &str = "bench";

struct Args {
    probes: u32,
    start: u16,
    open: u32,
    concurrency: usize,
    timeout_ms: u64,
    udp: bool,
    hold: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        probes: 10_000,
        start: 20_000,
        open: 100,
        concurrency: 512,
        timeout_ms: 1000,
        udp: false,
        hold: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--udp" {
            args.udp = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--probes" => args.probes = value.parse().map_err(bad)?,
            "--start" => args.start = value.parse().map_err(bad)?,
            "--open" => args.open = value.parse().map_err(bad)?,
            "--concurrency" => args.concurrency = value.parse().map_err(bad)?,
            "--timeout-ms" => args.timeout_ms = value.parse().map_err(bad)?,
            "--hold" => args.hold = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if u32::from(args.start) + args.probes > 65_536 || args.start == 0 {
        return Err("the port range must fit in 1..=65535".into());
    }
    Ok(args)
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loopback_bench: {e}");
            std::process::exit(2);
        }
    };
    let ports: Vec<u16> = (0..args.probes)
        .filter_map(|i| u16::try_from(u32::from(args.start) + i).ok())
        .collect();
    let step = (args.probes / args.open.max(1)).max(1) as usize;
    let protocol = if args.udp {
        ListenProtocol::Udp
    } else {
        ListenProtocol::Tcp
    };
    let config = ListenerConfig {
        addrs: vec!["127.0.0.1".parse().expect_or_exit()],
        endpoints: ports
            .iter()
            .step_by(step)
            .take(args.open as usize)
            .map(|&port| Endpoint { protocol, port })
            .collect(),
        token: TOKEN.into(),
    };

    // The listener, on its own thread, until told to stop.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener_thread = std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = Listener::bind(&config).await.expect_or_exit();
            let _ = ready_tx.send((listener.bound().len(), listener.failures().to_vec()));
            listener
                .serve(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    });
    let (bound, failures) = ready_rx.recv().expect_or_exit();
    for failure in &failures {
        eprintln!(
            "listener: cannot bind {}: {}",
            failure.addr, failure.os_error
        );
    }

    let probe_protocol = if args.udp {
        Protocol::Udp {
            mode: UdpMode::PortolanListener {
                token: TOKEN.into(),
            },
        }
    } else {
        Protocol::Tcp
    };
    let probes: Vec<ProbeSpec> = ports
        .iter()
        .map(|&port| {
            let target = SocketAddr::from(([127, 0, 0, 1], port));
            ProbeSpec::new(format!("p{port}"), target, probe_protocol.clone())
        })
        .collect();
    let options = ProbeOptions {
        concurrency: args.concurrency,
        timeout: Duration::from_millis(args.timeout_ms),
        retries: 0,
        ..ProbeOptions::default()
    };
    let start = Instant::now();
    let results = runtime().block_on(run_probes(probes, &options));
    let elapsed = start.elapsed();

    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    for result in &results {
        *classes.entry(result.outcome.class.name()).or_default() += 1;
    }
    if args.hold > 0 {
        eprintln!(
            "holding the listener on {bound} port(s) for {} s",
            args.hold
        );
        std::thread::sleep(Duration::from_secs(args.hold));
    }
    let _ = stop_tx.send(());
    let stats = listener_thread.join().expect_or_exit();

    let seconds = elapsed.as_secs_f64();
    println!(
        "{} {} probes, concurrency {}: {:.3} s, {:.0} probes/s, {:?}",
        if args.udp { "udp" } else { "tcp" },
        results.len(),
        args.concurrency,
        seconds,
        results.len() as f64 / seconds,
        classes
    );
    let summary = serde_json::json!({
        "protocol": if args.udp { "udp" } else { "tcp" },
        "probes": results.len(),
        "concurrency": args.concurrency,
        "timeout_ms": args.timeout_ms,
        "listening": bound,
        "seconds": seconds,
        "probes_per_second": results.len() as f64 / seconds,
        "classes": classes,
        "listener": stats,
    });
    println!("{summary}");
}

/// `expect` for a command-line tool: a message and exit code 1, no panic.
trait ExpectOrExit<T> {
    fn expect_or_exit(self) -> T;
}

impl<T, E: std::fmt::Debug> ExpectOrExit<T> for Result<T, E> {
    fn expect_or_exit(self) -> T {
        self.unwrap_or_else(|e| {
            eprintln!("loopback_bench: {e:?}");
            std::process::exit(1)
        })
    }
}
