//! `portolan lab -d`: the user's own deployment proven in the lab, at its
//! addresses (documentation ranges, inside the lab's namespaces only).

use std::net::IpAddr;

use portolan_lab::design::{Family, Transport};
use portolan_lab::{run_lab, Expect, LabOptions, Verdict};
use portolan_spec::deployment::load_deployment;
use portolan_spec::SourceFile;

use super::{assert_holds, lab_available, portolan, root, spec};

fn circonus_deployment(file: &str) -> portolan_spec::deployment::Deployment {
    let spec = spec("circonus-inside");
    let path = root().join("examples/circonus-inside").join(file);
    let source = SourceFile::read(&path).expect("deployment readable");
    load_deployment(source, &spec)
        .expect("deployment valid")
        .value
}

#[test]
fn circonus_deployment_holds_at_its_own_addresses() {
    if !lab_available("circonus_deployment_holds_at_its_own_addresses") {
        return;
    }
    let spec = spec("circonus-inside");
    let options = LabOptions {
        deployment: Some(circonus_deployment("deployment.yaml")),
        ..LabOptions::default()
    };
    let (report, artifacts) = run_lab(&spec, &options).expect("the lab runs");
    assert_holds(&report);
    // The deployment's machines, at its addresses: three data-storage
    // nodes, two IPv4-only fault-detection nodes.
    let addresses = |party: &str| -> Vec<IpAddr> {
        report
            .hosts
            .iter()
            .filter(|h| h.party == party)
            .flat_map(|h| h.addresses.clone())
            .collect()
    };
    assert_eq!(
        addresses("data-storage"),
        [
            "192.0.2.21",
            "2001:db8:c::21",
            "192.0.2.22",
            "2001:db8:c::22",
            "192.0.2.23",
            "2001:db8:c::23"
        ]
        .map(|a| a.parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        addresses("fault-detection"),
        ["192.0.2.31", "192.0.2.32"].map(|a| a.parse::<IpAddr>().unwrap())
    );
    let from_fd: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.check.from == "fault-detection" && r.check.protocol != Transport::Multicast)
        .collect();
    assert!(!from_fd.is_empty());
    assert!(
        from_fd.iter().all(|r| r.check.family == Family::Ipv4),
        "an IPv4-only machine is probed over IPv4 only"
    );
    // Package updates go through the proxy at its address and port.
    let proxied: Vec<_> = report
        .results
        .iter()
        .filter(|r| {
            r.check
                .flow
                .as_deref()
                .is_some_and(|f| f.contains("updates-circonus"))
        })
        .filter(|r| r.check.expect == Expect::Open)
        .collect();
    assert!(!proxied.is_empty(), "the proxied flow is probed");
    for r in &proxied {
        assert_eq!(r.check.target.to_string(), "192.0.2.60:3128");
        assert_eq!(r.verdict, Verdict::Passed);
    }
    // The rulesets are named as `generate` names them, by host.
    assert!(artifacts
        .rulesets
        .iter()
        .any(|(file, _)| file == "data-storage.nft"));
    assert_eq!(
        artifacts.deployment,
        std::fs::read_to_string(root().join("examples/circonus-inside/deployment.yaml")).unwrap()
    );
}

#[test]
fn shared_hosts_and_conflicting_flags_are_refused() {
    // Components sharing a host: a clear refusal (exit 1), before any lab.
    let spec_path = root().join("examples/circonus-inside/portolan.yaml");
    let small = root().join("examples/circonus-inside/deployment-small.yaml");
    let out = portolan()
        .args(["lab"])
        .arg(&spec_path)
        .arg("-d")
        .arg(&small)
        .args(["--run-id", "ptl-dsmall", "--no-user-namespace"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains("cannot run") {
        return; // no privileges here: the refusal needs none, but the lab checks first
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("share host `app`"), "{stderr}");
    // --features and --replicas belong to the lab's own deployment.
    let out = portolan()
        .args(["lab"])
        .arg(&spec_path)
        .arg("-d")
        .arg(&small)
        .args(["--replicas", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
