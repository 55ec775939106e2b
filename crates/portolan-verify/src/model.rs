//! The answer of a verification: per input, every planned flow admitted or
//! blocked (with the deciding rules), the excess openings, the assumptions
//! made, and the fixes.

use serde::Serialize;

/// Which kind of policy an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// Kubernetes NetworkPolicies.
    Kubernetes,
    /// AWS security groups.
    Aws,
    /// A host's nftables ruleset.
    Nftables,
    /// A host's iptables ruleset.
    Iptables,
}

impl InputKind {
    /// The word used in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            InputKind::Kubernetes => "kubernetes",
            InputKind::Aws => "aws",
            InputKind::Nftables => "nftables",
            InputKind::Iptables => "iptables",
        }
    }
}

/// A rule of the input, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// What it is, e.g. `NetworkPolicy shop/api-ingress, ingress rule 2`
    /// or `inet filter input handle 7: tcp dport 22 accept`.
    pub text: String,
    /// Where it is written (`file:line:column`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its comment, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What the input does with a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every part of it is admitted.
    Admitted,
    /// Some part of it is not.
    Blocked,
    /// The input governs neither end (e.g. a NetworkPolicy file and a flow
    /// between two hosts outside the cluster).
    NotGoverned,
    /// The input governs it, but it could not be checked (the detail says
    /// why): never a pass.
    Untested,
}

/// One planned flow against one input.
#[derive(Debug, Clone, Serialize)]
pub struct FlowCheck {
    /// The flow id.
    pub flow: String,
    /// Source component or endpoint id.
    pub from: String,
    /// Destination component or endpoint id.
    pub to: String,
    /// Protocol and ports, e.g. `tcp 5432`.
    pub traffic: String,
    /// Whether the spec requires it (else: optional, enabled).
    pub required: bool,
    /// The answer.
    pub verdict: Verdict,
    /// Rules that admit it (admitted), or that decide the block (blocked).
    pub rules: Vec<RuleRef>,
    /// The answer in words: what is missing and on which side.
    pub detail: String,
}

/// Something the input admits that no planned flow needs.
#[derive(Debug, Clone, Serialize)]
pub struct Excess {
    /// The component whose policy opens it.
    pub subject: String,
    /// `ingress` (to the subject) or `egress` (from it).
    pub direction: Direction,
    /// The peer component, when the excess is to or from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The peers, for a person (`any (0.0.0.0/0, ::/0)`, CIDRs, a component).
    pub peers: String,
    /// Protocols and ports, for a person.
    pub traffic: String,
    /// Whether it opens to any address or any peer.
    pub any: bool,
    /// The rule that opens it.
    pub rule: RuleRef,
}

/// A direction of traffic, seen from a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic to the component.
    Ingress,
    /// Traffic from the component.
    Egress,
}

impl Direction {
    /// The word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The smallest addition to the input that admits a blocked flow, in the
/// input's own syntax.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// The flow it admits.
    pub flow: String,
    /// What to add (YAML, JSON, nft or iptables lines).
    pub text: String,
}

/// One input's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// What kind of input.
    pub kind: InputKind,
    /// The file, as given.
    pub source: String,
    /// The host it belongs to (host rulesets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Every planned flow.
    pub checks: Vec<FlowCheck>,
    /// Openings beyond the plan.
    pub excess: Vec<Excess>,
    /// What the verifier could not reproduce or had to assume.
    pub assumptions: Vec<String>,
    /// Additions that would admit the blocked flows.
    pub fixes: Vec<Fix>,
}

impl Section {
    /// A section without findings yet.
    pub fn new(kind: InputKind, source: impl Into<String>, host: Option<String>) -> Self {
        Self {
            kind,
            source: source.into(),
            host,
            checks: Vec::new(),
            excess: Vec::new(),
            assumptions: Vec::new(),
            fixes: Vec::new(),
        }
    }
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The system's name.
    pub system: String,
    /// The deployment's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// One per input, in the order given.
    pub sections: Vec<Section>,
}

impl Verification {
    /// Required flows blocked by some input, or that an input governs but
    /// could not check.
    pub fn blocked_required(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.checks)
            .filter(|c| c.required && matches!(c.verdict, Verdict::Blocked | Verdict::Untested))
            .count()
    }

    /// Flows (required or optional) blocked by some input.
    pub fn blocked(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.checks)
            .filter(|c| c.verdict == Verdict::Blocked)
            .count()
    }

    /// Excess openings over all inputs.
    pub fn excess(&self) -> usize {
        self.sections.iter().map(|s| s.excess.len()).sum()
    }

    /// Whether the answer is "yes": every required flow admitted by every
    /// input, and with `strict`, nothing open beyond the plan.
    pub fn passes(&self, strict: bool) -> bool {
        self.blocked_required() == 0 && (!strict || self.excess() == 0)
    }
}
