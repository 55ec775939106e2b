//! What needs the hosts of a deployment: their `host:` names, and
//! addresses that overlap between hosts or with external endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;
use serde_saphyr::Spanned;

use super::check::DeploymentChecker;
use super::model::*;
use super::placement::parse_address;
use crate::diag::{Code, Context, Diagnostic, Span};
use crate::model::*;
use crate::plan::net_text;

/// Whose an address is, for the overlap check.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Component(ComponentId),
    External(ExternalId),
}

impl DeploymentChecker<'_, '_> {
    /// `host:` names: only on components with addresses, one name per
    /// host, one host per name. Returns the hosts.
    pub(super) fn check_hosts(
        &mut self,
        deployment: &Deployment,
        host_spans: &BTreeMap<ComponentId, Span>,
    ) -> Vec<Host> {
        self.names_of_no_host(deployment, host_spans);
        let hosts = deployment.hosts(self.spec);
        for d in self.host_conflicts(deployment, host_spans, &hosts) {
            self.c.push(d);
        }
        hosts
    }

    /// A `host:` on a component of kind `external` or without addresses.
    fn names_of_no_host(
        &mut self,
        deployment: &Deployment,
        host_spans: &BTreeMap<ComponentId, Span>,
    ) {
        for (&id, &span) in host_spans {
            let Some(placement) = deployment.components.get(&id) else {
                continue;
            };
            if placement.host.is_none() {
                continue; // an invalid name, already reported
            }
            let component = self.spec.component(id);
            let why = if component.kind == ComponentKind::External {
                format!(
                    "`{}` is the outside world (kind `external`), not a host",
                    component.id
                )
            } else if placement.addresses.is_empty() {
                format!(
                    "`{}` has no `addresses:`, and a host name names the host at its addresses",
                    component.id
                )
            } else {
                continue;
            };
            self.c.push(
                Diagnostic::new(Code::DeploymentInvalidPlacement, why)
                    .with_label(span, "this host name names nothing")
                    .with_help("remove `host:`, or give the component `addresses:`"),
            );
        }
    }

