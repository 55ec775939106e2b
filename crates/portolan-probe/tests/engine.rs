//! The probe and listener engines against real sockets on loopback, and in a
//! network namespace with nftables rules for the filtered and unreachable cases.

#![allow(clippy::print_stderr)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portolan_probe::{
    run_probes, BoundEndpoint, Endpoint, ListenProtocol, Listener, ListenerConfig, ListenerStats,
    OutcomeClass, ProbeOptions, ProbeResult, ProbeSpec, Protocol, Proxy, RootCertStore,
    StatsHandle, Target, UdpMode,
};
use portolan_test_support::Netns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const TOKEN: &str = "run-7f3a";

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TCP port nothing listens on: bound, then released.
fn closed_tcp_port() -> u16 {
    let socket = StdTcpListener::bind(local(0)).expect("bind an ephemeral TCP port");
    socket.local_addr().expect("local address").port()
}

/// A UDP port nothing listens on: bound, then released.
fn closed_udp_port() -> u16 {
    let socket = StdUdpSocket::bind(local(0)).expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local address").port()
}

fn options(timeout_ms: u64, retries: u32) -> ProbeOptions {
    ProbeOptions {
        timeout: Duration::from_millis(timeout_ms),
        retries,
        ..ProbeOptions::default()
    }
}

fn listener_probe(token: &str) -> Protocol {
    Protocol::Udp {
        mode: UdpMode::PortolanListener {
            token: token.into(),
        },
    }
}

fn real_service(payload: &[u8]) -> Protocol {
    Protocol::Udp {
        mode: UdpMode::RealService {
            payload: payload.to_vec(),
        },
    }
}

fn tls(sni: &str) -> Protocol {
    Protocol::Tls {
        sni: Some(sni.into()),
    }
}

fn config(endpoints: &[Endpoint]) -> ListenerConfig {
    ListenerConfig {
        addrs: vec!["127.0.0.1".parse().expect("ip")],
        endpoints: endpoints.to_vec(),
        token: TOKEN.into(),
    }
}

fn endpoint(protocol: ListenProtocol) -> Endpoint {
    Endpoint { protocol, port: 0 }
}

/// Binds a listener, runs `work` while it serves on the same task, then stops it.
async fn serving<T, F, Fut>(config: &ListenerConfig, work: F) -> (T, ListenerStats)
where
    F: FnOnce(Vec<BoundEndpoint>, StatsHandle) -> Fut,
    Fut: Future<Output = T>,
{
    let listener = Listener::bind(config).await.expect("a valid config");
    assert_eq!(listener.failures(), &[], "every endpoint binds");
    let bound = listener.bound().to_vec();
    let stats = listener.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = listener.serve(async {
        let _ = stopped.await;
    });
    let work = async {
        let result = work(bound, stats).await;
        let _ = stop.send(());
        result
    };
    let (stats, result) = tokio::join!(serve, work);
    (result, stats)
}

fn class(result: &ProbeResult) -> &OutcomeClass {
    &result.outcome.class
}

/// The results are, in order, the probes `expected` names with those
/// outcome classes.
fn assert_classes(results: &[ProbeResult], expected: &[(&str, OutcomeClass)]) {
    let classes: Vec<_> = results
        .iter()
        .map(|r| (r.spec.id.as_str(), class(r)))
        .collect();
    let expected: Vec<_> = expected.iter().map(|(id, c)| (*id, c)).collect();
    assert_eq!(classes, expected, "{results:#?}");
}

