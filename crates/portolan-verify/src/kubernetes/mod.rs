//! Kubernetes NetworkPolicies, evaluated by their documented semantics
//! (Kubernetes documentation, "Network Policies"; the `networking.k8s.io/v1`
//! API reference). The rules implemented, each with a test in `tests`:
//!
//! - R1 "By default, a pod is non-isolated for egress/ingress; all
//!   connections are allowed": a pod no policy selects for a direction
//!   admits everything in it.
//! - R2 "A pod is isolated for ingress/egress if there is any NetworkPolicy
//!   that both selects the pod and has Ingress/Egress in its policyTypes";
//!   then only what some rule of such a policy allows is admitted.
//! - R3 "Network policies do not conflict; they are additive": the allowed
//!   set is the union of the rules of every selecting policy (order does not
//!   matter).
//! - R4 "For a connection from a source pod to a destination pod to be
//!   allowed, both the egress policy on the source pod and the ingress
//!   policy on the destination pod need to allow the connection."
//! - R5 policyTypes defaulting: "If no policyTypes are specified on a
//!   NetworkPolicy then by default Ingress will always be set and Egress
//!   will be set if the NetworkPolicy has any egress rules."
//! - R6 peers: `podSelector` alone selects pods of the policy's namespace;
//!   `namespaceSelector` alone selects all pods of the matching namespaces;
//!   both in one peer item select the matching pods in the matching
//!   namespaces (AND), while separate items are alternatives (OR).
//! - R7 `ipBlock`: "CIDR ranges to allow as ingress sources or egress
//!   destinations"; `except` removes ranges. "These should be
//!   cluster-external IPs": pods are matched by selectors, ipBlocks match
//!   the addresses of endpoints outside the cluster.
//! - R8 a rule with empty or missing `from`/`to` matches all peers; empty
//!   or missing `ports` matches all ports (and protocols); a port item's
//!   protocol defaults to TCP; without `port` it matches every port of the
//!   protocol; `endPort` makes `port..=endPort` a range; a named port is
//!   the container port of that name on the destination pod.
//! - R9 a namespace carries the label `kubernetes.io/metadata.name` with
//!   its name (the NamespaceDefaultLabelName feature, GA in 1.22).

mod load;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use portolan_firewall::kubernetes::NAMESPACE_NAME_LABEL;
use portolan_spec::plan::{Endpoint, Plan, PlannedFlow};

pub use load::{LoadedPolicy, Manifests, NamedPort, Workload};

use crate::error::{Code, Position, VerifyError};
use crate::model::{Direction, Excess, Fix, FlowCheck, InputKind, RuleRef, Section, Verdict};
use crate::sets::{NetSet, RangeSet};
use crate::space::{
    self, proto, ExcessGroup, ExcessPeer, Gap, Grant, Peers, Request, Traffic, MAX_PORT,
};
use crate::{flow_traffic_text, peers_text, request_traffic, traffic_text};

/// A pod of the deployment: a component with a Kubernetes placement.
#[derive(Debug, Clone)]
struct Pod {
    id: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    ports: Vec<NamedPort>,
}

/// A rule of a policy, for the report.
#[derive(Debug, Clone)]
struct RuleInfo {
    rule: RuleRef,
    /// Pods beyond the deployment's components that the rule's peers select
    /// (an empty selector): said in the excess, since they cannot be listed.
    broad: Vec<(String, bool)>,
}

/// The evaluator: pods, namespaces' labels, policies and their grants.
struct Evaluator<'a> {
    plan: &'a Plan,
    manifests: &'a Manifests,
    pods: Vec<Pod>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    rules: Vec<RuleInfo>,
    /// Per pod and direction: `None` when no policy isolates it, else the grants.
    grants: BTreeMap<(String, Direction), Option<Vec<Grant>>>,
    /// Per pod and direction: the policies that isolate it.
    isolating: BTreeMap<(String, Direction), Vec<RuleRef>>,
    assumptions: BTreeSet<String>,
}

