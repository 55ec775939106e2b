//! `portolan listen`: bind every port a component must accept and serve.

use std::time::Duration;

use portolan_preflight::{default_token, derive_listeners, local_addresses, ListenSet};
use portolan_probe::{BindFailureReason, ListenProtocol, Listener, ListenerConfig};

use super::check::{runtime, Loaded};
use crate::cli::ListenArgs;
use crate::output::write_stdout;
use crate::status::{CmdError, CmdResult, ExitStatus};

#[allow(clippy::print_stderr)]
fn say_err(line: &str) {
    eprintln!("{line}");
}

fn protocol_name(protocol: ListenProtocol) -> &'static str {
    match protocol {
        ListenProtocol::Tcp => "tcp",
        ListenProtocol::Udp => "udp",
        ListenProtocol::Multicast { .. } => "multicast",
    }
}

fn flows_of(set: &ListenSet, endpoint: &portolan_probe::Endpoint) -> String {
    set.endpoints
        .iter()
        .find(|e| e.endpoint.protocol == endpoint.protocol && e.endpoint.port == endpoint.port)
        .map(|e| e.flows.join(", "))
        .unwrap_or_default()
}

pub fn run(args: &ListenArgs) -> CmdResult {
    let loaded = Loaded::read(&args.spec, &args.deployment)?;
    let mut set = derive_listeners(&loaded.plan, &args.component, args.max_ports)?;
    super::check::name_the_limits(&mut set.skipped);
    let addrs = local_addresses(&loaded.plan, &args.component, args.address)?;
    for skipped in &set.skipped {
        say_err(&format!(
            "not listened: {}: {}",
            skipped.flow, skipped.reason
        ));
    }
    if set.endpoints.is_empty() {
        return Err(CmdError::input(format!(
            "`{}` receives no TCP or UDP flow with ports in this deployment: nothing to listen on",
            set.component
        )));
    }
    let config = ListenerConfig {
        addrs: addrs.clone(),
        endpoints: set.endpoints.iter().map(|e| e.endpoint).collect(),
        token: args
            .token
            .clone()
            .unwrap_or_else(|| default_token(&loaded.spec_sha256)),
    };
    let duration = args.duration;
    let runtime = runtime()?;
    runtime.block_on(async move {
        let listener = Listener::bind(&config).await?;
        for bound in listener.bound() {
            write_stdout(&format!(
                "listening {} {} ({})\n",
                protocol_name(bound.endpoint.protocol),
                bound.local,
                flows_of(&set, &bound.endpoint)
            ))?;
        }
        for failure in listener.failures() {
            let why = match failure.reason {
                BindFailureReason::InUse => "in use",
                BindFailureReason::PermissionDenied => "not permitted (a privileged port?)",
                BindFailureReason::AddressNotAvailable => "address not on this host",
                BindFailureReason::Other => "failed",
            };
            say_err(&format!(
                "cannot bind {} {}: {why}: {} ({})",
                protocol_name(failure.endpoint.protocol),
                failure.addr,
                failure.os_error,
                flows_of(&set, &failure.endpoint)
            ));
        }
        let failed = !listener.failures().is_empty();
        if listener.bound().is_empty() {
            return Err(CmdError::input(format!(
                "no port of `{}` could be bound on {}",
                set.component,
                addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let until = match duration {
            Some(d) => format!("for {:.1} s or until Ctrl-C", d.as_secs_f64()),
            None => "until Ctrl-C".to_owned(),
        };
        write_stdout(&format!(
            "ready: {} endpoint(s) of `{}` bound, {} failed; serving {until}\n",
            listener.bound().len(),
            set.component,
            listener.failures().len()
        ))?;
        let stats = listener.serve(shutdown(duration)).await;
        write_stdout(&format!(
            "stopped: {} TCP connection(s) accepted, {} datagram(s) echoed, {} ignored (no token)\n",
            stats.tcp_accepted, stats.udp_answered, stats.udp_ignored
        ))?;
        Ok(ExitStatus::from_check(!failed))
    })
}

/// Resolves on Ctrl-C, SIGTERM or when `duration` has passed.
async fn shutdown(duration: Option<Duration>) {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = timer => {}
    }
}