#[tokio::test]
async fn tcp_open_and_refused() {
    let closed = closed_tcp_port();
    let config = config(&[endpoint(ListenProtocol::Tcp)]);
    let (results, stats) = serving(&config, |bound, stats| async move {
        let open = bound[0].local;
        let probes = vec![
            ProbeSpec::new("open", open, Protocol::Tcp),
            ProbeSpec::new("closed", local(closed), Protocol::Tcp),
            ProbeSpec::new(
                "by-name",
                Target::host("127.0.0.1", open.port()),
                Protocol::Tcp,
            ),
            // Resolved from /etc/hosts: no DNS traffic.
            ProbeSpec::new(
                "localhost",
                Target::host("localhost", open.port()),
                Protocol::Tcp,
            ),
            // Rejected by the resolver before any query.
            ProbeSpec::new("bad-name", Target::host("bad\0name", 80), Protocol::Tcp),
        ];
        let results = run_probes(probes, &options(2000, 0)).await;
        // Let the listener's task accept what is in its backlog.
        for _ in 0..300 {
            if stats.get().tcp_accepted >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        results
    })
    .await;
    assert_eq!(class(&results[0]), &OutcomeClass::Open, "{results:#?}");
    assert!(results[0].is_pass());
    assert_eq!(results[0].details.peer, Some(results[0].spec.target_addr()));
    assert_eq!(class(&results[1]), &OutcomeClass::Refused, "{results:#?}");
    assert!(!results[1].is_pass());
    assert!(results[1].outcome.os_error.is_some());
    assert_eq!(class(&results[2]), &OutcomeClass::Open, "{results:#?}");
    assert_eq!(
        results[2].details.dns_time, None,
        "an address literal is not resolved"
    );
    assert_eq!(class(&results[3]), &OutcomeClass::Open, "{results:#?}");
    let details = &results[3].details;
    assert!(details.dns_time.is_some());
    assert!(
        details.resolved.contains(&"127.0.0.1".parse().expect("ip")),
        "{details:?}"
    );
    assert_eq!(class(&results[4]), &OutcomeClass::DnsFailed, "{results:#?}");
    assert_eq!(results[4].outcome.attempts, 0, "nothing was sent");
    let attempts: Vec<u32> = results.iter().map(|r| r.outcome.attempts).collect();
    assert_eq!(attempts, [1, 1, 1, 1, 0]);
    assert_eq!(stats.tcp_accepted, 3, "{stats:?}");
}

trait TargetAddr {
    fn target_addr(&self) -> SocketAddr;
}

impl TargetAddr for ProbeSpec {
    fn target_addr(&self) -> SocketAddr {
        match &self.target {
            Target::Addr(addr) => *addr,
            Target::Host { .. } => panic!("not an address"),
        }
    }
}

#[tokio::test]
async fn udp_echo_refused_and_silence() {
    let closed = closed_udp_port();
    let silent = StdUdpSocket::bind(local(0)).expect("bind a silent UDP socket");
    let silent = silent.local_addr().expect("local address");
    let config = config(&[endpoint(ListenProtocol::Udp)]);
    let (results, stats) = serving(&config, |bound, _| async move {
        let echo = bound[0].local;
        let probes = vec![
            ProbeSpec::new("echo", echo, listener_probe(TOKEN)),
            ProbeSpec::new("wrong-token", echo, listener_probe("not-the-token")),
            ProbeSpec::new("closed", local(closed), listener_probe(TOKEN)),
            ProbeSpec::new("closed-real", local(closed), real_service(b"hello")),
            ProbeSpec::new("silent-real", silent, real_service(b"hello")),
            ProbeSpec::new("silent-listener", silent, listener_probe(TOKEN)),
            ProbeSpec::new("listener-as-real", echo, real_service(b"")),
        ];
        run_probes(probes, &options(1000, 1)).await
    })
    .await;
    assert_classes(
        &results,
        &[
            ("echo", OutcomeClass::Open),
            ("wrong-token", OutcomeClass::Filtered),
            ("closed", OutcomeClass::Refused),
            ("closed-real", OutcomeClass::Refused),
            ("silent-real", OutcomeClass::OpenOrFiltered),
            ("silent-listener", OutcomeClass::Filtered),
            ("listener-as-real", OutcomeClass::OpenOrFiltered),
        ],
    );
    // Silence is a timeout, and timeouts are retried; refusals are not.
    assert_eq!(results[4].outcome.attempts, 2);
    assert_eq!(results[2].outcome.attempts, 1);
    assert!(!results[4].is_pass(), "open-or-filtered is never a pass");
    assert_eq!(stats.udp_answered, 1, "{stats:?}");
    // The wrong token and the empty datagram, each sent twice.
    assert_eq!(stats.udp_ignored, 4, "{stats:?}");
}

#[tokio::test]
async fn listener_answers_only_the_token_and_never_with_more() {
    let config = config(&[endpoint(ListenProtocol::Udp)]);
    let (replies, stats) = serving(&config, |bound, _| async move {
        let client = UdpSocket::bind(local(0)).await.expect("bind the client");
        client.connect(bound[0].local).await.expect("connect");
        let long_id = "x".repeat(3000);
        let huge_id = "y".repeat(60_000);
        let datagrams: Vec<Vec<u8>> = vec![
            format!("PORTOLAN1 {TOKEN} flow-1").into_bytes(),
            format!("PORTOLAN1 {TOKEN}").into_bytes(),
            format!("PORTOLAN1 {TOKEN} {long_id}").into_bytes(),
            format!("PORTOLAN1 {TOKEN} {huge_id}").into_bytes(),
            b"PORTOLAN1 wrong flow-1".to_vec(),
            format!("PORTOLAN1 {TOKEN}x flow-1").into_bytes(),
            format!("PORTOLAN1 {}", &TOKEN[..4]).into_bytes(),
            format!("PORTOLAN2 {TOKEN} flow-1").into_bytes(),
            Vec::new(),
            vec![0; 1400],
        ];
        let mut replies = Vec::new();
        let mut buf = vec![0; 70_000];
        for (i, datagram) in datagrams.into_iter().enumerate() {
            client.send(&datagram).await.expect("send");
            // Long enough for an echo on a busy machine; silence needs less proof.
            let wait = Duration::from_millis(if i < 4 { 3000 } else { 300 });
            let reply = tokio::time::timeout(wait, client.recv(&mut buf)).await;
            let reply = reply.ok().map(|r| buf[..r.expect("recv")].to_vec());
            replies.push((datagram, reply));
        }
        replies
    })
    .await;
    for (i, (request, reply)) in replies.iter().enumerate() {
        if i < 4 {
            let reply = reply.as_ref().expect("the token datagram is echoed");
            assert!(reply.len() <= request.len(), "a reply is never larger");
            assert_eq!(reply, request, "the reply is the request");
        } else {
            assert_eq!(reply, &None, "datagram {i} must get no reply");
        }
    }
    assert_eq!(stats.udp_answered, 4, "{stats:?}");
    assert_eq!(stats.udp_ignored, 6, "{stats:?}");
}

/// Whether this kernel delivers multicast looped back on `lo`.
fn loopback_multicast_works(group: std::net::Ipv4Addr, port: u16) -> Result<(), String> {
    let receiver = StdUdpSocket::bind((group, port)).map_err(|e| format!("bind: {e}"))?;
    receiver
        .join_multicast_v4(&group, &"127.0.0.1".parse().expect("ip"))
        .map_err(|e| format!("join on lo: {e}"))?;
    receiver
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let sender = StdUdpSocket::bind(local(0)).map_err(|e| e.to_string())?;
    sender
        .set_multicast_loop_v4(true)
        .map_err(|e| e.to_string())?;
    sender
        .send_to(b"ping", (group, port))
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0; 16];
    receiver
        .recv_from(&mut buf)
        .map(|_| ())
        .map_err(|e| format!("nothing looped back: {e}"))
}

