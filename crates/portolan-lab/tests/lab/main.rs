//! Integration tests of the lab: real namespaces, links, sockets and
//! nftables (here), and `run_lab` end to end on specs (`runs`).
//!
//! They need root (or CAP_SYS_ADMIN + CAP_NET_ADMIN). Without it each test
//! prints a loud SKIPPED banner and passes, unless `PORTOLAN_REQUIRE_LAB=1`,
//! in which case it fails. Traffic only flows between namespaces these tests
//! create, on the lab-only ranges. Every wait is bounded in count and time.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_lab::{
    cleanup_stale, netns, Lab, LabError, Topology, BRIDGE_INTERFACE, HOST_INTERFACE, LOCK_DIR,
};

mod runs;

/// Set in the child processes of the kill / interrupt tests.
const CHILD_ENV: &str = "PORTOLAN_LAB_TEST_CHILD";

/// Whether namespaces can be made here (root); a loud skip, or a failure
/// under `PORTOLAN_REQUIRE_LAB=1`, when they cannot.
fn lab_available(test: &str) -> bool {
    portolan_test_support::lab_available_with(test, portolan_lab::check_privileges(), &[])
}

/// As [`lab_available`], and `nft` is installed.
fn lab_with_nft(test: &str) -> bool {
    portolan_test_support::lab_available(test, portolan_lab::check_privileges())
}

fn topology_of(hosts: &[&str]) -> Topology {
    let mut topology = Topology::new();
    for host in hosts {
        topology.add_host(host).expect("valid host");
    }
    topology
}

fn lab_with(hosts: &[&str]) -> Lab {
    Lab::create(topology_of(hosts)).expect("create lab")
}

