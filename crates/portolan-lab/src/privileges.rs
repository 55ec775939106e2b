//! Detection of the privileges a lab needs.
//!
//! Building a lab needs two capabilities in the current user namespace:
//! `CAP_SYS_ADMIN` (to create network namespaces, bind-mount them under
//! `/run/netns` and enter them with `setns`) and `CAP_NET_ADMIN` (to create
//! links and configure addresses and firewalls). Root has both.
//!
//! Unprivileged users can get both inside a user namespace:
//!
//! ```text
//! unshare --user --map-root-user --net --mount \
//!     sh -c 'mount -t tmpfs tmpfs /run && portolan lab …'
//! ```
//!
//! The new network namespace keeps the lab away from the machine's own, and
//! the tmpfs on `/run` (private to the new mount namespace) gives a writable
//! `/run/netns` and lock directory; everything disappears with the user
//! namespace. The crate's tests pass this way as an unprivileged user.
//! [`enter_user_namespace`] does the same from inside the process (which
//! `portolan lab` does when it is not root); the caller chooses. In a user namespace the unprivileged ICMP
//! echo setting of host namespaces is skipped (raw sockets work there).

use crate::error::LabError;

/// Bit number of `CAP_NET_ADMIN` in the capability sets.
const CAP_NET_ADMIN: u32 = 12;
/// Bit number of `CAP_SYS_ADMIN` in the capability sets.
const CAP_SYS_ADMIN: u32 = 21;

/// Checks that the process holds `CAP_SYS_ADMIN` and `CAP_NET_ADMIN` in its
/// effective set (as root does), and says which are missing otherwise.
pub fn check_privileges() -> Result<(), LabError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| LabError::io("read the process capabilities", "/proc/self/status", e))?;
    let effective = parse_cap_eff(&status).ok_or_else(|| LabError::InsufficientPrivileges {
        missing: "CAP_SYS_ADMIN and CAP_NET_ADMIN (the effective capability set could not be \
                  read from /proc/self/status)"
            .to_string(),
    })?;
    missing_capabilities(effective).map_or(Ok(()), |missing| {
        Err(LabError::InsufficientPrivileges { missing })
    })
}

/// Moves this process into a private user namespace in which it is root
/// (the caller's user and group mapped to 0), with a new network namespace
/// and a new mount namespace whose `/run` is a private tmpfs: the lab can
/// then run without root, invisible to the rest of the machine, and all of
/// it disappears with the process.
///
/// The kernel accepts this only while the process has a single thread: call
/// it first thing (before any runtime or thread is started). Fails with
/// [`LabError::UserNamespace`] when the machine does not allow unprivileged
/// user namespaces.
pub fn enter_user_namespace() -> Result<(), LabError> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let failed = |step: &str, e: &dyn std::fmt::Display| LabError::UserNamespace {
        reason: format!("{step}: {e}"),
    };
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)
        .map_err(|e| failed("unshare a user, mount and network namespace", &e))?;
    // Writing gid_map needs setgroups denied first (for unprivileged users).
    match std::fs::write("/proc/self/setgroups", "deny") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed("deny setgroups", &e)),
    }
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n"))
        .map_err(|e| failed("map the user to root", &e))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n"))
        .map_err(|e| failed("map the group to root", &e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| failed("make the mounts private", &e))?;
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .map_err(|e| failed("mount a private tmpfs on /run", &e))?;
    check_privileges()
}

/// Whether the process holds the lab's privileges; see [`check_privileges`].
pub fn has_privileges() -> bool {
    check_privileges().is_ok()
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn missing_capabilities(effective: u64) -> Option<String> {
    let mut missing = Vec::new();
    if effective & (1 << CAP_SYS_ADMIN) == 0 {
        missing.push("CAP_SYS_ADMIN");
    }
    if effective & (1 << CAP_NET_ADMIN) == 0 {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_missing_capabilities() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(root), Some(0x1ff_ffff_ffff));
        assert_eq!(missing_capabilities(0x1ff_ffff_ffff), None);
        assert_eq!(
            missing_capabilities(0).as_deref(),
            Some("CAP_SYS_ADMIN and CAP_NET_ADMIN")
        );
        assert_eq!(
            missing_capabilities(1 << CAP_SYS_ADMIN).as_deref(),
            Some("CAP_NET_ADMIN")
        );
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        let err = LabError::InsufficientPrivileges {
            missing: "CAP_NET_ADMIN".into(),
        };
        let text = err.to_string();
        assert!(text.contains("CAP_NET_ADMIN") && text.contains("root"));
        assert!(text.contains("unshare"));
    }
}
