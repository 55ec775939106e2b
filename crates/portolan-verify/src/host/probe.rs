//! Probes through the twin: listeners on the receiving side (portolan-probe's
//! [`Listener`]), and TCP connects and UDP token datagrams from the sending
//! side, all at once, each from a bound local address so that its traced
//! verdicts can be found by packet ([`PacketKey`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use portolan_lab::trace::PacketKey;
use portolan_lab::Lab;
use portolan_probe::{Endpoint, ListenProtocol, Listener, ListenerConfig};

use crate::error::VerifyError;

/// How long a probe waits for its answer. Inside one machine an answer
/// takes microseconds; the rest is slack for a loaded machine.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Probes in flight at once.
const CONCURRENCY: usize = 1024;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Transport {
    Tcp,
    Udp,
}

/// One packet to send: from `source` (port 0: any) to `destination`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub transport: Transport,
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

/// What came of it.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Answered.
    pub open: bool,
    /// The packet, as the tracer names it (`None`: not even sent).
    pub key: Option<PacketKey>,
    /// Why it was not sent, or how it failed (`connection refused`).
    pub error: Option<String>,
}

fn env(what: &str, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Environment(format!("kernel twin: {what}: {e}"))
}

/// A listener answering in a namespace until dropped.
pub(crate) struct Listening {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<portolan_lab::NsThread<()>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a listener in `host` on every address × endpoint the probes aim at.
pub(crate) fn listen(
    lab: &Lab,
    host: &str,
    probes: &[&Probe],
    token: &str,
) -> Result<Listening, VerifyError> {
    let addrs: BTreeSet<IpAddr> = probes.iter().map(|p| p.destination.ip()).collect();
    let endpoints: BTreeSet<(Transport, u16)> = probes
        .iter()
        .map(|p| (p.transport, p.destination.port()))
        .collect();
    let config = ListenerConfig {
        addrs: addrs.into_iter().collect(),
        endpoints: endpoints
            .into_iter()
            .map(|(t, port)| Endpoint {
                protocol: match t {
                    Transport::Tcp => ListenProtocol::Tcp,
                    Transport::Udp => ListenProtocol::Udp,
                },
                port,
            })
            .collect(),
        token: token.to_owned(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Vec<String>, String>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = lab
        .run_in(host, move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                match Listener::bind(&config).await {
                    Ok(listener) => {
                        let failures = listener
                            .failures()
                            .iter()
                            .map(|f| format!("{f:?}"))
                            .collect();
                        let _ = ready_tx.send(Ok(failures));
                        listener
                            .serve(async {
                                let _ = stop_rx.await;
                            })
                            .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            });
        })
        .map_err(|e| env("start a listener", e))?;
    let listening = Listening {
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    match ready_rx.recv() {
        Ok(Ok(failures)) if failures.is_empty() => Ok(listening),
        Ok(Ok(failures)) => Err(env("bind the listeners", failures.join("; "))),
        Ok(Err(e)) => Err(env("bind the listeners", e)),
        Err(e) => Err(env("bind the listeners", e)),
    }
}

/// Sends every probe from `host`, all at once, and returns their outcomes
/// in order.
pub(crate) fn send(
    lab: &Lab,
    host: &str,
    probes: Vec<Probe>,
    token: &str,
) -> Result<Vec<Outcome>, VerifyError> {
    // The datagram portolan-probe's listener echoes: `PORTOLAN1 <token>`.
    let token = format!("PORTOLAN1 {token}").into_bytes();
    lab.run_in(host, move || -> Result<Vec<Outcome>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(runtime.block_on(async {
            stream::iter(probes.into_iter().map(|p| one(p, &token)))
                .buffered(CONCURRENCY)
                .collect::<Vec<Outcome>>()
                .await
        }))
    })
    .map_err(|e| env("start the probes", e))?
    .join()
    .map_err(|e| env("run the probes", e))?
    .map_err(|e| env("run the probes", e))
}

async fn one(probe: Probe, token: &[u8]) -> Outcome {
    match probe.transport {
        Transport::Tcp => tcp(probe).await,
        Transport::Udp => udp(probe, token).await,
    }
}

fn failed(error: impl std::fmt::Display) -> Outcome {
    Outcome {
        open: false,
        key: None,
        error: Some(error.to_string()),
    }
}

async fn tcp(probe: Probe) -> Outcome {
    let socket = match probe.source {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    };
    let socket = match socket {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let _ = socket.set_reuseaddr(true);
    if let Err(e) = socket.bind(probe.source) {
        return failed(format!("bind {}: {e}", probe.source));
    }
    let local = match socket.local_addr() {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let key = Some(PacketKey::tcp(local, probe.destination));
    match tokio::time::timeout(PROBE_TIMEOUT, socket.connect(probe.destination)).await {
        Ok(Ok(_stream)) => Outcome {
            open: true,
            key,
            error: None,
        },
        Ok(Err(e)) => Outcome {
            open: false,
            key,
            error: Some(e.to_string()),
        },
        Err(_) => Outcome {
            open: false,
            key,
            error: Some("no answer".into()),
        },
    }
}

async fn udp(probe: Probe, token: &[u8]) -> Outcome {
    let socket = match tokio::net::UdpSocket::bind(probe.source).await {
        Ok(s) => s,
        Err(e) => return failed(format!("bind {}: {e}", probe.source)),
    };
    let local = match socket.local_addr() {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let key = Some(PacketKey::udp(local, probe.destination));
    if let Err(e) = socket.send_to(token, probe.destination).await {
        return Outcome {
            open: false,
            key,
            error: Some(e.to_string()),
        };
    }
    let mut buffer = [0u8; 512];
    match tokio::time::timeout(PROBE_TIMEOUT, socket.recv_from(&mut buffer)).await {
        Ok(Ok((n, from)))
            if from == probe.destination
                && buffer[..n].windows(token.len()).any(|w| w == token) =>
        {
            Outcome {
                open: true,
                key,
                error: None,
            }
        }
        Ok(Ok(_)) => Outcome {
            open: false,
            key,
            error: Some("an answer that is not the echo".into()),
        },
        Ok(Err(e)) => Outcome {
            open: false,
            key,
            error: Some(e.to_string()),
        },
        Err(_) => Outcome {
            open: false,
            key,
            error: Some("no answer".into()),
        },
    }
}
