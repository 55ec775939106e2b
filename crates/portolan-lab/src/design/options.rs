//! How a lab run is set up and what it reports while it runs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use portolan_spec::deployment::Deployment;
use serde::Serialize;

use crate::topology::RunId;

/// Rewrites the ruleset generated for a component before it is loaded:
/// `(component id, ruleset) -> ruleset`. Meant for tests that prove the lab
/// catches a missing or an extra rule.
pub type RulesetTransform = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// What the lab reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabEvent {
    /// A phase starts.
    Phase(Phase),
    /// Checks completed so far, of all the run's checks.
    Checks {
        /// Completed.
        done: usize,
        /// In the run.
        total: usize,
    },
}

/// Called with each [`LabEvent`], from any thread.
pub type ProgressFn = Arc<dyn Fn(LabEvent) + Send + Sync>;

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Removing leftovers of killed runs.
    Cleanup,
    /// Hosts, lab deployment, plan, checks.
    Plan,
    /// Namespaces, bridge, veth pairs, addresses.
    Namespaces,
    /// Generating and loading the firewalls.
    Rules,
    /// Binding listeners and the DNS server.
    Listeners,
    /// Resolving names through the lab DNS.
    Dns,
    /// Probing.
    Probes,
    /// Deleting the lab.
    Teardown,
}

impl Phase {
    /// A word for a person.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Cleanup => "cleanup",
            Phase::Plan => "plan",
            Phase::Namespaces => "namespaces",
            Phase::Rules => "rules",
            Phase::Listeners => "listeners",
            Phase::Dns => "dns",
            Phase::Probes => "probes",
            Phase::Teardown => "teardown",
        }
    }
}

/// Which features the lab enables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureChoice {
    /// These feature ids (none: every flow with a condition on a feature is off).
    Listed(Vec<String>),
    /// Every feature of the spec.
    All,
}

impl Default for FeatureChoice {
    /// No feature, as without `--features`.
    fn default() -> Self {
        FeatureChoice::Listed(Vec::new())
    }
}

/// How a lab run is set up.
#[derive(Clone)]
pub struct LabOptions {
    /// Features enabled.
    pub features: FeatureChoice,
    /// Instances of each `system` component (dependencies have one).
    pub replicas: usize,
    /// Seed of every sampling choice: the same seed gives the same checks.
    pub seed: u64,
    /// The run id; a random one if `None`.
    pub run_id: Option<RunId>,
    /// Ports sampled per destination host that no flow names (two thirds
    /// TCP, the rest UDP); each gets a listener and must be blocked.
    pub other_ports: usize,
    /// Most negative probes per ordered pair of parties (both families
    /// counted); beyond it a deterministic sample is probed and the rest is
    /// reported as not checked.
    pub max_negative_per_pair: usize,
    /// Negative probes in all, about: above it the per-pair bound shrinks
    /// (to no fewer than 4 per pair), and when even 4 per pair would exceed
    /// it, only a sample of the pairs of parties is probed (every party
    /// still probes others and is probed by others).
    pub max_negative_total: usize,
    /// Time allowed for one attempt of a probe that must pass.
    pub positive_timeout: Duration,
    /// Further attempts of a probe that must pass, after a time-out.
    pub positive_retries: u32,
    /// Time a probe that must be blocked waits when no trace event settles
    /// it (see `trace`); no retry.
    pub negative_timeout: Duration,
    /// Probes in flight at once per host.
    pub concurrency: usize,
    /// Rewrites each generated ruleset before it is loaded.
    pub mutate_ruleset: Option<RulesetTransform>,
    /// Called with progress events.
    pub progress: Option<ProgressFn>,
    /// Decide probes by nftables trace events (see [`crate::trace`]) where
    /// the kernel allows it (true by default); false: by answers and
    /// timeouts only.
    pub trace: bool,
    /// Prove this deployment of the spec (checked against it) instead of
    /// one the lab makes up: its addresses (inside the lab's namespaces
    /// only), features, parameter values and proxies; its machines are the
    /// replicas (addresses paired in order, IPv4 with IPv6; a block stands
    /// for one machine at its first host address). `features` and
    /// `replicas` are then not used.
    pub deployment: Option<Deployment>,
    /// Load these rulesets (one per host of the deployment) instead of
    /// generating them; each is first checked by its loader's dry run.
    pub rules: Option<crate::rules::UserRules>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            features: FeatureChoice::default(),
            replicas: 1,
            seed: 0,
            run_id: None,
            other_ports: 3,
            max_negative_per_pair: 48,
            max_negative_total: 20_000,
            positive_timeout: Duration::from_millis(1000),
            positive_retries: 2,
            negative_timeout: Duration::from_millis(400),
            concurrency: 256,
            mutate_ruleset: None,
            progress: None,
            trace: true,
            deployment: None,
            rules: None,
        }
    }
}

impl fmt::Debug for LabOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabOptions")
            .field("features", &self.features)
            .field("replicas", &self.replicas)
            .field("seed", &self.seed)
            .field("run_id", &self.run_id)
            .field("other_ports", &self.other_ports)
            .field("max_negative_per_pair", &self.max_negative_per_pair)
            .field("max_negative_total", &self.max_negative_total)
            .field("trace", &self.trace)
            .field("positive_timeout", &self.positive_timeout)
            .field("positive_retries", &self.positive_retries)
            .field("negative_timeout", &self.negative_timeout)
            .field("concurrency", &self.concurrency)
            .field("mutate_ruleset", &self.mutate_ruleset.is_some())
            .field("progress", &self.progress.is_some())
            .field(
                "deployment",
                &self.deployment.as_ref().map(|d| d.source.name.clone()),
            )
            .field("rules", &self.rules.as_ref().map(|r| r.dir.clone()))
            .finish()
    }
}