/// Root-namespace links whose name contains `needle`, from `ip -o link`.
fn root_links_containing(needle: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("run ip -o link show");
    assert!(out.status.success(), "ip -o link show failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn lock_file(run: &str) -> std::path::PathBuf {
    Path::new(LOCK_DIR).join(format!("{run}.lock"))
}

fn connect_from(
    lab: &Lab,
    host: &str,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    lab.run_in(host, move || TcpStream::connect_timeout(&to, timeout))
        .expect("enter namespace")
        .join()
        .expect("connect thread")
}

fn listen_in(lab: &Lab, host: &str, at: SocketAddr) -> TcpListener {
    lab.run_in(host, move || TcpListener::bind(at))
        .expect("enter namespace")
        .join()
        .expect("bind thread")
        .expect("bind listener")
}

/// A connection accepted from the backlog answers a ping with a pong.
fn exchange(client: &mut TcpStream, listener: &TcpListener) {
    let (mut server, peer) = listener.accept().expect("accept queued connection");
    assert_eq!(peer, client.local_addr().expect("client address"));
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client.write_all(b"ping").expect("client write");
    let mut buf = [0u8; 4];
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    server.read_exact(&mut buf).expect("server read");
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").expect("server write");
    client.read_exact(&mut buf).expect("client read");
    assert_eq!(&buf, b"pong");
}

#[test]
fn three_hosts_tcp_over_ipv4_and_ipv6_and_an_nft_drop_blocks_it() {
    if !lab_with_nft("three_hosts_tcp_over_ipv4_and_ipv6_and_an_nft_drop_blocks_it") {
        return;
    }
    let lab = lab_with(&["a", "b", "c"]);
    let run = lab.run_id().to_string();

    // Three host namespaces and the bridge namespace exist, named by the run.
    let namespaces = netns::list_named(&format!("{run}-")).expect("list namespaces");
    assert_eq!(
        namespaces,
        vec![
            format!("{run}-a"),
            format!("{run}-b"),
            format!("{run}-bridge"),
            format!("{run}-c")
        ]
    );
    assert_eq!(lab.topology().hosts().len(), 3);

    let a = lab.host("a").expect("a").clone();
    let b = lab.host("b").expect("b").clone();
    let blocked_port = 7100;
    let open_port = 7101;
    let v4 = SocketAddr::from((b.ipv4(), blocked_port));
    let v6 = SocketAddr::from((b.ipv6(), blocked_port));
    let v4_open = SocketAddr::from((b.ipv4(), open_port));
    let listener_v4 = listen_in(&lab, "b", v4);
    let listener_v6 = listen_in(&lab, "b", v6);
    let listener_open = listen_in(&lab, "b", v4_open);

    // Before any firewall: A reaches B over both families, from A's addresses.
    for (target, listener, source) in [
        (v4, &listener_v4, IpAddr::from(a.ipv4())),
        (v6, &listener_v6, IpAddr::from(a.ipv6())),
    ] {
        let mut client = connect_from(&lab, "a", target, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect from a to {target}: {e}"));
        assert_eq!(client.local_addr().expect("local").ip(), source);
        exchange(&mut client, listener);
    }

    // A ruleset in B that drops input to the port.
    let ruleset = format!(
        "table inet portolan_test {{\n  chain input {{\n    type filter hook input priority filter; policy accept;\n    tcp dport {blocked_port} drop\n  }}\n}}\n"
    );
    lab.load_nft("b", &ruleset)
        .expect("load nftables ruleset in b");

    for target in [v4, v6] {
        let started = Instant::now();
        let result = connect_from(&lab, "a", target, Duration::from_millis(1500));
        let err = result.expect_err("the dropped port must not be reachable");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::TimedOut,
            "a dropped SYN times out (not refused) for {target}: {err}"
        );
        assert!(started.elapsed() >= Duration::from_millis(1000));
    }
    // The firewall drops that port only: another port of B still answers.
    let mut client = connect_from(&lab, "a", v4_open, Duration::from_secs(5)).expect("open port");
    exchange(&mut client, &listener_open);

    // A bad ruleset is rejected with nft's own message.
    match lab.load_nft("b", "table inet broken {\n  chain c {\n    bogus\n  }\n}\n") {
        Err(LabError::NftFailed { host, stderr, .. }) => {
            assert_eq!(host, "b");
            assert!(stderr.contains("Error"), "nft's stderr is kept: {stderr}");
        }
        other => panic!("expected NftFailed, got {other:?}"),
    }
    lab.destroy().expect("destroy");
}

/// A received datagram and its source address.
type Datagram = (Vec<u8>, IpAddr);

/// Joins `group` in `host`, reports readiness, and returns the payloads (with
/// their sources) received within the time limit, up to `max` datagrams.
fn multicast_receiver(
    lab: &Lab,
    host: &str,
    group: IpAddr,
    port: u16,
    ready: mpsc::Sender<()>,
) -> portolan_lab::NsThread<std::io::Result<Vec<Datagram>>> {
    let ipv4 = lab.host(host).expect("host").ipv4();
    lab.run_in(host, move || {
        let socket = match group {
            IpAddr::V4(g) => {
                let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
                s.join_multicast_v4(&g, &ipv4)?;
                s
            }
            IpAddr::V6(g) => {
                let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))?;
                s.join_multicast_v6(&g, 0)?;
                s
            }
        };
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let _ = ready.send(());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while Instant::now() < deadline && got.len() < 3 {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => got.push((buf[..n].to_vec(), from.ip())),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    })
    .expect("enter namespace")
}