/// Verifies the plan's flows against NetworkPolicies read from `source`.
pub fn verify(plan: &Plan, manifests: &Manifests, source: &str) -> Result<Section, VerifyError> {
    let mut ev = Evaluator::new(plan, manifests)?;
    ev.build()?;
    let mut section = Section::new(InputKind::Kubernetes, source, None);
    for flow in &plan.flows {
        let (check, fixes) = ev.check(flow);
        section.checks.push(check);
        section.fixes.extend(fixes);
    }
    section.excess = ev.excess();
    for (kind, count) in &manifests.skipped {
        ev.assumptions.insert(format!(
            "{count} document(s) of kind {kind} skipped (not a NetworkPolicy)"
        ));
    }
    if ev.pods.is_empty() {
        ev.assumptions.insert(
            "no component has a kubernetes placement in the deployment: no flow is governed".into(),
        );
    }
    section.assumptions = ev.assumptions.into_iter().collect();
    Ok(section)
}

/// Whether a label selector matches labels (an empty selector matches all).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                // Validated in `check_selector`: DoesNotExist.
                _ => value.is_none(),
            }
        })
}

fn is_empty_selector(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
}

fn check_selector(selector: &LabelSelector, at: &Position) -> Result<(), VerifyError> {
    for e in selector.match_expressions.iter().flatten() {
        if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&e.operator.as_str()) {
            return Err(VerifyError::input_hint(
                Code::InvalidPolicy,
                at.clone(),
                format!("unknown label selector operator `{}`", e.operator),
                "operators are In, NotIn, Exists and DoesNotExist",
            ));
        }
    }
    Ok(())
}

fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        parts.push(format!(
            "{} {} ({})",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join(",")
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

fn policy_name(policy: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        namespace_of(policy),
        policy.metadata.name.as_deref().unwrap_or("(unnamed)")
    )
}

/// A policy without namespace is created in `default` (as `kubectl apply` without `-n` does).
fn namespace_of(policy: &NetworkPolicy) -> &str {
    policy.metadata.namespace.as_deref().unwrap_or("default")
}

/// R5: the directions a policy isolates.
fn policy_types(spec: &NetworkPolicySpec, at: &Position) -> Result<Vec<Direction>, VerifyError> {
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => types
            .iter()
            .map(|t| match t.as_str() {
                "Ingress" => Ok(Direction::Ingress),
                "Egress" => Ok(Direction::Egress),
                other => Err(VerifyError::input_hint(
                    Code::InvalidPolicy,
                    at.clone(),
                    format!("unknown policyType `{other}`"),
                    "policyTypes holds Ingress and/or Egress",
                )),
            })
            .collect(),
        _ => {
            let mut types = vec![Direction::Ingress];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push(Direction::Egress);
            }
            Ok(types)
        }
    }
}

fn protocol_number(name: Option<&str>, at: &Position) -> Result<u128, VerifyError> {
    match name.unwrap_or("TCP") {
        "TCP" => Ok(proto::TCP),
        "UDP" => Ok(proto::UDP),
        "SCTP" => Ok(proto::SCTP),
        other => Err(VerifyError::input_hint(
            Code::InvalidPolicy,
            at.clone(),
            format!("unknown protocol `{other}` in a NetworkPolicy port"),
            "protocols are TCP, UDP and SCTP",
        )),
    }
}

fn block_nets(block: &IPBlock, at: &Position) -> Result<NetSet, VerifyError> {
    let parse = |text: &str| {
        text.parse::<IpNet>().map_err(|_| {
            VerifyError::input_hint(
                Code::InvalidPolicy,
                at.clone(),
                format!("ipBlock `{text}` is not a CIDR"),
                "write a block such as 10.0.0.0/8 or 2001:db8::/32",
            )
        })
    };
    let cidr = parse(&block.cidr)?;
    let mut nets = NetSet::of(&[cidr.trunc()]);
    for except in block.except.iter().flatten() {
        let e = parse(except)?;
        if !nets.contains_all(&NetSet::of(&[e])) {
            return Err(VerifyError::input(
                Code::InvalidPolicy,
                at.clone(),
                format!(
                    "ipBlock except `{except}` is outside its cidr `{}`",
                    block.cidr
                ),
            ));
        }
        nets = nets.difference(&NetSet::of(&[e.trunc()]));
    }
    Ok(nets)
}

