//! Checking the flows of a spec: their ends, ports, multicast groups and
//! conditions, one [`Flow`] per source and destination; then duplicates
//! and ids.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_saphyr::Spanned;

use super::{SpecChecker, EVERY_PORT};
use crate::diag::{did_you_mean, Code, Diagnostic, Span};
use crate::given::Given;
use crate::model::*;
use crate::raw::*;

/// The optional keys of a flow, after [`SpecChecker::optional_keys`].
struct FlowKeys {
    port: Option<Spanned<RawPorts>>,
    source_port: Option<Spanned<RawPorts>>,
    multicast: Option<Spanned<String>>,
    when: Option<Spanned<RawCondition>>,
}

impl SpecChecker<'_> {
    pub(super) fn port_number(&mut self, value: i64, span: Span) -> Option<u16> {
        match u16::try_from(value) {
            Ok(port) if port >= 1 => Some(port),
            _ => {
                self.c.push(
                    Diagnostic::new(
                        Code::PortOutOfRange,
                        format!("port {value} is out of range"),
                    )
                    .with_label(span, "not in 1..65535")
                    .with_help("ports are 1 to 65535; omit `port` to mean every port"),
                );
                None
            }
        }
    }

    fn check_ports(&mut self, spec: &Spec, raw: &Spanned<RawPorts>) -> Ports {
        let span = self.c.span(raw);
        let items: Vec<RawPortItem> = match &raw.value {
            RawPorts::Number(n) => vec![RawPortItem::Number(*n)],
            RawPorts::Text(t) if t.trim() == EVERY_PORT => return Ports::default(),
            RawPorts::Text(t) => vec![RawPortItem::Text(t.clone())],
            RawPorts::List(list) => {
                if list.is_empty() {
                    self.c.push(
                        Diagnostic::new(Code::EmptyList, "empty port list")
                            .with_label(span, "no ports")
                            .with_help("omit `port` to mean every port, or list at least one"),
                    );
                }
                list.clone()
            }
        };
        let mut out = Vec::new();
        for item in items {
            match item {
                RawPortItem::Number(n) => {
                    if let Some(p) = self.port_number(n, span) {
                        out.push(PortItem::Range(PortRange::single(p)));
                    }
                }
                RawPortItem::Text(text) => {
                    if let Some(item) = self.port_text(spec, text.trim(), span) {
                        out.push(item);
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ports(out)
    }

    fn port_text(&mut self, spec: &Spec, text: &str, span: Span) -> Option<PortItem> {
        if text == EVERY_PORT {
            self.c.push(
                Diagnostic::new(Code::InvalidPort, "`*` inside a port list")
                    .with_label(span, "every port, among other ports")
                    .with_help("write `port: \"*\"` alone to mean every port, or list the ports"),
            );
            return None;
        }
        if let Some(name) = text.strip_prefix('$') {
            let name = name.trim_start_matches('{').trim_end_matches('}');
            return match spec.parameter_by_id(name) {
                Some(p) => Some(PortItem::Parameter(p)),
                None => {
                    let near = did_you_mean(name, spec.parameters.iter().map(|p| p.id.as_str()));
                    self.c.push(
                        Diagnostic::new(
                            Code::UnknownParameter,
                            format!("unknown parameter `{name}`"),
                        )
                        .with_label(span, "no such parameter")
                        .with_help(match near {
                            Some(n) => format!("did you mean `${n}`?"),
                            None => "define it under `parameters:`".to_owned(),
                        }),
                    );
                    None
                }
            };
        }
        let parse = |s: &str| s.trim().parse::<i64>().ok();
        let (start, end) = match text.split_once('-') {
            Some((a, b)) => (parse(a), parse(b)),
            None => (parse(text), parse(text)),
        };
        let (Some(start), Some(end)) = (start, end) else {
            self.c.push(
                Diagnostic::new(Code::InvalidPort, format!("`{text}` is not a port"))
                    .with_label(span, "not a port, range or parameter")
                    .with_help("write 443, \"8000-8010\" or \"$parameter\""),
            );
            return None;
        };
        let start = self.port_number(start, span)?;
        let end = self.port_number(end, span)?;
        if start > end {
            self.c.push(
                Diagnostic::new(Code::InvertedRange, format!("range `{text}` is inverted"))
                    .with_label(span, "start is above end")
                    .with_help(format!("write \"{end}-{start}\"")),
            );
            return None;
        }
        Some(PortItem::Range(PortRange { start, end }))
    }

    fn check_condition(
        &mut self,
        spec: &Spec,
        raw: &RawCondition,
        span: Span,
    ) -> Option<Condition> {
        match raw {
            RawCondition::Feature(name) => match spec.feature_by_id(name) {
                Some(f) => Some(Condition::Feature(f)),
                None => {
                    let near = did_you_mean(name, spec.features.iter().map(|f| f.id.as_str()));
                    self.c.push(
                        Diagnostic::new(Code::UnknownFeature, format!("unknown feature `{name}`"))
                            .with_label(span, "no such feature")
                            .with_help(match near {
                                Some(n) => format!("did you mean `{n}`?"),
                                None => "define it under `features:`".to_owned(),
                            }),
                    );
                    None
                }
            },
            RawCondition::Any { any: list } | RawCondition::All { all: list } => {
                if list.is_empty() {
                    self.c.push(
                        Diagnostic::new(Code::EmptyList, "empty condition list")
                            .with_label(span, "needs at least one condition")
                            .with_help("remove `when` or name a feature"),
                    );
                    return None;
                }
                let items: Vec<Option<Condition>> = list
                    .iter()
                    .map(|c| self.check_condition(spec, c, span))
                    .collect();
                let items: Option<Vec<Condition>> = items.into_iter().collect();
                let items = items?;
                Some(match raw {
                    RawCondition::Any { .. } => Condition::Any(items),
                    _ => Condition::All(items),
                })
            }
            RawCondition::Not { not } => self
                .check_condition(spec, not, span)
                .map(|c| Condition::Not(Box::new(c))),
        }
    }

    fn resolve_source(
        &mut self,
        spec: &Spec,
        index: &EndpointIndex<'_>,
        id: &str,
        span: Span,
    ) -> Option<ComponentId> {
        if let Some(c) = index.component(id) {
            return Some(c);
        }
        if index.external(id).is_some() {
            self.c.push(
                Diagnostic::new(
                    Code::InvalidSource,
                    format!("`{id}` is an external endpoint and cannot be a flow's source"),
                )
                .with_label(span, "external endpoints only receive")
                .with_help("model the sender as a component of kind `external` (e.g. `outside`)"),
            );
            return None;
        }
        self.unknown_reference(spec, id, span, false);
        None
    }

    fn resolve_destination(
        &mut self,
        spec: &Spec,
        index: &EndpointIndex<'_>,
        id: &str,
        span: Span,
    ) -> Option<Destination> {
        if let Some(c) = index.component(id) {
            return Some(Destination::Component(c));
        }
        if let Some(e) = index.external(id) {
            return Some(Destination::External(e));
        }
        self.unknown_reference(spec, id, span, true);
        None
    }

    fn unknown_reference(&mut self, spec: &Spec, id: &str, span: Span, with_externals: bool) {
        let alias_of = spec.components.iter().find(|c| {
            c.aliases.iter().any(|a| a.eq_ignore_ascii_case(id)) || c.name.eq_ignore_ascii_case(id)
        });
        let mut candidates: Vec<&str> = spec.components.iter().map(|c| c.id.as_str()).collect();
        if with_externals {
            candidates.extend(spec.externals.iter().map(|e| e.id.as_str()));
        }
        let help = if let Some(c) = alias_of {
            format!("`{id}` names component `{}`: use its id", c.id)
        } else if let Some(near) = did_you_mean(id, candidates.iter().copied()) {
            format!("did you mean `{near}`?")
        } else if with_externals {
            "define it under `components:` or `externals:`".to_owned()
        } else {
            "define it under `components:`".to_owned()
        };
        self.c.push(
            Diagnostic::new(Code::UnknownReference, format!("unknown component `{id}`"))
                .with_label(span, "not defined in this spec")
                .with_help(help),
        );
    }

    /// One flow as written: a flow per source and destination pair goes to
    /// `out`. A flow with an error of its own is left out of the model, so
    /// that it cannot cause follow-on diagnostics (a broken port list would
    /// otherwise read as "every port" and look like a duplicate).
    pub(super) fn check_flow(
        &mut self,
        spec: &Spec,
        index: &EndpointIndex<'_>,
        raw: RawFlow,
        out: &mut Vec<Flow>,
    ) {
        let errors_before = self.c.error_count();
        let keys = self.optional_keys(raw.port, raw.source_port, raw.multicast, raw.when);
        let from_span = self.c.span(&raw.from);
        let to_span = self.c.span(&raw.to);
        let protocol_span = self.c.span(&raw.protocol);
        let (sources, destinations) = self.ends(spec, index, &raw.from, &raw.to);
        let protocol = match raw.protocol.value {
            RawProtocol::Tcp => Protocol::Tcp,
            RawProtocol::Udp => Protocol::Udp,
            RawProtocol::Icmp => Protocol::Icmp,
            RawProtocol::Any => Protocol::Any,
        };
        let mut ports = Ports::default();
        let mut source_ports = Ports::default();
        for (field, raw_ports, target) in [
            ("port", &keys.port, &mut ports),
            ("source_port", &keys.source_port, &mut source_ports),
        ] {
            if let Some(raw_ports) = raw_ports {
                if protocol.has_ports() {
                    *target = self.check_ports(spec, raw_ports);
                } else {
                    self.port_not_allowed(field, raw_ports, protocol, protocol_span);
                }
            }
        }
        let multicast = keys.multicast.as_ref().and_then(|m| {
            self.check_multicast(spec, m, (protocol, protocol_span), (&destinations, to_span))
        });
        let condition = keys.when.as_ref().and_then(|w| {
            let span = self.c.span(w);
            self.check_condition(spec, &w.value, span)
        });
        let required = raw.required.unwrap_or(true);
        let name = self.text("name", raw.name, false);
        let purpose = self.text("purpose", raw.purpose, true);
        let origin = self.text("origin", raw.origin, false);
        let guess = self.text("guess", raw.guess, false);
        if !required && keys.when.is_none() {
            self.c.push(
                Diagnostic::new(Code::OptionalWithoutCondition, "optional flow without `when`")
                    .with_label(from_span, "nothing can switch this flow on or off")
                    .with_help("add `when: <feature>` naming the option that needs it; until then it is treated as enabled"),
            );
        }
        let used_at = keys.port.as_ref().map_or(from_span, |p| self.c.span(p));
        self.parameters_need_values(spec, &ports, &source_ports, used_at);
        if self.c.error_count() > errors_before {
            return;
        }
        let flow = Flow {
            id: String::new(),
            // Each pair of ends below sets these three.
            from: ComponentId(0),
            to: Destination::Component(ComponentId(0)),
            span: from_span,
            multicast,
            protocol,
            ports,
            source_ports,
            required,
            when: condition,
            name,
            purpose,
            origin,
            guess,
        };
        self.expand(spec, &flow, (&sources, &destinations), protocol_span, out);
    }

    /// `flow` once per source and destination, to `out`; a flow of every
    /// protocol and port inside the system is a warning.
    #[allow(clippy::type_complexity)]
    fn expand(
        &mut self,
        spec: &Spec,
        flow: &Flow,
        (sources, destinations): (&[Option<(ComponentId, Span)>], &[Option<Destination>]),
        protocol_span: Span,
        out: &mut Vec<Flow>,
    ) {
        for (source, destination) in sources
            .iter()
            .flatten()
            .flat_map(|s| destinations.iter().flatten().map(move |d| (*s, *d)))
        {
            let (source, span) = source;
            let to_outside = match destination {
                Destination::Component(c) => spec.component(c).kind == ComponentKind::External,
                Destination::External(_) => true,
            };
            if flow.protocol == Protocol::Any && flow.ports.is_all() && !to_outside {
                self.c.push(
                    Diagnostic::new(
                        Code::BroadFlow,
                        "a flow allowing every protocol and port inside the system",
                    )
                    .with_label(protocol_span, "protocol any, no port")
                    .with_help("name the protocol and ports if the vendor states them"),
                );
            }
            out.push(Flow {
                from: source,
                to: destination,
                span,
                ..flow.clone()
            });
        }
    }

    /// The optional keys of a flow whose absence widens it; written
    /// without a value, each is an error and reads as absent.
    fn optional_keys(
        &mut self,
        port: Given<RawPorts>,
        source_port: Given<RawPorts>,
        multicast: Given<String>,
        when: Given<RawCondition>,
    ) -> FlowKeys {
        FlowKeys {
            port: self.given(
                "port",
                port,
                "write `port: \"*\"` (quoted) to mean every port, or give the port; an omitted `port` also means every port",
            ),
            source_port: self.given(
                "source_port",
                source_port,
                "give the fixed source port, or remove the key to mean any source port",
            ),
            multicast: self.given(
                "multicast",
                multicast,
                "give the group address (e.g. 239.1.1.1), or remove the key for a unicast flow",
            ),
            when: self.given(
                "when",
                when,
                "name the feature that switches the flow on, or remove the key to make the flow unconditional",
            ),
        }
    }

    /// The sources, each with where its id is written (the flow's
    /// position), and the destinations; `None` for an id that names
    /// nothing usable (after a diagnostic).
    #[allow(clippy::type_complexity)]
    fn ends(
        &mut self,
        spec: &Spec,
        index: &EndpointIndex<'_>,
        from: &Spanned<RawIds>,
        to: &Spanned<RawIds>,
    ) -> (Vec<Option<(ComponentId, Span)>>, Vec<Option<Destination>>) {
        for ids in [from, to] {
            if ids.value.is_empty() {
                let span = self.c.span(ids);
                self.c.push(
                    Diagnostic::new(Code::EmptyList, "empty list of ids")
                        .with_label(span, "no ids")
                        .with_help("name at least one component"),
                );
            }
        }
        let sources = (from.value.items(&from.referenced))
            .map(|(id, at)| {
                let span = Span::from_location(at, &self.c.source);
                self.resolve_source(spec, index, id, span)
                    .map(|c| (c, span))
            })
            .collect();
        let destinations = (to.value.items(&to.referenced))
            .map(|(id, at)| {
                let span = Span::from_location(at, &self.c.source);
                self.resolve_destination(spec, index, id, span)
            })
            .collect();
        (sources, destinations)
    }

    /// Ports on a protocol without ports.
    fn port_not_allowed(
        &mut self,
        field: &str,
        raw_ports: &Spanned<RawPorts>,
        protocol: Protocol,
        protocol_span: Span,
    ) {
        let span = self.c.span(raw_ports);
        self.c.push(
            Diagnostic::new(
                Code::PortNotAllowed,
                format!("`{field}` given for protocol {protocol}"),
            )
            .with_label(span, format!("{protocol} has no ports"))
            .with_help("use protocol tcp or udp, or remove the port")
            .with_label(protocol_span, "protocol set here"),
        );
    }

    /// A flow's multicast group: a multicast address, over UDP, to
    /// components only.
    fn check_multicast(
        &mut self,
        spec: &Spec,
        m: &Spanned<String>,
        (protocol, protocol_span): (Protocol, Span),
        (destinations, to_span): (&[Option<Destination>], Span),
    ) -> Option<IpAddr> {
        let span = self.c.span(m);
        let addr = match m.value.trim().parse::<IpAddr>() {
            Ok(addr) if addr.is_multicast() => addr,
            _ => {
                self.c.push(
                    Diagnostic::new(
                        Code::InvalidMulticast,
                        format!("`{}` is not a multicast group", m.value),
                    )
                    .with_label(span, "outside 224.0.0.0/4 and ff00::/8")
                    .with_help("multicast groups are 224.0.0.0 to 239.255.255.255 or ff00::/8"),
                );
                return None;
            }
        };
        if protocol != Protocol::Udp {
            self.c.push(
                Diagnostic::new(
                    Code::MulticastProtocol,
                    format!("multicast over {protocol}"),
                )
                .with_label(protocol_span, "multicast is UDP only")
                .with_help("set `protocol: udp`"),
            );
        }
        for d in destinations.iter().flatten() {
            if let Destination::External(e) = d {
                self.c.push(
                    Diagnostic::new(
                        Code::InvalidMulticast,
                        format!("multicast to external endpoint `{}`", spec.external(*e).id),
                    )
                    .with_label(to_span, "multicast receivers must be components")
                    .with_help("name the components that join the group in `to`"),
                );
            }
        }
        Some(addr)
    }

    /// A parameter without a default, used (at `used_at`): every deployment
    /// must set it (said once per parameter).
    fn parameters_need_values(
        &mut self,
        spec: &Spec,
        ports: &Ports,
        source_ports: &Ports,
        used_at: Span,
    ) {
        for p in ports.parameters().chain(source_ports.parameters()) {
            if spec.parameters[p.0].default.is_none() && self.needs_value_reported.insert(p) {
                self.c.push(
                    Diagnostic::new(
                        Code::ParameterNeedsValue,
                        format!("parameter `{}` has no default", spec.parameters[p.0].id),
                    )
                    .with_label(used_at, "used here")
                    .with_label(spec.parameters[p.0].span, "defined without `default`")
                    .with_help("every deployment must set it under `parameters:`"),
                );
            }
        }
    }

    pub(super) fn check_duplicate_flows(&mut self, spec: &Spec) {
        type Key<'f> = (
            ComponentId,
            Destination,
            Option<IpAddr>,
            Protocol,
            &'f Ports,
            &'f Ports,
            Option<&'f Condition>,
        );
        let mut seen: HashMap<Key<'_>, Span> = HashMap::new();
        for flow in &spec.flows {
            let key = (
                flow.from,
                flow.to,
                flow.multicast,
                flow.protocol,
                &flow.ports,
                &flow.source_ports,
                flow.when.as_ref(),
            );
            if let Some(first) = seen.get(&key) {
                self.c.push(
                    Diagnostic::new(
                        Code::DuplicateFlow,
                        format!(
                            "duplicate flow {} → {} {}/{}",
                            spec.component(flow.from).id,
                            spec.destination_id(flow.to),
                            flow.protocol,
                            spec.ports_text(&flow.ports)
                        ),
                    )
                    .with_label(
                        flow.span,
                        format!(
                            "duplicate of the flow at line {}",
                            self.c.source.line_col(first.offset).0
                        ),
                    )
                    .with_label(*first, "first written here")
                    .with_help("remove one of them, or merge their purposes"),
                );
            } else {
                seen.insert(key, flow.span);
            }
        }
    }

    pub(super) fn assign_flow_ids(&self, spec: &mut Spec) {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let ids: Vec<String> = spec
            .flows
            .iter()
            .map(|flow| {
                let mut id = format!(
                    "{}->{}",
                    spec.component(flow.from).id,
                    spec.destination_id(flow.to)
                );
                if let Some(group) = flow.multicast {
                    id.push_str(&format!("@{group}"));
                }
                id.push('/');
                id.push_str(flow.protocol.as_str());
                if flow.protocol.has_ports() {
                    id.push('/');
                    if !flow.source_ports.is_all() {
                        id.push_str(&spec.ports_text(&flow.source_ports));
                        id.push(':');
                    }
                    id.push_str(&spec.ports_text(&flow.ports));
                }
                let n = counts.entry(id.clone()).or_insert(0);
                *n += 1;
                if *n > 1 {
                    id.push_str(&format!("#{n}"));
                }
                id
            })
            .collect();
        for (flow, id) in spec.flows.iter_mut().zip(ids) {
            flow.id = id;
        }
    }
}