#[tokio::test]
async fn multicast_on_loopback() {
    let group: std::net::Ipv4Addr = "239.255.80.77".parse().expect("group");
    let port = closed_udp_port();
    if let Err(why) = loopback_multicast_works(group, port) {
        portolan_test_support::loud(&format!(
            "SKIPPED multicast_on_loopback: this kernel refuses multicast on lo ({why}); \
             the multicast engine is untested here"
        ));
        return;
    }
    let config = config(&[Endpoint {
        protocol: ListenProtocol::Multicast {
            group: group.into(),
        },
        port,
    }]);
    let target = SocketAddr::from((group, port));
    let (results, stats) = serving(&config, |bound, _| async move {
        assert_eq!(bound[0].local, target);
        let from_lo = |id: &str, token: &str| {
            ProbeSpec::new(
                id,
                target,
                Protocol::Multicast {
                    token: token.into(),
                },
            )
            .with_source_ip("127.0.0.1".parse().expect("ip"))
        };
        let probes = vec![from_lo("joined", TOKEN), from_lo("wrong-token", "nope")];
        run_probes(probes, &options(2000, 0)).await
    })
    .await;
    assert_eq!(class(&results[0]), &OutcomeClass::Open, "{results:#?}");
    let responders = &results[0].details.responders;
    assert_eq!(responders.len(), 1);
    assert_eq!(
        responders[0],
        local(port),
        "answered by unicast from the listener"
    );
    assert_eq!(class(&results[1]), &OutcomeClass::Filtered, "{results:#?}");
    assert_eq!(stats.udp_answered, 1, "{stats:?}");
}

