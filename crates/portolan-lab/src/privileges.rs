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
//! namespace. The crate's tests pass this way as an unprivileged user. This
//! crate does not re-execute itself in such a namespace: the caller chooses
//! how to obtain the privileges. In a user namespace the unprivileged ICMP
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