    /// Names that contradict each other: two names for one host, one name
    /// for two hosts, a name that is the id of a component elsewhere.
    fn host_conflicts(
        &self,
        deployment: &Deployment,
        host_spans: &BTreeMap<ComponentId, Span>,
        hosts: &[Host],
    ) -> Vec<Diagnostic> {
        // Host name → indices of the hosts of that name, in order.
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, host) in hosts.iter().enumerate() {
            by_name.entry(host.name.as_str()).or_default().push(i);
        }
        let mut diagnostics = Vec::new();
        for (index, host) in hosts.iter().enumerate() {
            let named: Vec<(ComponentId, &String)> = host
                .components
                .iter()
                .filter_map(|c| Some((*c, deployment.components.get(c)?.host.as_ref()?)))
                .collect();
            diagnostics.extend(self.two_names(host, &named, host_spans));
            if !host.named {
                continue;
            }
            let Some((named_by, _)) = named.first() else {
                continue;
            };
            let span = host_spans.get(named_by).copied().unwrap_or(host.span);
            // Hosts have disjoint components: another index is another host.
            let other = by_name
                .get(host.name.as_str())
                .and_then(|same| same.iter().find(|&&o| o != index))
                .map(|&o| &hosts[o]);
            if let Some(d) = other.and_then(|other| self.name_of_two_hosts(host, other, span)) {
                diagnostics.push(d);
                continue;
            }
            diagnostics.extend(self.name_of_a_component_elsewhere(host, span));
        }
        diagnostics
    }

    fn component_id(&self, c: ComponentId) -> &str {
        &self.spec.component(c).id
    }

    /// Two different names for one host; `named`: its components that give
    /// a name, with the name.
    fn two_names(
        &self,
        host: &Host,
        named: &[(ComponentId, &String)],
        host_spans: &BTreeMap<ComponentId, Span>,
    ) -> Option<Diagnostic> {
        let (other, other_name) = named.iter().find(|(_, n)| **n != host.name)?;
        let (first, _) = named[0];
        let mut d = Diagnostic::new(
            Code::DeploymentHostConflict,
            format!(
                "components `{}` and `{}` have the same addresses, so they run on one host, but name it `{}` and `{other_name}`",
                self.component_id(first),
                self.component_id(*other),
                host.name
            ),
        )
        .with_help("give the components of one host the same `host:` name, or give it on one of them only");
        if let Some(span) = host_spans.get(other) {
            d = d.with_label(*span, "this name");
        }
        if let Some(span) = host_spans.get(&first) {
            d = d.with_label(*span, "contradicts this one");
        }
        Some(d)
    }

    /// One name for two hosts (file names would collide), reported on the
    /// later host when both are named.
    fn name_of_two_hosts(&self, host: &Host, other: &Host, span: Span) -> Option<Diagnostic> {
        if other.components[0] >= host.components[0] && other.named {
            return None;
        }
        Some(
            Diagnostic::new(
                Code::DeploymentHostConflict,
                format!(
                    "host name `{}` is also the name of the host of {}, whose addresses differ",
                    host.name,
                    other
                        .components
                        .iter()
                        .map(|c| format!("`{}`", self.component_id(*c)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_label(span, "names a second host")
            .with_help("components run on one host when their `addresses:` are equal; give each host its own name"),
        )
    }

    /// The name of a component that is not on this host.
    fn name_of_a_component_elsewhere(&self, host: &Host, span: Span) -> Option<Diagnostic> {
        let c = self.index.component(&host.name)?;
        if host.components.contains(&c) {
            return None;
        }
        Some(
            Diagnostic::new(
                Code::DeploymentHostConflict,
                format!(
                    "host name `{}` is the id of a component that does not run on this host",
                    host.name
                ),
            )
            .with_label(span, "names a component elsewhere")
            .with_help("choose a name that is not the id of another component")
            .with_context(Context::AlsoAComponentId),
        )
    }

    pub(super) fn nets_with_spans<'r>(
        &self,
        addresses: impl Iterator<Item = &'r Spanned<String>>,
    ) -> Vec<(IpNet, Span)> {
        addresses
            .filter_map(|a| match parse_address(&a.value) {
                Ok(Address::Net(net)) => Some((net, self.c.span(a))),
                _ => None,
            })
            .collect()
    }

    pub(super) fn owner_name(&self, owner: Owner) -> String {
        match owner {
            Owner::Component(c) => format!("component `{}`", self.spec.component(c).id),
            Owner::External(e) => format!("external `{}`", self.spec.external(e).id),
        }
    }

    /// Addresses of different components, or of a component and an external
    /// endpoint, that overlap make a rule about one also match the other.
    /// Components of one host (equal address sets) share their addresses by
    /// design; among the rest, one diagnostic per pair of hosts and nets.
    pub(super) fn check_overlaps(
        &mut self,
        deployment: &Deployment,
        addressed: &[(Owner, IpNet, Span)],
        hosts: &[Host],
    ) {
        let host_index: HashMap<ComponentId, usize> = hosts
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.components.iter().map(move |c| (*c, i)))
            .collect();
        let host_of = |owner: &Owner| match owner {
            Owner::Component(c) => host_index.get(c).copied(),
            Owner::External(_) => None,
        };
        let mut all: Vec<(Owner, IpNet, Option<Span>)> = addressed
            .iter()
            .map(|(o, n, s)| (*o, *n, Some(*s)))
            .collect();
        all.extend(self.unbound_spec_cidrs(deployment));
        let nets: Vec<IpNet> = all.iter().map(|(_, net, _)| *net).collect();
        let pairs = overlapping_pairs(&nets, |i, j| {
            let ((owner_a, ..), (owner_b, ..)) = (&all[i], &all[j]);
            let (host_a, host_b) = (host_of(owner_a), host_of(owner_b));
            owner_a != owner_b
                && !matches!((owner_a, owner_b), (Owner::External(_), Owner::External(_)))
                && !(host_a.is_some() && host_a == host_b)
        });
        let mut reported_hosts = BTreeSet::new();
        let mut reported = BTreeSet::new();
        for (i, j) in pairs {
            let ((owner_a, net_a, span_a), (owner_b, net_b, span_b)) = (&all[i], &all[j]);
            let (host_a, host_b) = (host_of(owner_a), host_of(owner_b));
            if let (Some(a), Some(b)) = (host_a, host_b) {
                let key = (a.min(b), a.max(b), *net_a.min(net_b), *net_a.max(net_b));
                if !reported_hosts.insert(key) {
                    continue;
                }
            }
            let (first, second) = match (span_a, span_b) {
                (Some(a), Some(b)) => (*b, Some(*a)),
                (Some(a), None) => (*a, None),
                (None, Some(b)) => (*b, None),
                (None, None) => continue,
            };
            if !reported.insert((first.offset, second.map(|s| s.offset))) {
                continue;
            }
            let both_hosts = host_a.is_some() && host_b.is_some();
            let d = self.overlap(
                (*owner_a, net_a),
                (*owner_b, net_b),
                (first, second),
                both_hosts,
            );
            self.c.push(d);
        }
    }

    /// CIDRs the spec gives to externals the deployment does not rebind,
    /// with their owner and no position in the deployment.
    fn unbound_spec_cidrs(&self, deployment: &Deployment) -> Vec<(Owner, IpNet, Option<Span>)> {
        let mut out = Vec::new();
        for (i, external) in self.spec.externals.iter().enumerate() {
            if let ExternalAddress::Cidr(net) = external.address {
                if deployment
                    .externals
                    .get(&ExternalId(i))
                    .is_none_or(|p| p.addresses.is_empty())
                {
                    out.push((Owner::External(ExternalId(i)), net, None));
                }
            }
        }
        out
    }

    /// The diagnostic of net `a` overlapping net `b`, underlined at `first`
    /// and, when the deployment writes both, `second`.
    fn overlap(
        &self,
        (owner_a, net_a): (Owner, &IpNet),
        (owner_b, net_b): (Owner, &IpNet),
        (first, second): (Span, Option<Span>),
        both_hosts: bool,
    ) -> Diagnostic {
        let (name_a, name_b) = (self.owner_name(owner_a), self.owner_name(owner_b));
        let message = if net_a == net_b {
            format!(
                "{name_a} and {name_b} share the address {}",
                net_text(net_a)
            )
        } else {
            format!(
                "{} of {name_a} overlaps {} of {name_b}",
                net_text(net_a),
                net_text(net_b)
            )
        };
        let mut d = Diagnostic::new(Code::DeploymentOverlappingAddresses, message)
            .with_label(
                first,
                if second.is_some() {
                    "overlaps"
                } else {
                    "overlaps a CIDR the spec gives an external endpoint"
                },
            )
            .with_help(if both_hosts {
                "a rule about one would also match the other; give each component \
                 its own addresses (split the block, or list the hosts), or, when \
                 components share a host, give them exactly the same addresses"
            } else {
                "a rule about one would also match the other; give each component \
                 its own addresses (split the block, or list the hosts)"
            });
        if let Some(second) = second {
            d = d.with_label(second, "this address");
        }
        d
    }
}

/// Every pair `(i, j)`, `i < j`, of `nets` that overlap (one contains the
/// other: address blocks never overlap partially) and that `keep` accepts,
/// sorted. A sweep over the nets in address order with a stack of the
/// blocks enclosing the current one: linear in the nets plus the pairs
/// found, where comparing every pair would be quadratic.
pub(super) fn overlapping_pairs(
    nets: &[IpNet],
    keep: impl Fn(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| (nets[i].network(), nets[i].prefix_len(), i));
    let mut enclosing: Vec<usize> = Vec::new();
    let mut pairs = Vec::new();
    for i in order {
        while let Some(&outer) = enclosing.last() {
            if nets[outer].contains(&nets[i].network()) {
                break;
            }
            enclosing.pop();
        }
        for &outer in &enclosing {
            let pair = (outer.min(i), outer.max(i));
            if keep(pair.0, pair.1) {
                pairs.push(pair);
            }
        }
        enclosing.push(i);
    }
    pairs.sort_unstable();
    pairs
}
