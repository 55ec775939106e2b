//! The error type of the lab.

use std::path::PathBuf;

/// Everything that can go wrong while describing, building, using or tearing
/// down a lab.
///
/// Every message names the resource (namespace, host, link, path) it is about
/// and, where the fix is known, says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The process lacks the capabilities the lab needs.
    #[error(
        "portolan lab needs {missing} to create network namespaces, bind-mount them under \
         /run/netns and configure their links; run it as root (for example with sudo), or \
         inside a user namespace that grants them: \
         `unshare --user --map-root-user --net --mount sh -c 'mount -t tmpfs tmpfs /run && …'`"
    )]
    InsufficientPrivileges {
        /// The missing capabilities, e.g. `CAP_NET_ADMIN and CAP_SYS_ADMIN`.
        missing: String,
    },

    /// Without privileges, a private user namespace could not be entered.
    #[error(
        "portolan lab needs CAP_SYS_ADMIN and CAP_NET_ADMIN; without root it runs in a private \
         user namespace, which this machine refuses ({reason}). Run it as root (for example \
         with sudo), or allow unprivileged user namespaces (sysctl user.max_user_namespaces, \
         kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)"
    )]
    UserNamespace {
        /// The step that failed and the system's error.
        reason: String,
    },

    /// A host or run name is not acceptable.
    #[error("invalid lab name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A host was declared twice in a topology.
    #[error("host {0:?} is declared twice in the lab topology")]
    DuplicateHost(String),

    /// An address is outside the lab-only ranges or used twice.
    #[error("invalid lab address {address} for host {host:?}: {reason}")]
    InvalidAddress {
        /// The host the address was meant for.
        host: String,
        /// The rejected address.
        address: std::net::IpAddr,
        /// Why it was rejected.
        reason: String,
    },

    /// The topology holds no room for another host.
    #[error("the lab topology is full: at most {0} hosts fit in the lab address range")]
    TopologyFull(usize),

    /// A host name that is not part of the lab's topology.
    #[error("no host {0:?} in this lab")]
    UnknownHost(String),

    /// A namespace with the name already exists (a run with the same prefix
    /// is live, an earlier run's namespace still has a process inside, or it
    /// is not a lab's at all: it is never removed).
    #[error(
        "network namespace {0:?} already exists; another lab uses this run prefix, an \
         earlier run's namespace still has a process inside, or it is not a lab's \
         (it is left alone: choose another run id)"
    )]
    NamespaceExists(String),

    /// Another live lab (in this or another process) holds the run id.
    #[error("lab run {0} is in use by a live lab; choose another run id")]
    RunInUse(String),

    /// An operation on a network namespace failed.
    #[error("network namespace {namespace:?}: cannot {action}: {source}")]
    Namespace {
        /// The namespace concerned.
        namespace: String,
        /// What was being done, e.g. `bind-mount it on /run/netns/NAME`.
        action: String,
        /// The system error.
        #[source]
        source: std::io::Error,
    },

    /// A netlink request failed.
    #[error("netlink request failed in namespace {namespace:?}: {action}: {source}")]
    Netlink {
        /// The namespace whose netlink socket carried the request.
        namespace: String,
        /// What was being done, e.g. `create veth ptl-p0`.
        action: String,
        /// The error reported by rtnetlink or the kernel.
        #[source]
        source: rtnetlink::Error,
    },

    /// A file-system or process operation failed.
    #[error("{action} ({path}): {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The file or program concerned.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },

    /// The `nft` program was not found.
    #[error(
        "the `nft` program was not found in PATH, /usr/sbin or /sbin; install the Debian \
         package `nftables` (apt-get install nftables)"
    )]
    NftMissing,

    /// `nft` rejected a ruleset.
    #[error("nft rejected the ruleset for host {host:?} ({status}): {stderr}")]
    NftFailed {
        /// The host whose namespace the ruleset was loaded in.
        host: String,
        /// How `nft` exited.
        status: std::process::ExitStatus,
        /// What `nft` wrote on standard error.
        stderr: String,
    },

    /// A thread running inside a namespace panicked.
    #[error("the thread running in namespace {namespace:?} panicked: {message}")]
    ThreadPanicked {
        /// The namespace the thread had entered.
        namespace: String,
        /// The panic message, when it was a string.
        message: String,
    },

    /// The lab was already torn down.
    #[error("lab {0} has already been torn down")]
    Destroyed(String),

    /// The agent of a host (its listeners and probes) failed.
    #[error("lab host {host:?}: {message}")]
    Agent {
        /// The host.
        host: String,
        /// What went wrong.
        message: String,
    },

    /// Several errors happened during a teardown; all are listed.
    #[error("teardown of lab resources failed: {}", join_errors(.0))]
    Teardown(Vec<LabError>),
}

impl LabError {
    /// A name given that the lab cannot use is the user's; a panicked or
    /// destroyed lab thread is a bug; everything else is this machine.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        use portolan_spec::ErrorKind;
        match self {
            LabError::InvalidName { .. } => ErrorKind::Input,
            LabError::ThreadPanicked { .. } => ErrorKind::Internal,
            _ => ErrorKind::Environment,
        }
    }
}

fn join_errors(errors: &[LabError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl LabError {
    pub(crate) fn namespace(
        namespace: impl Into<String>,
        action: impl Into<String>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        LabError::Namespace {
            namespace: namespace.into(),
            action: action.into(),
            source: source.into(),
        }
    }

    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        LabError::Io {
            action: action.into(),
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn netlink(
        namespace: impl Into<String>,
        action: impl Into<String>,
        source: rtnetlink::Error,
    ) -> Self {
        LabError::Netlink {
            namespace: namespace.into(),
            action: action.into(),
            source,
        }
    }
}

/// Text of a panic payload, for [`LabError::ThreadPanicked`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