#[test]
fn multicast_from_one_host_reaches_the_others() {
    if !lab_available("multicast_from_one_host_reaches_the_others") {
        return;
    }
    let lab = lab_with(&["a", "b", "c"]);
    let a = lab.host("a").expect("a").clone();
    let groups: [(IpAddr, IpAddr); 2] = [
        (Ipv4Addr::new(239, 255, 70, 1).into(), a.ipv4().into()),
        (
            "ff15::706f:7274".parse::<Ipv6Addr>().expect("group").into(),
            a.ipv6().into(),
        ),
    ];
    for (group, source) in groups {
        let port = 7200;
        let payload = format!("portolan {} {group}", lab.run_id()).into_bytes();
        let (ready_tx, ready_rx) = mpsc::channel();
        let receivers: Vec<_> = ["b", "c"]
            .iter()
            .map(|h| {
                (
                    *h,
                    multicast_receiver(&lab, h, group, port, ready_tx.clone()),
                )
            })
            .collect();
        for _ in 0..receivers.len() {
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("receivers joined the group");
        }
        let sent = payload.clone();
        lab.run_in("a", move || -> std::io::Result<()> {
            let socket = UdpSocket::bind(SocketAddr::new(source, 0))?;
            if group.is_ipv4() {
                socket.set_multicast_ttl_v4(1)?;
            }
            // A few copies, spaced out, in case a join was still settling.
            for _ in 0..3 {
                socket.send_to(&sent, SocketAddr::new(group, port))?;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })
        .expect("enter namespace")
        .join()
        .expect("sender thread")
        .unwrap_or_else(|e| panic!("send to {group} from a: {e}"));
        for (host, receiver) in receivers {
            let got = receiver
                .join()
                .expect("receiver thread")
                .unwrap_or_else(|e| panic!("receive {group} in {host}: {e}"));
            assert!(
                got.iter()
                    .any(|(data, from)| *data == payload && *from == source),
                "{host} got no datagram for {group} from {source}: {got:?}"
            );
        }
    }
}

#[test]
fn exec_and_spawn_run_programs_inside_the_host() {
    if !lab_available("exec_and_spawn_run_programs_inside_the_host") {
        return;
    }
    let lab = lab_with(&["a", "b"]);
    let hex = |ip: Ipv6Addr| {
        ip.octets()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let a6 = hex(lab.host("a").expect("a").ipv6());
    let b6 = hex(lab.host("b").expect("b").ipv6());

    // /proc/net shows the network namespace of the process reading it.
    let mut cat = Command::new("cat");
    cat.arg("/proc/net/if_inet6");
    let out = lab.exec("b", cat).expect("exec cat in b");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&b6), "b sees its own address: {text}");
    assert!(!text.contains(&a6), "b does not see a's address: {text}");
    assert!(text.contains("ptl-eth0"));

    let mut cat = Command::new("cat");
    cat.arg("/proc/net/if_inet6").stdout(Stdio::piped());
    let child = lab.spawn("a", cat).expect("spawn cat in a");
    let out = child.wait_with_output().expect("wait");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a6));

    assert!(matches!(
        lab.exec("nope", Command::new("true")),
        Err(LabError::UnknownHost(_))
    ));
    let handle = lab.cleanup_handle();
    handle.cleanup().expect("cleanup through the handle");
    assert!(matches!(
        lab.run_in("a", || ()),
        Err(LabError::Destroyed(_))
    ));
    drop(lab); // after the handle's cleanup: nothing left to do, no error
}

#[test]
fn dropping_the_lab_removes_everything_it_created() {
    if !lab_available("dropping_the_lab_removes_everything_it_created") {
        return;
    }
    let lab = lab_with(&["a", "b"]);
    let run = lab.run_id().to_string();
    // A thread that ran in a host and is finished does not pin anything.
    lab.run_in("a", || ())
        .expect("run_in")
        .join()
        .expect("join");
    assert_eq!(netns::list_named(&run).expect("list").len(), 3);
    assert!(lock_file(&run).exists());
    // The links exist, inside the lab's namespaces only.
    let mut ip = Command::new("ip");
    ip.args(["-o", "link", "show"]);
    let bridge_links = lab
        .run_in_bridge(move || ip.output())
        .expect("enter bridge namespace")
        .join()
        .expect("join")
        .expect("ip link in bridge namespace");
    let bridge_links = String::from_utf8_lossy(&bridge_links.stdout).to_string();
    for name in [BRIDGE_INTERFACE, "ptl-p0", "ptl-p1"] {
        assert!(bridge_links.contains(name), "{name} in {bridge_links}");
    }
    assert_no_lab_links_in_caller_namespace(&run);

    drop(lab);

    assert!(netns::list_named(&run).expect("list").is_empty());
    assert!(!Path::new(netns::NETNS_DIR)
        .join(format!("{run}-a"))
        .exists());
    assert!(!lock_file(&run).exists());
    assert_no_lab_links_in_caller_namespace(&run);
}

/// No link of the run, nor with the lab's interface names, in the test's own
/// network namespace (`ip -o link`).
fn assert_no_lab_links_in_caller_namespace(run: &str) {
    for needle in [run, HOST_INTERFACE, BRIDGE_INTERFACE, "ptl-p"] {
        let found = root_links_containing(needle);
        assert!(found.is_empty(), "unexpected links: {found:?}");
    }
}