#[tokio::test]
async fn fixed_source_ports() {
    // TCP: a server that records the peer of every connection.
    let server = TcpListener::bind(local(0)).await.expect("bind");
    let server_addr = server.local_addr().expect("addr");
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((_, peer)) = server.accept().await {
            seen.lock().expect("lock").push(peer);
        }
    });
    // UDP: an echo server that records the sender.
    let echo = UdpSocket::bind(local(0)).await.expect("bind");
    let echo_addr = echo.local_addr().expect("addr");
    let senders = Arc::new(Mutex::new(Vec::new()));
    let seen = senders.clone();
    tokio::spawn(async move {
        let mut buf = [0; 512];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            seen.lock().expect("lock").push(from);
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    let tcp_port = closed_tcp_port();
    let udp_port = closed_udp_port();
    // A UDP port held by someone else, without SO_REUSEADDR.
    let held = StdUdpSocket::bind(local(0)).expect("bind");
    let held_port = held.local_addr().expect("addr").port();
    let source = "127.0.0.1".parse().expect("ip");
    let probes = vec![
        ProbeSpec::new("tcp-1", server_addr, Protocol::Tcp).with_source_port(tcp_port),
        ProbeSpec::new("udp", echo_addr, real_service(b"hi")).with_source_port(udp_port),
        ProbeSpec::new("held", echo_addr, real_service(b"hi"))
            .with_source_port(held_port)
            .with_source_ip(source),
    ];
    let opts = ProbeOptions {
        concurrency: 1,
        ..options(2000, 0)
    };
    let mut results = run_probes(probes, &opts).await;
    // The same fixed port again at once: the first connection left no TIME_WAIT.
    let again = ProbeSpec::new("tcp-2", server_addr, Protocol::Tcp).with_source_port(tcp_port);
    results.extend(run_probes(vec![again], &opts).await);
    assert_eq!(class(&results[0]), &OutcomeClass::Open, "{results:#?}");
    assert_eq!(class(&results[1]), &OutcomeClass::Open, "{results:#?}");
    assert_eq!(
        class(&results[2]),
        &OutcomeClass::LocalError,
        "{results:#?}"
    );
    assert_eq!(class(&results[3]), &OutcomeClass::Open, "{results:#?}");
    assert_eq!(results[0].details.local.map(|a| a.port()), Some(tcp_port));
    // Let the accept loop catch up with the second connection.
    for _ in 0..100 {
        if peers.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ports: Vec<u16> = peers
        .lock()
        .expect("lock")
        .iter()
        .map(|p| p.port())
        .collect();
    assert_eq!(ports, [tcp_port, tcp_port]);
    let ports: Vec<u16> = senders
        .lock()
        .expect("lock")
        .iter()
        .map(|p| p.port())
        .collect();
    assert_eq!(ports, [udp_port]);
}

/// A test CA and a leaf certificate for `portolan.test`.
struct TestPki {
    ca: rustls::pki_types::CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

fn test_ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, rcgen::Issuer::new(params, key))
}

fn test_pki() -> TestPki {
    let (ca, issuer) = test_ca("Portolan Test CA");
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let mut params =
        rcgen::CertificateParams::new(vec!["portolan.test".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "portolan leaf");
    let leaf = params.signed_by(&key, &issuer).expect("leaf certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key.into())
        .expect("server config");
    TestPki {
        ca: ca.der().clone(),
        server: Arc::new(server),
    }
}

fn roots(cert: &rustls::pki_types::CertificateDer<'static>) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("a valid root");
    Arc::new(roots)
}

/// A TLS server on loopback that completes handshakes and hangs up.
async fn tls_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind(local(0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A TCP server that answers like a plain HTTP server, not TLS.
async fn plain_server() -> SocketAddr {
    let listener = TcpListener::bind(local(0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
        }
    });
    addr
}

#[tokio::test]
async fn tls_verified_and_unverified() {
    let pki = test_pki();
    let server = tls_server(pki.server.clone()).await;
    let plain = plain_server().await;
    let closed = local(closed_tcp_port());
    let (other_ca, _) = test_ca("Some Other CA");
    let probes = || {
        vec![
            ProbeSpec::new("good-name", server, tls("portolan.test")),
            ProbeSpec::new("wrong-name", server, tls("other.test")),
            ProbeSpec::new("not-tls", plain, tls("portolan.test")),
            ProbeSpec::new("closed", closed, tls("portolan.test")),
        ]
    };
    let trusted = ProbeOptions {
        tls_roots: Some(roots(&pki.ca)),
        ..options(3000, 0)
    };
    let results = run_probes(probes(), &trusted).await;
    assert_eq!(class(&results[0]), &OutcomeClass::Open, "{results:#?}");
    let details = results[0].details.tls.as_ref().expect("TLS details");
    assert!(details.verified, "{details:?}");
    assert_eq!(details.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(details.subject.as_deref(), Some("CN=portolan leaf"));
    assert_eq!(details.issuer.as_deref(), Some("CN=Portolan Test CA"));
    assert!(details.cipher_suite.is_some());
    assert_eq!(details.proxy, None);
    let OutcomeClass::TlsFailed { reason } = class(&results[1]) else {
        panic!("a name mismatch fails: {results:#?}");
    };
    assert!(reason.contains("not trusted"), "{reason}");
    let details = results[1].details.tls.as_ref().expect("TLS details");
    assert!(
        !details.verified && details.verify_error.is_some(),
        "{details:?}"
    );
    assert!(
        matches!(class(&results[2]), OutcomeClass::TlsFailed { .. }),
        "{results:#?}"
    );
    assert_eq!(class(&results[3]), &OutcomeClass::Refused, "{results:#?}");

    // Roots that do not include the test CA: untrusted, but the certificate is still shown.
    let untrusted = ProbeOptions {
        tls_roots: Some(roots(other_ca.der())),
        ..options(3000, 0)
    };
    let results = run_probes(probes()[..1].to_vec(), &untrusted).await;
    let OutcomeClass::TlsFailed { reason } = class(&results[0]) else {
        panic!("an unknown issuer fails: {results:#?}");
    };
    assert!(reason.contains("not trusted"), "{reason}");
    let details = results[0].details.tls.as_ref().expect("TLS details");
    assert!(!details.verified);
    assert_eq!(details.issuer.as_deref(), Some("CN=Portolan Test CA"));

    // The same, when verification is not required: open, and reported as unverified.
    let lenient = ProbeOptions {
        tls_require_verified: false,
        ..untrusted
    };
    let results = run_probes(probes()[..1].to_vec(), &lenient).await;
    assert_eq!(class(&results[0]), &OutcomeClass::Open, "{results:#?}");
    assert!(
        !results[0]
            .details
            .tls
            .as_ref()
            .expect("TLS details")
            .verified
    );
}

/// A tiny HTTP CONNECT proxy that sends every tunnel to `upstream`, refuses
/// `denied.test`, and records the request heads it got.
async fn connect_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(local(0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read_u8().await {
                        Ok(byte) => head.push(byte),
                        Err(_) => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                seen.lock().expect("lock").push(head.clone());
                if head.contains("denied.test") {
                    let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn tls_through_a_connect_proxy() {
    let pki = test_pki();
    let server = tls_server(pki.server.clone()).await;
    let (proxy_addr, heads) = connect_proxy(server).await;
    let proxy = Proxy::new(&format!("http://probe:s3cret@{proxy_addr}"))
        .expect("a valid proxy URL")
        .with_no_proxy("bypass.test, 127.0.0.0/8");
    let opts = ProbeOptions {
        proxy: Some(proxy),
        tls_roots: Some(roots(&pki.ca)),
        ..options(3000, 0)
    };
    let tls_default = Protocol::Tls { sni: None };
    let probes = vec![
        // A name only the proxy can resolve.
        ProbeSpec::new(
            "via-proxy",
            Target::host("portolan.test", 443),
            tls_default.clone(),
        ),
        ProbeSpec::new("denied", Target::host("denied.test", 443), tls_default),
        // NO_PROXY matches 127.0.0.0/8: straight to the server.
        ProbeSpec::new("bypass", server, tls("portolan.test")),
    ];
    let results = run_probes(probes, &opts).await;
    assert_eq!(class(&results[0]), &OutcomeClass::Open, "{results:#?}");
    let details = &results[0].details;
    assert!(details.resolved.is_empty(), "the proxy resolves the name");
    assert_eq!(details.peer, Some(proxy_addr));
    let tls_details = details.tls.as_ref().expect("TLS details");
    assert_eq!(tls_details.proxy, Some(proxy_addr.to_string()));
    assert!(tls_details.verified);
    let OutcomeClass::ProxyFailed { reason } = class(&results[1]) else {
        panic!("the proxy's refusal is reported: {results:#?}");
    };
    assert!(reason.contains("403"), "{reason}");
    assert_eq!(class(&results[2]), &OutcomeClass::Open, "{results:#?}");
    assert_eq!(results[2].details.tls.as_ref().expect("TLS").proxy, None);
    assert_eq!(results[2].details.peer, Some(server));

    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let head = heads
        .iter()
        .find(|h| h.contains("portolan.test"))
        .expect("the tunnel request");
    assert!(
        head.starts_with("CONNECT portolan.test:443 HTTP/1.1\r\n"),
        "{head}"
    );
    // base64("probe:s3cret")
    assert!(
        head.contains("Proxy-Authorization: Basic cHJvYmU6czNjcmV0\r\n"),
        "{head}"
    );

    // A proxy that is not there.
    let gone = ProbeOptions {
        proxy: Some(Proxy::new(&local(closed_tcp_port()).to_string()).expect("valid")),
        ..options(3000, 0)
    };
    let probe = ProbeSpec::new(
        "no-proxy",
        Target::host("portolan.test", 443),
        tls("portolan.test"),
    );
    let results = run_probes(vec![probe], &gone).await;
    let OutcomeClass::ProxyFailed { reason } = class(&results[0]) else {
        panic!("an unreachable proxy is reported: {results:#?}");
    };
    assert!(reason.contains("refused"), "{reason}");
}

#[tokio::test]
async fn concurrency_bound_is_respected() {
    const PROBES: usize = 24;
    const CONCURRENCY: usize = 3;
    // A UDP server that never answers and counts datagrams as they arrive,
    // on its own thread so that it counts promptly.
    let server = StdUdpSocket::bind(local(0)).expect("bind");
    let target = server.local_addr().expect("addr");
    server
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let received = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0; 512];
            while !stop.load(Ordering::Relaxed) {
                if server.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let calls = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let (received, calls) = (received.clone(), calls.clone());
        Arc::new(move |p: portolan_probe::Progress<'_>| {
            // Every datagram counted was sent by a probe that started, and a
            // probe starts only when fewer than CONCURRENCY are in flight.
            let started = received.load(Ordering::SeqCst);
            calls.lock().expect("lock").push((p.done, p.total, started));
        })
    };
    let opts = ProbeOptions {
        concurrency: CONCURRENCY,
        progress: Some(progress),
        ..options(150, 0)
    };
    let probes = (0..PROBES)
        .map(|i| ProbeSpec::new(format!("p{i}"), target, real_service(b"x")))
        .collect();
    let results = run_probes(probes, &opts).await;
    stop.store(true, Ordering::Relaxed);
    counter.join().expect("the counter thread");

    let ids: Vec<String> = results.iter().map(|r| r.spec.id.clone()).collect();
    let expected: Vec<String> = (0..PROBES).map(|i| format!("p{i}")).collect();
    assert_eq!(
        ids, expected,
        "results come back in the order of the probes"
    );
    assert!(results
        .iter()
        .all(|r| *class(r) == OutcomeClass::OpenOrFiltered));
    assert_eq!(received.load(Ordering::SeqCst), PROBES);
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), PROBES);
    for (i, &(done, total, started)) in calls.iter().enumerate() {
        assert_eq!((done, total), (i + 1, PROBES));
        assert!(
            started <= done + CONCURRENCY,
            "{started} probes had started when {done} were done: more than {CONCURRENCY} in flight"
        );
    }
}

/// A network namespace for the test with `lo` up, or `None` after a loud
/// skip (a failure instead when `PORTOLAN_REQUIRE_LAB=1`).
fn netns(test: &str) -> Option<Netns> {
    if !nix::unistd::geteuid().is_root() {
        portolan_test_support::skip(test, "network namespaces need root");
        return None;
    }
    match Netns::create("probe") {
        Ok(netns) => {
            exec(&netns, &["ip", "link", "set", "lo", "up"], None);
            Some(netns)
        }
        Err(why) => {
            portolan_test_support::skip(test, &why);
            None
        }
    }
}

/// Runs a command inside the namespace, with optional standard input; it
/// must succeed.
fn exec(netns: &Netns, args: &[&str], stdin: Option<&str>) {
    let out = match stdin {
        Some(input) => netns.exec_with_input(args[0], &args[1..], input),
        None => netns.exec(args[0], &args[1..]),
    };
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn filtered_and_unreachable_in_a_namespace() {
    let Some(netns) = netns("filtered") else {
        return;
    };
    let (drop_tcp, reject_tcp, prohibit_udp, drop_udp) = (9001, 9002, 9003, 9004);
    exec(
        &netns,
        &["nft", "-f", "-"],
        Some(&format!(
            "table inet portolan_test {{
               chain input {{
                 type filter hook input priority 0;
                 tcp dport {drop_tcp} drop
                 tcp dport {reject_tcp} reject with icmp type host-unreachable
                 udp dport {prohibit_udp} reject with icmp type admin-prohibited
                 udp dport {drop_udp} drop
               }}
             }}"
        )),
    );
    // A port free on the host: the namespace's listener must not show there.
    let isolated = closed_tcp_port();
    let timeout = Duration::from_millis(500);
    let results = netns.run(|| {
        current_thread_runtime().block_on(async {
            let config = ListenerConfig {
                endpoints: vec![
                    Endpoint {
                        protocol: ListenProtocol::Tcp,
                        port: isolated,
                    },
                    Endpoint {
                        protocol: ListenProtocol::Udp,
                        port: drop_udp,
                    },
                ],
                ..config(&[])
            };
            let (results, _) = serving(&config, |_, _| async move {
                let probes = vec![
                    ProbeSpec::new("dropped", local(drop_tcp), Protocol::Tcp),
                    ProbeSpec::new("rejected", local(reject_tcp), Protocol::Tcp),
                    ProbeSpec::new("prohibited", local(prohibit_udp), listener_probe(TOKEN)),
                    ProbeSpec::new("udp-dropped", local(drop_udp), listener_probe(TOKEN)),
                    ProbeSpec::new("udp-dropped-real", local(drop_udp), real_service(b"x")),
                    ProbeSpec::new("inside", local(isolated), Protocol::Tcp),
                ];
                let opts = ProbeOptions {
                    timeout,
                    retries: 1,
                    ..ProbeOptions::default()
                };
                run_probes(probes, &opts).await
            })
            .await;
            results
        })
    });
    assert_classes(
        &results,
        &[
            ("dropped", OutcomeClass::Filtered),
            ("rejected", OutcomeClass::Unreachable),
            ("prohibited", OutcomeClass::Unreachable),
            ("udp-dropped", OutcomeClass::Filtered),
            ("udp-dropped-real", OutcomeClass::OpenOrFiltered),
            ("inside", OutcomeClass::Open),
        ],
    );
    for dropped in &results[..1] {
        assert_eq!(dropped.outcome.attempts, 2, "a timeout is retried once");
        assert!(
            dropped.outcome.elapsed >= timeout * 2,
            "each attempt waits for the whole timeout: {:?}",
            dropped.outcome.elapsed
        );
    }
    assert_eq!(results[1].outcome.attempts, 1, "a rejection is final");

    // The listener's socket lives in the namespace, not on the host.
    let outside = current_thread_runtime().block_on(run_probes(
        vec![ProbeSpec::new("outside", local(isolated), Protocol::Tcp)],
        &options(1000, 0),
    ));
    assert_eq!(class(&outside[0]), &OutcomeClass::Refused, "{outside:#?}");
}

#[tokio::test]
async fn listener_reports_ports_it_cannot_bind() {
    let taken = StdUdpSocket::bind(local(0)).expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let tcp_taken = StdTcpListener::bind(local(0)).expect("bind");
    let tcp_taken_port = tcp_taken.local_addr().expect("addr").port();
    let config = ListenerConfig {
        addrs: vec![
            "127.0.0.1".parse().expect("ip"),
            "192.0.2.1"
                .parse()
                .expect("a documentation address, not local"),
        ],
        endpoints: vec![
            Endpoint {
                protocol: ListenProtocol::Udp,
                port: taken_port,
            },
            Endpoint {
                protocol: ListenProtocol::Tcp,
                port: tcp_taken_port,
            },
            endpoint(ListenProtocol::Tcp),
        ],
        token: TOKEN.into(),
    };
    let listener = Listener::bind(&config).await.expect("a valid config");
    let failures: Vec<_> = listener
        .failures()
        .iter()
        .map(|f| (f.addr, f.reason))
        .collect();
    use portolan_probe::BindFailureReason::*;
    assert_eq!(
        failures,
        [
            (local(taken_port), InUse),
            (
                SocketAddr::from(([192, 0, 2, 1], taken_port)),
                AddressNotAvailable
            ),
            (local(tcp_taken_port), InUse),
            (
                SocketAddr::from(([192, 0, 2, 1], tcp_taken_port)),
                AddressNotAvailable
            ),
            (SocketAddr::from(([192, 0, 2, 1], 0)), AddressNotAvailable),
        ]
    );
    assert!(listener.failures().iter().all(|f| !f.os_error.is_empty()));
    assert_eq!(listener.bound().len(), 1, "the free port is bound");
    assert_ne!(listener.bound()[0].local.port(), 0);

    let empty = ListenerConfig {
        token: String::new(),
        ..config
    };
    assert!(
        Listener::bind(&empty).await.is_err(),
        "an empty token is refused"
    );
}

#[tokio::test]
async fn ipv6_loopback() {
    if StdUdpSocket::bind("[::1]:0").is_err() {
        portolan_test_support::loud("SKIPPED ipv6_loopback: this machine has no ::1");
        return;
    }
    let config = ListenerConfig {
        addrs: vec!["::1".parse().expect("ip")],
        ..config(&[endpoint(ListenProtocol::Tcp), endpoint(ListenProtocol::Udp)])
    };
    // Bound, then released at the end of the block.
    let closed = {
        let socket = StdTcpListener::bind("[::1]:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let (results, _) = serving(&config, |bound, _| async move {
        let probes = vec![
            ProbeSpec::new("tcp", bound[0].local, Protocol::Tcp),
            ProbeSpec::new("udp", bound[1].local, listener_probe(TOKEN)),
            ProbeSpec::new("closed", closed, Protocol::Tcp),
            ProbeSpec::new(
                "bracketed",
                Target::host("[::1]", bound[0].local.port()),
                Protocol::Tcp,
            ),
        ];
        run_probes(probes, &options(2000, 0)).await
    })
    .await;
    let classes: Vec<_> = results.iter().map(class).collect();
    assert_eq!(
        classes,
        [
            &OutcomeClass::Open,
            &OutcomeClass::Open,
            &OutcomeClass::Refused,
            &OutcomeClass::Open
        ],
        "{results:#?}"
    );
    assert!(results[0].details.local.is_some_and(|a| a.is_ipv6()));
}

fn icmp(token: &str) -> Protocol {
    Protocol::IcmpEcho {
        token: token.into(),
    }
}

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().expect("ip")
}

/// An ICMP target: the port is ignored.
fn icmp_target(text: &str) -> SocketAddr {
    SocketAddr::new(ip(text), 0)
}

/// Writes `net.ipv4.ping_group_range` of the calling thread's network namespace.
fn set_ping_group_range(range: &str) {
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", range)
        .expect("write net.ipv4.ping_group_range");
}

/// Echo requests to 127.0.0.1 and ::1, many at once: every one gets its
/// own reply.
async fn loopback_echoes() -> Vec<ProbeResult> {
    let mut probes = vec![
        ProbeSpec::new("v4", icmp_target("127.0.0.1"), icmp(TOKEN)),
        ProbeSpec::new("v6", icmp_target("::1"), icmp(TOKEN)),
        ProbeSpec::new("by-name", Target::host("127.0.0.1", 0), icmp(TOKEN)),
        ProbeSpec::new("from", icmp_target("127.0.0.1"), icmp(TOKEN))
            .with_source_ip(ip("127.0.0.1")),
    ];
    for n in 0..40 {
        let target = if n % 2 == 0 { "127.0.0.1" } else { "::1" };
        probes.push(ProbeSpec::new(
            format!("many-{n}"),
            icmp_target(target),
            icmp(TOKEN),
        ));
    }
    run_probes(probes, &options(2000, 0)).await
}

fn assert_all_open(results: &[ProbeResult]) {
    for result in results {
        assert_eq!(class(result), &OutcomeClass::Open, "{result:#?}");
        assert_eq!(result.outcome.attempts, 1);
        assert_eq!(result.details.peer.map(|p| p.port()), Some(0));
    }
    let v6 = &results[1];
    assert!(v6.details.peer.is_some_and(|p| p.is_ipv6()), "{v6:#?}");
    assert_eq!(results[0].spec.target_text(), "127.0.0.1", "no port shown");
}

#[test]
fn icmp_echo_on_loopback() {
    const TEST: &str = "icmp_echo_on_loopback";
    if portolan_probe::icmp_echo_permitted(false).is_ok()
        && portolan_probe::icmp_echo_permitted(true).is_ok()
        && StdUdpSocket::bind("[::1]:0").is_ok()
    {
        let results = current_thread_runtime().block_on(loopback_echoes());
        assert_all_open(&results);
        return;
    }
    // This machine refuses ping sockets to our group (or has no ::1): a
    // namespace of our own, where we set the range, if we may make one.
    if !nix::unistd::geteuid().is_root() {
        let why = format!(
            "ping sockets are refused here ({}) and a namespace of our own needs root",
            portolan_probe::icmp_echo_permitted(false)
                .err()
                .unwrap_or_else(|| "no ::1".to_owned())
        );
        portolan_test_support::skip(TEST, &why);
        return;
    }
    let Some(netns) = netns("icmp-loopback") else {
        return;
    };
    let results = netns.run(|| {
        set_ping_group_range("0 2147483647");
        current_thread_runtime().block_on(loopback_echoes())
    });
    assert_all_open(&results);
}

#[test]
fn icmp_echo_filtered_unreachable_and_refused_in_a_namespace() {
    let Some(netns) = netns("icmp") else {
        return;
    };
    for extra in ["::2/128", "::3/128", "::4/128"] {
        exec(&netns, &["ip", "addr", "add", extra, "dev", "lo"], None);
    }
    exec(
        &netns,
        &["nft", "-f", "-"],
        Some(
            "table inet portolan_test {
               chain input {
                 type filter hook input priority 0;
                 ip daddr 127.0.0.2 icmp type echo-request drop
                 ip6 daddr ::2 icmpv6 type echo-request drop
                 ip daddr 127.0.0.3 icmp type echo-request reject with icmp type admin-prohibited
                 ip6 daddr ::3 icmpv6 type echo-request reject with icmpv6 type admin-prohibited
               }
               chain output {
                 type filter hook output priority 0;
                 ip daddr 127.0.0.4 icmp type echo-request drop
                 ip6 daddr ::4 icmpv6 type echo-request drop
               }
             }",
        ),
    );
    let timeout = Duration::from_millis(300);
    let (results, refused, permitted) = netns.run(|| {
        set_ping_group_range("0 2147483647");
        let rt = current_thread_runtime();
        let probes = [
            ("open", "127.0.0.1"),
            ("open-v6", "::1"),
            ("dropped", "127.0.0.2"),
            ("dropped-v6", "::2"),
            ("rejected", "127.0.0.3"),
            ("rejected-v6", "::3"),
            ("local-rule", "127.0.0.4"),
            ("local-rule-v6", "::4"),
        ]
        .into_iter()
        .map(|(id, target)| ProbeSpec::new(id, icmp_target(target), icmp(TOKEN)))
        .collect();
        let results = rt.block_on(run_probes(
            probes,
            &ProbeOptions {
                timeout,
                retries: 1,
                ..ProbeOptions::default()
            },
        ));
        // No group may open ping sockets: said, with the way to allow them.
        set_ping_group_range("1 0");
        let refused = rt.block_on(run_probes(
            vec![ProbeSpec::new(
                "refused",
                icmp_target("127.0.0.1"),
                icmp(TOKEN),
            )],
            &options(1000, 1),
        ));
        let permitted = portolan_probe::icmp_echo_permitted(false);
        (results, refused, permitted)
    });
    assert_classes(
        &results,
        &[
            ("open", OutcomeClass::Open),
            ("open-v6", OutcomeClass::Open),
            ("dropped", OutcomeClass::Filtered),
            ("dropped-v6", OutcomeClass::Filtered),
            ("rejected", OutcomeClass::Unreachable),
            ("rejected-v6", OutcomeClass::Unreachable),
            ("local-rule", OutcomeClass::Filtered),
            ("local-rule-v6", OutcomeClass::Filtered),
        ],
    );
    for dropped in &results[2..4] {
        assert_eq!(dropped.outcome.attempts, 2, "a timeout is retried once");
        assert_eq!(dropped.outcome.os_error, None);
    }
    for rejected in &results[4..6] {
        assert_eq!(rejected.outcome.attempts, 1, "an ICMP error is final");
        assert!(rejected.outcome.os_error.is_some(), "{rejected:#?}");
    }
    // Dropped by this host's own output chain: IPv4 says so at once
    // (EPERM); Linux does not report it for ICMPv6, which times out.
    let local = &results[6];
    assert_eq!(local.outcome.attempts, 1, "{local:#?}");
    assert!(
        local
            .outcome
            .os_error
            .as_deref()
            .is_some_and(|e| e.contains("not permitted")),
        "{local:#?}"
    );
    assert_eq!(results[7].outcome.attempts, 2, "{:#?}", results[7]);

    let refused = &refused[0];
    assert_eq!(class(refused), &OutcomeClass::LocalError, "{refused:#?}");
    assert_eq!(refused.outcome.attempts, 1, "a refusal is not retried");
    let message = refused.outcome.os_error.as_deref().unwrap_or_default();
    assert!(
        message.contains("net.ipv4.ping_group_range (here: \"1 0\")")
            && message.contains("sysctl -w net.ipv4.ping_group_range=\"0 2147483647\""),
        "{message}"
    );
    let permitted = permitted.expect_err("ping sockets are refused");
    assert!(permitted.contains("ping_group_range"), "{permitted}");
}

/// An early verdict ends an attempt that would otherwise wait: filtered,
/// final (no retry), its output recorded; it is asked with the attempt's
/// real local address; a verdict that never comes changes nothing.
#[tokio::test]
async fn an_early_verdict_settles_an_attempt_without_waiting() {
    use portolan_probe::{AttemptFlow, EarlyVerdictFn, FlowKind};
    // A UDP socket that never answers: without the verdict, a timeout.
    let silent = StdUdpSocket::bind(local(0)).expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<AttemptFlow>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let early: EarlyVerdictFn = Arc::new(move |spec: &ProbeSpec, flow: &AttemptFlow| {
        recorder.lock().expect("lock").push(*flow);
        if spec.id == "never" {
            Some(Box::pin(futures::future::pending::<String>()) as _)
        } else {
            Some(Box::pin(async { "dropped by rule 7".to_string() }) as _)
        }
    });
    let opts = ProbeOptions {
        timeout: Duration::from_secs(5),
        retries: 2,
        early_verdict: Some(early),
        ..ProbeOptions::default()
    };
    let open = StdTcpListener::bind(local(0)).expect("bind tcp");
    let open_addr = open.local_addr().expect("addr");
    let started = std::time::Instant::now();
    let results = run_probes(
        vec![
            ProbeSpec::new("udp", silent_addr, listener_probe(TOKEN)),
            ProbeSpec::new("never", open_addr, Protocol::Tcp),
        ],
        &opts,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "nothing waited for the timeout"
    );
    let udp = &results[0];
    assert_eq!(udp.outcome.class, OutcomeClass::Filtered);
    assert_eq!(udp.outcome.attempts, 1, "an early verdict is final");
    assert_eq!(
        udp.details.settled_early.as_deref(),
        Some("dropped by rule 7")
    );
    let tcp = &results[1];
    assert_eq!(tcp.outcome.class, OutcomeClass::Open);
    assert_eq!(tcp.details.settled_early, None);
    let seen = seen.lock().expect("lock");
    let udp_flow = seen
        .iter()
        .find(|f| f.kind == FlowKind::Udp)
        .expect("udp asked");
    assert_eq!(Some(udp_flow.local), udp.details.local);
    assert_eq!(udp_flow.peer, silent_addr);
    let tcp_flow = seen
        .iter()
        .find(|f| f.kind == FlowKind::Tcp)
        .expect("tcp asked");
    // Bound before the SYN: the port is known (the address only when the
    // probe has a source address; the kernel picks it at connect).
    assert_eq!(
        Some(tcp_flow.local.port()),
        tcp.details.local.map(|l| l.port()),
        "bound before the SYN"
    );
}