impl<'a> Evaluator<'a> {
    fn new(plan: &'a Plan, manifests: &'a Manifests) -> Result<Self, VerifyError> {
        let pods: Vec<Pod> = plan
            .components
            .iter()
            .filter_map(|c| {
                let k = c.kubernetes.as_ref()?;
                // The pods carry at least the deployment's labels; a workload
                // manifest whose template has them tells the rest and the
                // named ports.
                let workload = manifests.workloads.iter().find(|w| {
                    w.namespace == k.namespace
                        && k.pod_selector
                            .iter()
                            .all(|(l, v)| w.labels.get(l) == Some(v))
                });
                let mut labels = k.pod_selector.clone();
                if let Some(w) = workload {
                    labels.extend(w.labels.clone());
                }
                Some(Pod {
                    id: c.id.clone(),
                    namespace: k.namespace.clone(),
                    labels,
                    ports: workload.map(|w| w.ports.clone()).unwrap_or_default(),
                })
            })
            .collect();
        let mut namespace_labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ns in pods
            .iter()
            .map(|p| &p.namespace)
            .chain(manifests.namespaces.keys())
        {
            let mut labels = manifests.namespaces.get(ns).cloned().unwrap_or_default();
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), ns.clone());
            namespace_labels.insert(ns.clone(), labels);
        }
        Ok(Self {
            plan,
            manifests,
            pods,
            namespace_labels,
            rules: Vec::new(),
            grants: BTreeMap::new(),
            isolating: BTreeMap::new(),
            assumptions: BTreeSet::new(),
        })
    }

    fn pod(&self, id: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.id == id)
    }

    /// Checks every policy, then computes each pod's grants per direction.
    fn build(&mut self) -> Result<(), VerifyError> {
        let known: BTreeSet<&str> = self.pods.iter().map(|p| p.namespace.as_str()).collect();
        let manifests = self.manifests;
        for loaded in &manifests.policies {
            let ns = namespace_of(&loaded.policy);
            if !known.is_empty() && !known.contains(ns) {
                return Err(VerifyError::input_hint(Code::UnknownNamespace,
                    loaded.at.clone(),
                    format!(
                        "NetworkPolicy {} is in namespace `{ns}`, where the deployment places no component",
                        policy_name(&loaded.policy)
                    ),
                    format!(
                        "the deployment's namespaces are {}; check the deployment's kubernetes placements or leave this policy out",
                        known.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        for pod_index in 0..self.pods.len() {
            for direction in [Direction::Ingress, Direction::Egress] {
                self.build_pod(pod_index, direction)?;
            }
        }
        Ok(())
    }

    fn build_pod(&mut self, pod_index: usize, direction: Direction) -> Result<(), VerifyError> {
        let pod = self.pods[pod_index].clone();
        let manifests = self.manifests;
        let mut grants: Option<Vec<Grant>> = None;
        let mut isolating = Vec::new();
        let no_spec = NetworkPolicySpec::default();
        let everything = LabelSelector::default();
        for loaded in &manifests.policies {
            let policy = &loaded.policy;
            let spec = policy.spec.as_ref().unwrap_or(&no_spec);
            let pod_selector = spec.pod_selector.as_ref().unwrap_or(&everything);
            check_selector(pod_selector, &loaded.at)?;
            if namespace_of(policy) != pod.namespace
                || !policy_types(spec, &loaded.at)?.contains(&direction)
                || !selects(pod_selector, &pod.labels)
            {
                continue;
            }
            isolating.push(RuleRef {
                text: format!(
                    "NetworkPolicy {} (selects {} for {})",
                    policy_name(policy),
                    pod.id,
                    direction.as_str()
                ),
                location: Some(loaded.at.to_string()),
                comment: None,
            });
            let list = grants.get_or_insert_with(Vec::new);
            #[allow(clippy::type_complexity)]
            let rules: Vec<(
                Option<&[NetworkPolicyPeer]>,
                Option<&[NetworkPolicyPort]>,
            )> = match direction {
                Direction::Ingress => spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r: &NetworkPolicyIngressRule| (r.from.as_deref(), r.ports.as_deref()))
                    .collect(),
                Direction::Egress => spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (r.to.as_deref(), r.ports.as_deref()))
                    .collect(),
            };
            for (index, (peers, ports)) in rules.into_iter().enumerate() {
                let rule = self.rules.len();
                let (peers, broad) = self.peers(policy, peers, &loaded.at)?;
                self.rules.push(RuleInfo {
                    rule: RuleRef {
                        text: format!(
                            "NetworkPolicy {}, {} rule {}",
                            policy_name(policy),
                            direction.as_str(),
                            index + 1
                        ),
                        location: Some(loaded.at.to_string()),
                        comment: None,
                    },
                    broad,
                });
                self.port_grants(list, &pod, direction, peers, ports, rule, &loaded.at)?;
            }
        }
        self.grants.insert((pod.id.clone(), direction), grants);
        self.isolating.insert((pod.id, direction), isolating);
        Ok(())
    }

    /// R6, R7, R8: the peers of a rule; and the broad selectors among them.
    #[allow(clippy::type_complexity)]
    fn peers(
        &self,
        policy: &NetworkPolicy,
        items: Option<&[NetworkPolicyPeer]>,
        at: &Position,
    ) -> Result<(Peers, Vec<(String, bool)>), VerifyError> {
        let items = match items {
            None | Some([]) => return Ok((Peers::everyone(), Vec::new())),
            Some(items) => items,
        };
        let mut peers = Peers::default();
        let mut broad = Vec::new();
        let own_ns = namespace_of(policy);
        for item in items {
            if let Some(block) = &item.ip_block {
                if item.pod_selector.is_some() || item.namespace_selector.is_some() {
                    return Err(VerifyError::input_hint(Code::InvalidPolicy,
                        at.clone(),
                        format!("a peer of {} has an ipBlock and a selector", policy_name(policy)),
                        "a peer item is an ipBlock, or a podSelector and/or namespaceSelector, never both",
                    ));
                }
                peers.nets = peers.nets.union(&block_nets(block, at)?);
                continue;
            }
            if item.pod_selector.is_none() && item.namespace_selector.is_none() {
                return Err(VerifyError::input(
                    Code::InvalidPolicy,
                    at.clone(),
                    format!(
                        "a peer of {} selects nothing (empty peer item)",
                        policy_name(policy)
                    ),
                ));
            }
            if let Some(s) = &item.pod_selector {
                check_selector(s, at)?;
            }
            if let Some(s) = &item.namespace_selector {
                check_selector(s, at)?;
            }
            let ns_ok = |ns: &str| match &item.namespace_selector {
                None => ns == own_ns,
                Some(sel) => self
                    .namespace_labels
                    .get(ns)
                    .is_some_and(|labels| selects(sel, labels)),
            };
            for pod in &self.pods {
                let pod_ok = item
                    .pod_selector
                    .as_ref()
                    .is_none_or(|s| selects(s, &pod.labels));
                if ns_ok(&pod.namespace) && pod_ok {
                    peers.ids.insert(pod.id.clone());
                }
            }
            let every_pod = item.pod_selector.as_ref().is_none_or(is_empty_selector);
            if every_pod {
                match &item.namespace_selector {
                    Some(ns) if is_empty_selector(ns) => {
                        broad.push(("every pod of every namespace".to_owned(), true))
                    }
                    Some(ns) => broad.push((
                        format!("every pod of the namespaces labelled {}", selector_text(ns)),
                        false,
                    )),
                    None => broad.push((format!("every pod of namespace {own_ns}"), false)),
                }
            }
        }
        Ok((peers, broad))
    }

    /// R8: one grant per port item (named ports resolved per destination pod).
    #[allow(clippy::too_many_arguments)]
    fn port_grants(
        &mut self,
        list: &mut Vec<Grant>,
        pod: &Pod,
        direction: Direction,
        peers: Peers,
        ports: Option<&[NetworkPolicyPort]>,
        rule: usize,
        at: &Position,
    ) -> Result<(), VerifyError> {
        let ports = match ports {
            None | Some([]) => {
                list.push(Grant {
                    peers,
                    traffic: Traffic::all(),
                    rule,
                });
                return Ok(());
            }
            Some(p) => p,
        };
        for item in ports {
            let protocol = protocol_number(item.protocol.as_deref(), at)?;
            match &item.port {
                None => list.push(Grant {
                    peers: peers.clone(),
                    traffic: Traffic::of(protocol, RangeSet::range(0, MAX_PORT)),
                    rule,
                }),
                Some(IntOrString::Int(p)) => {
                    let end = item.end_port.unwrap_or(*p);
                    if !(1..=65535).contains(p) || end < *p || end > 65535 {
                        return Err(VerifyError::input(
                            Code::InvalidPolicy,
                            at.clone(),
                            format!(
                                "port {p}{} is not a port range of 1..65535",
                                item.end_port
                                    .map(|e| format!(", endPort {e}"))
                                    .unwrap_or_default()
                            ),
                        ));
                    }
                    list.push(Grant {
                        peers: peers.clone(),
                        traffic: Traffic::of(protocol, RangeSet::range(*p as u128, end as u128)),
                        rule,
                    });
                }
                Some(IntOrString::String(name)) => {
                    if item.end_port.is_some() {
                        return Err(VerifyError::input(Code::InvalidPolicy,
                            at.clone(),
                            format!("endPort with the named port `{name}`: endPort needs a numeric port"),
                        ));
                    }
                    // The named port is the destination pod's: the subject
                    // for ingress, each peer pod for egress.
                    let destinations: Vec<(Peers, &Pod)> = match direction {
                        Direction::Ingress => vec![(peers.clone(), pod)],
                        Direction::Egress => peers
                            .ids
                            .iter()
                            .filter_map(|id| self.pods.iter().find(|p| &p.id == id))
                            .map(|p| (Peers::id(&p.id), p))
                            .collect(),
                    };
                    if direction == Direction::Egress && (peers.everyone || !peers.nets.is_empty())
                    {
                        self.assumptions.insert(format!(
                            "{}: named port `{name}` towards addresses outside the cluster cannot be resolved; it admits nothing here",
                            at
                        ));
                    }
                    for (who, dest) in destinations {
                        let found = dest.ports.iter().find(|np| {
                            np.name == *name
                                && protocol_number(Some(&np.protocol), at).ok() == Some(protocol)
                        });
                        match found {
                            Some(np) => list.push(Grant {
                                peers: who,
                                traffic: Traffic::of(
                                    protocol,
                                    RangeSet::range(np.port as u128, np.port as u128),
                                ),
                                rule,
                            }),
                            None => {
                                self.assumptions.insert(format!(
                                    "{at}: named port `{name}` is not a container port of {} in the given manifests; it admits nothing to it",
                                    dest.id
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The other end of a flow, as a policy would match it. The outside
    /// world (any address) is every peer: a rule without peers is exactly
    /// what it needs (an ipBlock of every address covers it too, see
    /// `alternatives`).
    fn request_peer(&self, end: &Endpoint) -> Peers {
        if self.pod(&end.id).is_some() {
            return Peers::id(&end.id);
        }
        if end.any {
            return Peers::everyone();
        }
        let mut peers = Peers::nets(if end.any {
            NetSet::all()
        } else {
            NetSet::of(&end.nets)
        });
        // An ipBlock cannot match a DNS name: only "every peer" covers it.
        for name in end.hosts.iter().chain(&end.patterns) {
            peers.ids.insert(format!("name {name}"));
        }
        peers
    }

    /// The ways a rule can admit an end: as [`Self::request_peer`] says,
    /// and for the outside world also by ipBlocks of every address.
    fn alternatives(&self, end: &Endpoint) -> Vec<Peers> {
        let mut out = vec![self.request_peer(end)];
        if end.any && self.pod(&end.id).is_none() {
            out.push(Peers::nets(NetSet::all()));
        }
        out
    }

    fn check(&self, flow: &PlannedFlow) -> (FlowCheck, Vec<Fix>) {
        let mut check = FlowCheck {
            flow: flow.id.clone(),
            from: flow.from.id.clone(),
            to: flow.to.id.clone(),
            traffic: flow_traffic_text(flow),
            required: flow.required,
            verdict: Verdict::NotGoverned,
            rules: Vec::new(),
            detail: String::new(),
        };
        let mut fixes = Vec::new();
        let mut details = Vec::new();
        // The rules that admit each side; shown only when the flow passes
        // (a block shows the policies that decide it).
        let mut admitting = Vec::new();
        let sides = [
            (Direction::Egress, &flow.from, &flow.to),
            (Direction::Ingress, &flow.to, &flow.from),
        ];
        for (direction, subject, peer) in sides {
            if self.pod(&subject.id).is_none() {
                continue;
            }
            if check.verdict == Verdict::NotGoverned {
                check.verdict = Verdict::Admitted;
            }
            let key = (subject.id.clone(), direction);
            let Some(grants) = self.grants.get(&key).and_then(|g| g.as_ref()) else {
                details.push(format!(
                    "{} {}: not isolated (no policy selects it)",
                    subject.id,
                    direction.as_str()
                ));
                continue;
            };
            let request = Request {
                alternatives: self.alternatives(peer),
                traffic: request_traffic(flow),
            };
            let grants: Vec<&Grant> = grants.iter().collect();
            let gaps = space::gaps(&grants, &request);
            if gaps.is_empty() {
                details.push(format!("{} {}: admitted", subject.id, direction.as_str()));
                for rule in space::admitting(&grants, &request) {
                    admitting.push(self.rules[rule].rule.clone());
                }
            } else {
                check.verdict = Verdict::Blocked;
                details.push(format!(
                    "{} {}: nothing admits {}",
                    subject.id,
                    direction.as_str(),
                    gaps_text(&gaps)
                ));
                check.rules.extend(self.isolating[&key].iter().cloned());
                if let Some(fix) = self.fix(flow, direction, subject, peer, &gaps) {
                    fixes.push(fix);
                }
            }
        }
        if check.verdict == Verdict::NotGoverned {
            details.push("neither end is a pod of the deployment".to_owned());
        }
        if check.verdict == Verdict::Admitted {
            check.rules = admitting;
        }
        check.detail = details.join("; ");
        (check, fixes)
    }

    /// A NetworkPolicy that admits what `gaps` miss.
    fn fix(
        &self,
        flow: &PlannedFlow,
        direction: Direction,
        subject: &Endpoint,
        peer: &Endpoint,
        gaps: &[Gap],
    ) -> Option<Fix> {
        let pod = self.pod(&subject.id)?;
        let peer_items: Vec<NetworkPolicyPeer> = match self.pod(&peer.id) {
            Some(p) => vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        NAMESPACE_NAME_LABEL.to_owned(),
                        p.namespace.clone(),
                    )])),
                    ..Default::default()
                }),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(
                        peer.kubernetes
                            .as_ref()
                            .map(|k| k.pod_selector.clone())
                            .unwrap_or_default(),
                    ),
                    ..Default::default()
                }),
                ip_block: None,
            }],
            None if !peer.hosts.is_empty() || !peer.patterns.is_empty() => return None,
            None => {
                let mut nets = NetSet::empty();
                for g in gaps {
                    nets = nets.union(&g.peers.nets);
                }
                nets.cidrs()
                    .into_iter()
                    .map(|cidr| NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: cidr.to_string(),
                            except: None,
                        }),
                        ..Default::default()
                    })
                    .collect()
            }
        };
        let ports = Some(fix_ports(gaps)?);
        let mut spec = NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(
                    subject
                        .kubernetes
                        .as_ref()
                        .map(|k| k.pod_selector.clone())
                        .unwrap_or_default(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        match direction {
            Direction::Ingress => {
                spec.policy_types = Some(vec!["Ingress".into()]);
                spec.ingress = Some(vec![NetworkPolicyIngressRule {
                    from: Some(peer_items),
                    ports,
                }]);
            }
            Direction::Egress => {
                spec.policy_types = Some(vec!["Egress".into()]);
                spec.egress = Some(vec![
                    k8s_openapi::api::networking::v1::NetworkPolicyEgressRule {
                        to: Some(peer_items),
                        ports,
                    },
                ]);
            }
        }
        let mut name = format!(
            "allow-{}-{}",
            direction.as_str(),
            portolan_firewall::cloud::slug(&flow.id)
        );
        name.truncate(63);
        let policy = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.trim_end_matches('-').to_owned()),
                namespace: Some(pod.namespace.clone()),
                ..Default::default()
            },
            spec: Some(spec),
        };
        let yaml = serde_saphyr::to_string(&policy).ok()?;
        Some(Fix {
            flow: flow.id.clone(),
            text: format!("---\n{yaml}"),
        })
    }

    /// Excess per pod and direction: each rule's grant minus the plan's flows.
    fn excess(&self) -> Vec<Excess> {
        let mut out = Vec::new();
        // Each pod's flows per direction, found once rather than per pod.
        let mut flows_of: BTreeMap<(&str, Direction), Vec<&PlannedFlow>> = BTreeMap::new();
        for f in &self.plan.flows {
            flows_of
                .entry((f.to.id.as_str(), Direction::Ingress))
                .or_default()
                .push(f);
            flows_of
                .entry((f.from.id.as_str(), Direction::Egress))
                .or_default()
                .push(f);
        }
        for pod in &self.pods {
            for direction in [Direction::Ingress, Direction::Egress] {
                let key = (pod.id.clone(), direction);
                let Some(grants) = self.grants.get(&key).and_then(|g| g.as_ref()) else {
                    out.push(Excess {
                        subject: pod.id.clone(),
                        direction,
                        peer: None,
                        peers: "any peer".into(),
                        traffic: "every protocol and port".into(),
                        any: true,
                        rule: RuleRef {
                            text: format!(
                                "no NetworkPolicy selects {} for {}: not isolated",
                                pod.id,
                                direction.as_str()
                            ),
                            location: None,
                            comment: None,
                        },
                    });
                    continue;
                };
                let required: Vec<Request> = flows_of
                    .get(&(pod.id.as_str(), direction))
                    .into_iter()
                    .flatten()
                    .map(|f| Request {
                        alternatives: self.alternatives(match direction {
                            Direction::Ingress => &f.from,
                            Direction::Egress => &f.to,
                        }),
                        traffic: request_traffic(f),
                    })
                    .collect();
                let required: Vec<&Request> = required.iter().collect();
                let mut seen_broad = BTreeSet::new();
                for grant in grants {
                    let info = &self.rules[grant.rule];
                    let groups = space::excess(grant, &required);
                    push_excess(&mut out, &pod.id, direction, groups, &info.rule);
                    for (what, any) in &info.broad {
                        if seen_broad.insert((grant.rule, what.clone())) {
                            out.push(Excess {
                                subject: pod.id.clone(),
                                direction,
                                peer: None,
                                peers: what.clone(),
                                traffic: traffic_text(&grant.traffic),
                                any: *any,
                                rule: info.rule.clone(),
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// Report lines of a rule's excess: one per peer (a component, addresses,
/// or "any peer"), each with its protocols and ports said compactly.
pub(crate) fn push_excess(
    out: &mut Vec<Excess>,
    subject: &str,
    direction: Direction,
    groups: Vec<ExcessGroup>,
    rule: &RuleRef,
) {
    for group in groups {
        let (peer, peers, any) = match group.peer {
            ExcessPeer::Any => (None, "any peer".to_owned(), true),
            ExcessPeer::Id(id) => (Some(id.clone()), id, false),
            ExcessPeer::Nets(nets) => {
                let any = nets
                    .contains_all(&NetSet::of(&["0.0.0.0/0".parse::<IpNet>().expect("cidr")]))
                    || nets.contains_all(&NetSet::of(&["::/0".parse::<IpNet>().expect("cidr")]));
                (None, nets.to_string(), any)
            }
        };
        out.push(Excess {
            subject: subject.to_owned(),
            direction,
            peer,
            peers,
            traffic: crate::cells_text(&group.cells),
            any,
            rule: rule.clone(),
        });
    }
}

/// The gaps for a person: `tcp 5432 from api`.
pub(crate) fn gaps_text(gaps: &[Gap]) -> String {
    gaps.iter()
        .map(|g| format!("{} with {}", traffic_text(&g.traffic), peers_text(&g.peers)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The port items that cover the gaps; `None` (no fix) when a gap is not
/// a TCP/UDP/SCTP one: a NetworkPolicy admits ICMP only with a rule
/// without ports, which would admit every protocol, broader than the flow.
fn fix_ports(gaps: &[Gap]) -> Option<Vec<NetworkPolicyPort>> {
    let mut items = Vec::new();
    for gap in gaps {
        let protocol = match gap.traffic.protocols.ranges() {
            [(p, q)] if p == q && *p == proto::TCP => "TCP",
            [(p, q)] if p == q && *p == proto::UDP => "UDP",
            [(p, q)] if p == q && *p == proto::SCTP => "SCTP",
            _ => return None,
        };
        for &(s, e) in gap.traffic.ports.ranges() {
            let item = NetworkPolicyPort {
                protocol: Some(protocol.to_owned()),
                port: Some(IntOrString::Int(s.max(1) as i32)),
                end_port: (e > s).then_some(e as i32),
            };
            if !items.contains(&item) {
                items.push(item);
            }
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests;