#[test]
fn works_from_inside_a_tokio_runtime_and_with_tokio_inside_hosts() {
    if !lab_available("works_from_inside_a_tokio_runtime_and_with_tokio_inside_hosts") {
        return;
    }
    // The CLI is async: creating the lab from inside a runtime must work.
    let outer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lab = outer.block_on(async { Lab::create(topology_of(&["a", "b"])) });
    let lab = lab.expect("create lab inside a runtime");
    let target = SocketAddr::from((lab.host("b").expect("b").ipv6(), 7300));

    // The documented pattern: a current_thread runtime inside the thread.
    let (bound_tx, bound_rx) = mpsc::channel();
    let server = lab
        .run_in("b", move || -> std::io::Result<SocketAddr> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(target).await?;
                let _ = bound_tx.send(());
                let accepted =
                    tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
                let (_stream, peer) = accepted.map_err(std::io::Error::other)??;
                Ok(peer)
            })
        })
        .expect("enter b");
    bound_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener bound");
    let client = lab
        .run_in("a", move || -> std::io::Result<SocketAddr> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let connect = tokio::net::TcpStream::connect(target);
                let stream = tokio::time::timeout(Duration::from_secs(5), connect)
                    .await
                    .map_err(std::io::Error::other)??;
                stream.local_addr()
            })
        })
        .expect("enter a");
    let client_addr = client.join().expect("client").expect("connect");
    let peer = server.join().expect("server").expect("accept");
    assert_eq!(peer, client_addr);
    assert_eq!(peer.ip(), IpAddr::from(lab.host("a").expect("a").ipv6()));
}

#[test]
fn cleanup_stale_rejects_foreign_prefixes() {
    assert!(matches!(
        cleanup_stale("eth"),
        Err(LabError::InvalidName { .. })
    ));
    assert!(matches!(
        cleanup_stale(""),
        Err(LabError::InvalidName { .. })
    ));
}

/// Kills the child on drop, so that a failing test leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-runs this test binary as a child that runs only `test`, with
/// `CHILD_ENV` set to `mode`; returns it and the run id it printed.
fn spawn_child_lab(test: &str, mode: &str) -> (KillOnDrop, String) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = KillOnDrop(
        Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(1000) {
            let Ok(line) = line else { break };
            // libtest may print "test NAME ... " on the same line.
            if let Some((_, run)) = line.split_once("PTL_RUN=") {
                let _ = tx.send(run.trim().to_string());
            }
        }
    });
    let run = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child printed its run id");
    (child, run)
}

