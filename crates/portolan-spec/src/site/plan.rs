//! Site flows as planned flows.

use super::{is_placed_component, SiteEnd, SiteFlow};
use crate::deployment::{Address, Deployment};
use crate::model::*;
use crate::plan::{apply_placement, empty_endpoint, Endpoint, EndpointKind, PlannedFlow};

/// The site flows of a deployment as planned flows: one per pair of
/// ends (an omitted end is every placed component; addresses are one end,
/// the outside world narrowed to them). Ids are `site:NAME`, with
/// `@COMPONENT` (or `@FROM->TO`) when the entry makes several flows.
pub(crate) fn plan_site_flows(
    spec: &Spec,
    deployment: &Deployment,
    components: &[Endpoint],
) -> Vec<PlannedFlow> {
    if deployment.site.is_empty() {
        return Vec::new();
    }
    let machines: Vec<Vec<ComponentId>> = deployment
        .hosts(spec)
        .into_iter()
        .filter(|h| h.is_one_machine())
        .map(|h| h.components)
        .collect();
    let machine_of = |id: &str| {
        let c = spec.component_by_id(id)?;
        machines.iter().position(|m| m.contains(&c))
    };
    let mut out = Vec::new();
    for (index, site) in deployment.site.iter().enumerate() {
        let ends = |end: &SiteEnd| -> Vec<Endpoint> {
            match end {
                SiteEnd::EveryHost => (0..spec.components.len())
                    .map(ComponentId)
                    .filter(|c| is_placed_component(spec, deployment, *c))
                    .map(|c| components[c.0].clone())
                    .collect(),
                SiteEnd::Components(ids) => ids.iter().map(|c| components[c.0].clone()).collect(),
                SiteEnd::Addresses(addresses) => vec![address_endpoint(site, addresses)],
            }
        };
        let (froms, tos) = (ends(&site.from), ends(&site.to));
        let count = froms.len() * tos.len();
        for from in &froms {
            for to in &tos {
                let id = match (count, &site.from, &site.to) {
                    (1, _, _) => format!("site:{}", site.name),
                    (_, SiteEnd::Addresses(_), _) => format!("site:{}@{}", site.name, to.id),
                    (_, _, SiteEnd::Addresses(_)) => format!("site:{}@{}", site.name, from.id),
                    _ => format!("site:{}@{}->{}", site.name, from.id, to.id),
                };
                let both_components = !matches!(site.from, SiteEnd::Addresses(_))
                    && !matches!(site.to, SiteEnd::Addresses(_));
                let local = both_components
                    && from.id != to.id
                    && machine_of(&from.id).is_some()
                    && machine_of(&from.id) == machine_of(&to.id);
                out.push(PlannedFlow {
                    id,
                    flow: index,
                    site: true,
                    from: from.clone(),
                    to: to.clone(),
                    protocol: site.protocol,
                    source_ports: Vec::new(),
                    ports: site.ports.clone(),
                    written_ports: site.ports.clone(),
                    written_source_ports: Vec::new(),
                    multicast: None,
                    required: true,
                    local,
                    via_proxy: None,
                    name: None,
                    purpose: Some(site.purpose.clone()),
                    span: site.span,
                });
            }
        }
    }
    out
}

/// The addresses end of a site flow: the outside world narrowed to them,
/// named after the site flow (`site:admin-ssh`).
fn address_endpoint(site: &SiteFlow, addresses: &[Address]) -> Endpoint {
    let id = format!("site:{}", site.name);
    let mut endpoint = empty_endpoint(&id, &site.purpose, EndpointKind::Outside);
    let placement = crate::deployment::Placement {
        addresses: addresses.to_vec(),
        span: site.span,
        ..Default::default()
    };
    apply_placement(&mut endpoint, &placement);
    endpoint
}
