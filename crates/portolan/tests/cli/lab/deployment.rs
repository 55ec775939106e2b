//! `portolan lab -d`: a deployment the lab cannot use is refused, and so
//! are flags that belong to the lab's own deployment. (A deployment proven
//! at its own addresses is tested beside the lab crate.)

use super::{portolan, root};

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