/// Waits (bounded) for the child to exit.
fn wait_exit(child: &mut KillOnDrop, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Not a test of its own: the body of the child process of the two tests
/// below (does nothing unless `CHILD_ENV` is set).
#[test]
fn child_process_holding_a_lab() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let lab = lab_with(&["x", "y"]);
    if mode == "ctrl-c" {
        // What the CLI does: a tokio task waits for Ctrl-C and tears down
        // every registered lab.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Registered before the run id is announced, so no SIGINT is missed.
            let mut interrupt =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                    .expect("SIGINT handler");
            let ctrl_c = tokio::spawn(async move {
                interrupt.recv().await;
                portolan_lab::cleanup_registered()
            });
            println!("PTL_RUN={}", lab.run_id());
            std::io::stdout().flush().expect("flush");
            match tokio::time::timeout(Duration::from_secs(60), ctrl_c).await {
                Ok(Ok(Ok(count))) => {
                    assert_eq!(count, 1);
                    std::process::exit(130);
                }
                other => panic!("no clean Ctrl-C teardown: {other:?}"),
            }
        });
    } else {
        println!("PTL_RUN={}", lab.run_id());
        std::io::stdout().flush().expect("flush");
        // Bounded: the parent kills us long before.
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn leftovers_of_a_killed_process_are_removed_by_cleanup_stale() {
    if !lab_available("leftovers_of_a_killed_process_are_removed_by_cleanup_stale") {
        return;
    }
    let (mut child, run) = spawn_child_lab("child_process_holding_a_lab", "sigkill");
    let expected = vec![
        format!("{run}-bridge"),
        format!("{run}-x"),
        format!("{run}-y"),
    ];
    assert_eq!(netns::list_named(&run).expect("list"), expected);

    // While the child lives, its lab is live: cleanup leaves it alone.
    let report = cleanup_stale(&run).expect("cleanup of a live run");
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(report.live_runs, vec![run.clone()]);
    assert_eq!(netns::list_named(&run).expect("list"), expected);

    // SIGKILL: no destructor runs, the namespaces stay behind.
    child.0.kill().expect("SIGKILL the child");
    wait_exit(&mut child, Duration::from_secs(10)).expect("child exited");
    assert_eq!(netns::list_named(&run).expect("list"), expected);
    assert!(lock_file(&run).exists());

    let report = cleanup_stale(&run).expect("cleanup of a dead run");
    assert_eq!(report.namespaces, expected);
    assert_eq!(report.lock_files, vec![lock_file(&run)]);
    assert!(report.live_runs.is_empty());
    assert!(netns::list_named(&run).expect("list").is_empty());
    assert!(!lock_file(&run).exists());
    assert!(root_links_containing(&run).is_empty());
    // Nothing left for a second pass.
    assert!(cleanup_stale(&run).expect("second cleanup").is_empty());
}

#[test]
fn ctrl_c_task_tears_down_registered_labs() {
    if !lab_available("ctrl_c_task_tears_down_registered_labs") {
        return;
    }
    let (mut child, run) = spawn_child_lab("child_process_holding_a_lab", "ctrl-c");
    assert_eq!(netns::list_named(&run).expect("list").len(), 3);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("child exited");
    assert_eq!(status.code(), Some(130), "the child tore down and exited");
    assert!(netns::list_named(&run).expect("list").is_empty());
    assert!(!lock_file(&run).exists());
}

/// Starts a TCP connection from `host` (bound to `from`, an ephemeral
/// port) to `to`; returns the local address at once and the thread that
/// waits for the connection (at most `limit`).
fn start_connect(
    lab: &Lab,
    host: &str,
    from: IpAddr,
    to: SocketAddr,
    limit: Duration,
) -> (SocketAddr, portolan_lab::NsThread<std::io::Result<()>>) {
    let (tx, rx) = mpsc::channel();
    let thread = lab
        .run_in(host, move || -> std::io::Result<()> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(to),
                socket2::Type::STREAM,
                None,
            )?;
            socket.bind(&SocketAddr::new(from, 0).into())?;
            let local = socket
                .local_addr()?
                .as_socket()
                .expect("an IP socket address");
            let _ = tx.send(local);
            socket.connect_timeout(&to.into(), limit)
        })
        .expect("enter namespace");
    let local = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("local address");
    (local, thread)
}

#[test]
fn the_tracer_names_the_rule_or_policy_that_decided_each_packet() {
    use portolan_lab::trace::{Decider, HopVerdict, PacketKey, Tracer};
    if !lab_with_nft("the_tracer_names_the_rule_or_policy_that_decided_each_packet") {
        return;
    }
    let lab = lab_with(&["client", "server"]);
    lab.load_nft(
        "server",
        "table inet portolan {\n  chain input {\n    type filter hook input priority filter; policy drop;\n\
         \x20   tcp dport 8080 accept comment \"client->server/tcp/8080\"\n\
         \x20   tcp dport 9090 reject comment \"no 9090\"\n  }\n}\n",
    )
    .expect("load server ruleset");
    lab.load_nft(
        "client",
        "table inet portolan {\n  chain output {\n    type filter hook output priority filter; policy accept;\n\
         \x20   udp dport 5353 drop\n  }\n}\n",
    )
    .expect("load client ruleset");
    let tracer = Tracer::start(&lab, &["client", "server"]).expect("start the tracer");
    let client = IpAddr::V4(lab.host("client").expect("client").ipv4());
    let server = lab.host("server").expect("server").ipv4();
    let _listener = listen_in(&lab, "server", SocketAddr::new(server.into(), 8080));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settle = |key: PacketKey| {
        let settled = tracer.settle(key);
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), settled).await })
            .ok()
            .flatten()
    };

    // A port nothing grants: the input chain's policy drops the SYN, and the
    // tracer says so long before the connection would time out.
    let to = SocketAddr::new(server.into(), 7070);
    let started = Instant::now();
    let (local, connecting) = start_connect(&lab, "client", client, to, Duration::from_secs(3));
    let hop = settle(PacketKey::tcp(local, to)).expect("a drop event for the SYN to 7070");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "settled by the event, not a timeout"
    );
    assert_eq!(hop.host, "server");
    assert_eq!(
        (hop.family.as_str(), hop.table.as_str(), hop.chain.as_str()),
        ("inet", "portolan", "input")
    );
    assert_eq!(hop.decider, Decider::Policy);
    assert_eq!(hop.verdict, HopVerdict::Drop);
    assert_eq!(
        tracer.describe(&hop),
        "policy drop of chain input of table inet portolan on host server"
    );
    assert!(
        connecting.join().expect("thread").is_err(),
        "the SYN was dropped"
    );

    // A reject rule: the drop event names the rule, its text and comment.
    let to = SocketAddr::new(server.into(), 9090);
    let (local, connecting) = start_connect(&lab, "client", client, to, Duration::from_secs(3));
    let hop = settle(PacketKey::tcp(local, to)).expect("a drop event for the SYN to 9090");
    let Decider::Rule { handle } = hop.decider else {
        panic!("a rule decided: {hop:?}");
    };
    let rule = tracer.rule_text(&hop).expect("rule text by handle");
    assert_eq!(rule.text, "tcp dport 9090 reject");
    assert_eq!(rule.comment.as_deref(), Some("no 9090"));
    assert_eq!(
        tracer.describe(&hop),
        format!("rule {handle} `tcp dport 9090 reject` (comment \"no 9090\") in chain input of table inet portolan on host server")
    );
    assert!(connecting.join().expect("thread").is_err(), "rejected");

    // A granted port: the connection succeeds, and the accept is on record
    // with its rule (no drop).
    let to = SocketAddr::new(server.into(), 8080);
    let (local, connecting) = start_connect(&lab, "client", client, to, Duration::from_secs(3));
    connecting.join().expect("thread").expect("8080 is granted");
    let key = PacketKey::tcp(local, to);
    let deadline = Instant::now() + Duration::from_secs(5);
    let accept = loop {
        let hops = tracer.hops(&key);
        if let Some(hop) = hops.iter().find(|h| h.host == "server") {
            break hop.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no accept event for the SYN to 8080"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(accept.verdict, HopVerdict::Accept);
    let rule = tracer.rule_text(&accept).expect("rule text");
    assert_eq!(rule.text, "tcp dport 8080 accept");
    assert_eq!(rule.comment.as_deref(), Some("client->server/tcp/8080"));
    assert!(tracer
        .hops(&key)
        .iter()
        .all(|h| h.verdict == HopVerdict::Accept));

    // The sender's own output chain: a UDP datagram dropped there.
    let to = SocketAddr::new(server.into(), 5353);
    let local = lab
        .run_in("client", move || {
            let socket = UdpSocket::bind(SocketAddr::new(client, 0)).expect("bind");
            let _ = socket.send_to(b"x", to);
            socket.local_addr().expect("local")
        })
        .expect("enter")
        .join()
        .expect("thread");
    let hop = settle(PacketKey::udp(local, to)).expect("a drop event in the client");
    assert_eq!(
        (hop.host.as_str(), hop.chain.as_str()),
        ("client", "output")
    );
    assert_eq!(
        tracer.rule_text(&hop).expect("text").text,
        "udp dport 5353 drop"
    );

    let stats = tracer.stats();
    assert!(stats.events > 0);
    assert_eq!(stats.overruns, 0);
    // The trace table is the lab's own and can be removed again.
    tracer.remove_tables().expect("remove the trace tables");
    let listing = lab
        .exec("server", {
            let mut c = Command::new("nft");
            c.args(["list", "tables"]);
            c
        })
        .expect("nft list tables");
    let tables = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(tables.contains("table inet portolan"), "{tables}");
    assert!(!tables.contains("portolan_trace"), "{tables}");
    tracer.stop();
}
