//! Reading and validating a spec: YAML → [`RawSpec`] → [`Spec`], collecting
//! every problem as a [`Diagnostic`].

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde_saphyr::Spanned;

use crate::diag::{did_you_mean, Code, Diagnostic, Diagnostics, SourceFile, Span};
use crate::given::{self, Given};
use crate::model::*;
use crate::raw::*;
use crate::text::is_control;
pub use crate::yaml::{parse_yaml, yaml_error_to_diagnostic, MAX_YAML_NODES};

/// A value read from a file together with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The checked value.
    pub value: T,
    /// Warnings (never errors: with errors there is no value).
    pub warnings: Diagnostics,
}

/// Parses and validates a spec. On success the spec comes with its warnings;
/// otherwise every error and warning found.
pub fn load_spec(source: Arc<SourceFile>) -> Result<Loaded<Spec>, Diagnostics> {
    let raw: RawSpec = match parse_yaml(&source, "spec") {
        Ok(raw) => raw,
        Err(items) => return Err(Diagnostics { source, items }),
    };
    let mut checker = Checker {
        source: &source,
        diagnostics: Vec::new(),
        errors: 0,
        needs_value_reported: BTreeSet::new(),
    };
    let spec = checker.check(raw);
    let diagnostics = Diagnostics {
        source: source.clone(),
        items: checker.diagnostics,
    };
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    Ok(Loaded {
        value: Spec { source, ..spec },
        warnings: diagnostics,
    })
}

/// The explicit spelling of "every port" (`port: "*"`), as flow ids show it.
pub const EVERY_PORT: &str = "*";

/// The longest id, in characters: ids become file names (`<id>.nft`),
/// nftables names, Kubernetes object names and label values (at most 63).
pub const MAX_ID_LEN: usize = 63;

/// The one policy for control characters in free text (names, aliases,
/// descriptions): every output would have to carry them (terminals, YAML
/// and rule comments, markdown, DOT), and none means anything by them, so
/// they are refused where they come in. Descriptions and purposes
/// (`multiline`) may hold line feeds and tabs; names are one line. Returns
/// the diagnostic, pointing at the first offending character when the
/// source holds it raw, else at the whole value (an escape such as `"\e"`).
pub(crate) fn check_text(
    source: &SourceFile,
    code: Code,
    field: &str,
    text: &str,
    span: Span,
    multiline: bool,
) -> Option<Diagnostic> {
    let allowed = |c: char| multiline && (c == '\n' || c == '\t');
    let bad = text.chars().find(|&c| is_control(c) && !allowed(c))?;
    let written = source
        .text
        .get(span.offset..span.offset + span.len)
        .and_then(|value| value.find(bad))
        .map_or(span, |at| Span::new(span.offset + at, bad.len_utf8()));
    let what = match bad {
        '\n' => "a line break".to_owned(),
        '\t' => "a tab".to_owned(),
        c => format!("control character U+{:04X}", u32::from(c)),
    };
    Some(
        Diagnostic::new(code, format!("{what} in {field}"))
            .with_label(written, "not printable text")
            .with_help(if multiline {
                "remove it: descriptions and purposes may hold line breaks and tabs, nothing else that is invisible"
            } else {
                "remove it: names, ids and other one-line texts are printable characters only (descriptions and purposes may span lines)"
            }),
    )
}

/// Whether `id` is a valid identifier: lowercase ASCII letters, digits and
/// dashes, starting with a letter or digit (its length is checked apart,
/// against [`MAX_ID_LEN`]).
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether `host` is a DNS name, optionally with `*` labels.
pub fn is_valid_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            label == "*"
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        })
}

struct Checker<'a> {
    source: &'a SourceFile,
    diagnostics: Vec<Diagnostic>,
    /// How many of `diagnostics` are errors.
    errors: usize,
    /// Parameters already reported as needing a deployment value (once each).
    needs_value_reported: BTreeSet<ParameterId>,
}

/// Where an id is defined, for duplicate detection across sections.
struct Defined {
    span: Span,
    section: &'static str,
}

impl Checker<'_> {
    fn span<T>(&self, spanned: &Spanned<T>) -> Span {
        Span::from_location(&spanned.referenced, self.source)
    }

    fn error_count(&self) -> usize {
        self.errors
    }

    fn push(&mut self, diagnostic: Diagnostic) {
        self.errors += usize::from(diagnostic.is_error());
        self.diagnostics.push(diagnostic);
    }

    fn check(&mut self, raw: RawSpec) -> Spec {
        if raw.portolan.value != 1 {
            let span = self.span(&raw.portolan);
            self.push(
                Diagnostic::new(
                    Code::UnsupportedVersion,
                    format!("unsupported spec format version {}", raw.portolan.value),
                )
                .with_label(span, "this build reads version 1")
                .with_help("write `portolan: 1`"),
            );
        }
        if raw.components.is_empty() {
            let span = self.span(&raw.system.name);
            self.push(
                Diagnostic::new(Code::EmptyList, "the spec has no components")
                    .with_label(span, "system defined here")
                    .with_help("list the roles that are deployed under `components:`"),
            );
        }
        let name = Some(raw.system.name);
        let system = System {
            name: self.text("system name", name, false).unwrap_or_default(),
            vendor: self.text("vendor", raw.system.vendor, false),
            description: self.text("description", raw.system.description, true),
            source: self.text("source", raw.system.source, false),
        };

        let mut endpoint_ids: HashMap<String, Defined> = HashMap::new();
        let components: Vec<Component> = raw
            .components
            .into_iter()
            .map(|c| {
                let span = self.define_id(&c.id, "component", &mut endpoint_ids);
                Component {
                    name: self
                        .text("name", c.name, false)
                        .unwrap_or_else(|| c.id.value.clone()),
                    id: c.id.value,
                    kind: match c.kind {
                        RawKind::System => ComponentKind::System,
                        RawKind::Dependency => ComponentKind::Dependency,
                        RawKind::External => ComponentKind::External,
                    },
                    aliases: c
                        .aliases
                        .into_iter()
                        .filter_map(|a| self.text("alias", Some(a), false))
                        .collect(),
                    description: self.text("description", c.description, true),
                    span,
                }
            })
            .collect();
        let externals: Vec<External> = raw
            .externals
            .into_iter()
            .map(|e| {
                let span = self.define_id(&e.id, "external", &mut endpoint_ids);
                let address = self.check_external_address(&e, span);
                External {
                    name: self
                        .text("name", e.name, false)
                        .unwrap_or_else(|| match &address {
                            ExternalAddress::Host(h) | ExternalAddress::Pattern(h) => h.clone(),
                            ExternalAddress::Cidr(c) => c.to_string(),
                            ExternalAddress::Placeholder(p) => p.clone(),
                        }),
                    id: e.id.value,
                    address,
                    description: self.text("description", e.description, true),
                    span,
                }
            })
            .collect();
        let mut feature_ids = HashMap::new();
        let features: Vec<Feature> = raw
            .features
            .into_iter()
            .map(|f| {
                let span = self.define_id(&f.id, "feature", &mut feature_ids);
                Feature {
                    name: self
                        .text("name", f.name, false)
                        .unwrap_or_else(|| f.id.value.clone()),
                    id: f.id.value,
                    description: self.text("description", f.description, true),
                    span,
                }
            })
            .collect();
        let mut parameter_ids = HashMap::new();
        let parameters: Vec<Parameter> = raw
            .parameters
            .into_iter()
            .map(|p| {
                let span = self.define_id(&p.id, "parameter", &mut parameter_ids);
                let default = p
                    .default
                    .as_ref()
                    .and_then(|d| self.port_number(d.value, self.span(d)));
                Parameter {
                    id: p.id.value,
                    description: self.text("description", p.description, true),
                    default,
                    shown_as: self
                        .text("shown_as", p.shown_as, false)
                        .unwrap_or_else(|| "User-defined".to_owned()),
                    span,
                }
            })
            .collect();

        let mut spec = Spec {
            system,
            components,
            externals,
            features,
            parameters,
            flows: Vec::new(),
            source: Arc::new(self.source.clone()),
        };
        let mut flows = Vec::new();
        let index = spec.endpoint_index();
        for raw_flow in raw.flows {
            self.check_flow(&spec, &index, raw_flow, &mut flows);
        }
        spec.flows = flows;
        self.check_duplicate_flows(&spec);
        // Flows with errors are left out of the model, so "unused" would be
        // a false consequence of another error: hygiene warnings wait until
        // the spec is otherwise valid.
        if self.error_count() == 0 {
            self.check_unused(&spec);
        }
        self.assign_flow_ids(&mut spec);
        spec
    }

    /// Free text from the spec: control characters are an error (see
    /// [`check_text`]). Returns the text.
    fn text(
        &mut self,
        field: &str,
        value: Option<Spanned<String>>,
        multiline: bool,
    ) -> Option<String> {
        let value = value?;
        let span = self.span(&value);
        if let Some(d) = check_text(
            self.source,
            Code::ControlCharacter,
            field,
            &value.value,
            span,
            multiline,
        ) {
            self.push(d);
        }
        Some(value.value)
    }

    /// The value of an optional key; an empty one is an error (see
    /// [`crate::given`]) and reads as absent.
    fn given<T>(&mut self, key: &str, value: Given<T>, help: &str) -> Option<Spanned<T>> {
        match given::take(self.source, key, value, help) {
            Ok(value) => value,
            Err(diagnostic) => {
                self.push(diagnostic);
                None
            }
        }
    }

    fn define_id(
        &mut self,
        id: &Spanned<String>,
        section: &'static str,
        seen: &mut HashMap<String, Defined>,
    ) -> Span {
        let span = self.span(id);
        let length = id.value.chars().count();
        if length > MAX_ID_LEN {
            let head: String = id.value.chars().take(24).collect();
            self.push(
                Diagnostic::new(
                    Code::InvalidId,
                    format!("id `{head}…` is {length} characters long"),
                )
                .with_label(span, format!("ids are at most {MAX_ID_LEN} characters"))
                .with_help(
                    "ids name files, chains and labels; shorten it and keep the long text in `name`",
                ),
            );
        } else if !is_valid_id(&id.value) {
            let suggestion = suggest_id(&id.value);
            self.push(
                Diagnostic::new(Code::InvalidId, format!("invalid id `{}`", id.value))
                    .with_label(span, "ids are lowercase letters, digits and '-'")
                    .with_help(format!("for example `{suggestion}`")),
            );
        }
        if let Some(first) = seen.get(&id.value) {
            self.push(
                Diagnostic::new(
                    Code::DuplicateId,
                    format!("`{}` is defined twice", id.value),
                )
                .with_label(span, format!("second definition, as a {section}"))
                .with_label(
                    first.span,
                    format!("first defined here, as a {}", first.section),
                )
                .with_help("ids must be unique; components and externals share one namespace"),
            );
        } else {
            seen.insert(id.value.clone(), Defined { span, section });
        }
        span
    }

    fn check_external_address(&mut self, e: &RawExternal, span: Span) -> ExternalAddress {
        let given: Vec<&Spanned<String>> = [&e.host, &e.cidr, &e.placeholder]
            .into_iter()
            .flatten()
            .collect();
        if given.len() != 1 {
            self.push(
                Diagnostic::new(
                    Code::InvalidAddress,
                    format!(
                        "external `{}` needs exactly one of `host`, `cidr` or `placeholder`",
                        e.id.value
                    ),
                )
                .with_label(span, format!("{} given", given.len()))
                .with_help("e.g. `host: slack.com`, `cidr: 203.0.113.0/24` or `placeholder: X IRC network`"),
            );
        }
        if let Some(host) = &e.host {
            let hspan = self.span(host);
            if !is_valid_host(&host.value) {
                self.push(
                    Diagnostic::new(Code::InvalidAddress, format!("`{}` is not a host name", host.value))
                        .with_label(hspan, "not a DNS name")
                        .with_help("a host is dot-separated labels of letters, digits and '-'; '*' may stand for a whole label; ports belong on flows"),
                );
            }
            return if host.value.split('.').any(|l| l == "*") {
                ExternalAddress::Pattern(host.value.clone())
            } else {
                ExternalAddress::Host(host.value.clone())
            };
        }
        if let Some(cidr) = &e.cidr {
            let cspan = self.span(cidr);
            let parsed = cidr
                .value
                .parse::<ipnet::IpNet>()
                .or_else(|_| cidr.value.parse::<IpAddr>().map(ipnet::IpNet::from));
            return match parsed {
                Ok(net) => ExternalAddress::Cidr(net.trunc()),
                Err(_) => {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidAddress,
                            format!("`{}` is not a CIDR", cidr.value),
                        )
                        .with_label(cspan, "not an address block")
                        .with_help(
                            "write an address or a block such as 203.0.113.0/24 or 2001:db8::/32",
                        ),
                    );
                    ExternalAddress::Placeholder(cidr.value.clone())
                }
            };
        }
        match &e.placeholder {
            Some(p) => ExternalAddress::Placeholder(p.value.clone()),
            None => ExternalAddress::Placeholder(e.id.value.clone()),
        }
    }

    fn port_number(&mut self, value: i64, span: Span) -> Option<u16> {
        match u16::try_from(value) {
            Ok(port) if port >= 1 => Some(port),
            _ => {
                self.push(
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
        let span = self.span(raw);
        let items: Vec<RawPortItem> = match &raw.value {
            RawPorts::Number(n) => vec![RawPortItem::Number(*n)],
            RawPorts::Text(t) if t.trim() == EVERY_PORT => return Ports::default(),
            RawPorts::Text(t) => vec![RawPortItem::Text(t.clone())],
            RawPorts::List(list) => {
                if list.is_empty() {
                    self.push(
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
            self.push(
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
                    self.push(
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
            self.push(
                Diagnostic::new(Code::InvalidPort, format!("`{text}` is not a port"))
                    .with_label(span, "not a port, range or parameter")
                    .with_help("write 443, \"8000-8010\" or \"$parameter\""),
            );
            return None;
        };
        let start = self.port_number(start, span)?;
        let end = self.port_number(end, span)?;
        if start > end {
            self.push(
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
                    self.push(
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
                    self.push(
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
            self.push(
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
        self.push(
            Diagnostic::new(Code::UnknownReference, format!("unknown component `{id}`"))
                .with_label(span, "not defined in this spec")
                .with_help(help),
        );
    }

    fn check_flow(
        &mut self,
        spec: &Spec,
        index: &EndpointIndex<'_>,
        raw: RawFlow,
        out: &mut Vec<Flow>,
    ) {
        // A flow with an error of its own is left out of the model, so that
        // it cannot cause follow-on diagnostics (a broken port list would
        // otherwise read as "every port" and look like a duplicate).
        let errors_before = self.error_count();
        let port = self.given(
            "port",
            raw.port,
            "write `port: \"*\"` (quoted) to mean every port, or give the port; an omitted `port` also means every port",
        );
        let source_port = self.given(
            "source_port",
            raw.source_port,
            "give the fixed source port, or remove the key to mean any source port",
        );
        let multicast = self.given(
            "multicast",
            raw.multicast,
            "give the group address (e.g. 239.1.1.1), or remove the key for a unicast flow",
        );
        let when = self.given(
            "when",
            raw.when,
            "name the feature that switches the flow on, or remove the key to make the flow unconditional",
        );
        let from_span = self.span(&raw.from);
        let to_span = self.span(&raw.to);
        let protocol_span = self.span(&raw.protocol);
        for (ids, span) in [(&raw.from.value, from_span), (&raw.to.value, to_span)] {
            if ids.is_empty() {
                self.push(
                    Diagnostic::new(Code::EmptyList, "empty list of ids")
                        .with_label(span, "no ids")
                        .with_help("name at least one component"),
                );
            }
        }
        // Each source with where its id is written: the flow's position.
        let sources: Vec<Option<(ComponentId, Span)>> = raw
            .from
            .value
            .items(&raw.from.referenced)
            .map(|(id, at)| {
                let span = Span::from_location(at, self.source);
                self.resolve_source(spec, index, id, span)
                    .map(|c| (c, span))
            })
            .collect();
        let destinations: Vec<Option<Destination>> = raw
            .to
            .value
            .items(&raw.to.referenced)
            .map(|(id, at)| {
                let span = Span::from_location(at, self.source);
                self.resolve_destination(spec, index, id, span)
            })
            .collect();
        let protocol = match raw.protocol.value {
            RawProtocol::Tcp => Protocol::Tcp,
            RawProtocol::Udp => Protocol::Udp,
            RawProtocol::Icmp => Protocol::Icmp,
            RawProtocol::Any => Protocol::Any,
        };
        let mut ports = Ports::default();
        let mut source_ports = Ports::default();
        for (field, raw_ports, target) in [
            ("port", &port, &mut ports),
            ("source_port", &source_port, &mut source_ports),
        ] {
            if let Some(raw_ports) = raw_ports {
                if !protocol.has_ports() {
                    let span = self.span(raw_ports);
                    self.push(
                        Diagnostic::new(
                            Code::PortNotAllowed,
                            format!("`{field}` given for protocol {protocol}"),
                        )
                        .with_label(span, format!("{protocol} has no ports"))
                        .with_help("use protocol tcp or udp, or remove the port")
                        .with_label(protocol_span, "protocol set here"),
                    );
                } else {
                    *target = self.check_ports(spec, raw_ports);
                }
            }
        }
        let multicast = multicast.as_ref().and_then(|m| {
            let span = self.span(m);
            match m.value.trim().parse::<IpAddr>() {
                Ok(addr) if addr.is_multicast() => {
                    if protocol != Protocol::Udp {
                        self.push(
                            Diagnostic::new(
                                Code::MulticastProtocol,
                                format!("multicast over {protocol}"),
                            )
                            .with_label(protocol_span, "multicast is UDP only")
                            .with_help("set `protocol: udp`"),
                        );
                    }
                    Some(addr)
                }
                _ => {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidMulticast,
                            format!("`{}` is not a multicast group", m.value),
                        )
                        .with_label(span, "outside 224.0.0.0/4 and ff00::/8")
                        .with_help("multicast groups are 224.0.0.0 to 239.255.255.255 or ff00::/8"),
                    );
                    None
                }
            }
        });
        if multicast.is_some() {
            for d in destinations.iter().flatten() {
                if let Destination::External(e) = d {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidMulticast,
                            format!("multicast to external endpoint `{}`", spec.external(*e).id),
                        )
                        .with_label(to_span, "multicast receivers must be components")
                        .with_help("name the components that join the group in `to`"),
                    );
                }
            }
        }
        let condition = when.as_ref().and_then(|w| {
            let span = self.span(w);
            self.check_condition(spec, &w.value, span)
        });
        let required = raw.required.unwrap_or(true);
        let name = self.text("name", raw.name, false);
        let purpose = self.text("purpose", raw.purpose, true);
        let origin = self.text("origin", raw.origin, false);
        let guess = self.text("guess", raw.guess, false);
        if !required && when.is_none() {
            self.push(
                Diagnostic::new(Code::OptionalWithoutCondition, "optional flow without `when`")
                    .with_label(from_span, "nothing can switch this flow on or off")
                    .with_help("add `when: <feature>` naming the option that needs it; until then it is treated as enabled"),
            );
        }
        for p in ports.parameters().chain(source_ports.parameters()) {
            if spec.parameters[p.0].default.is_none() && self.needs_value_reported.insert(p) {
                let span = port.as_ref().map_or(from_span, |p| self.span(p));
                self.push(
                    Diagnostic::new(
                        Code::ParameterNeedsValue,
                        format!("parameter `{}` has no default", spec.parameters[p.0].id),
                    )
                    .with_label(span, "used here")
                    .with_label(spec.parameters[p.0].span, "defined without `default`")
                    .with_help("every deployment must set it under `parameters:`"),
                );
            }
        }
        if self.error_count() > errors_before {
            return;
        }
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
            if protocol == Protocol::Any && ports.is_all() && !to_outside {
                self.push(
                    Diagnostic::new(
                        Code::BroadFlow,
                        "a flow allowing every protocol and port inside the system",
                    )
                    .with_label(protocol_span, "protocol any, no port")
                    .with_help("name the protocol and ports if the vendor states them"),
                );
            }
            out.push(Flow {
                id: String::new(),
                from: source,
                to: destination,
                multicast,
                protocol,
                ports: ports.clone(),
                source_ports: source_ports.clone(),
                required,
                when: condition.clone(),
                name: name.clone(),
                purpose: purpose.clone(),
                origin: origin.clone(),
                guess: guess.clone(),
                span,
            });
        }
    }

    fn check_duplicate_flows(&mut self, spec: &Spec) {
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
                self.push(
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
                            self.source.line_col(first.offset).0
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

    fn check_unused(&mut self, spec: &Spec) {
        let used_features: BTreeSet<FeatureId> = spec
            .flows
            .iter()
            .filter_map(|f| f.when.as_ref())
            .flat_map(Condition::features)
            .collect();
        for (i, feature) in spec.features.iter().enumerate() {
            if !used_features.contains(&FeatureId(i)) {
                self.push(
                    Diagnostic::new(
                        Code::UnusedFeature,
                        format!("feature `{}` switches no flow on", feature.id),
                    )
                    .with_label(feature.span, "defined here")
                    .with_help("use it in a flow's `when`, or remove it"),
                );
            }
        }
        let used_parameters: BTreeSet<ParameterId> = spec
            .flows
            .iter()
            .flat_map(|f| f.ports.parameters().chain(f.source_ports.parameters()))
            .collect();
        for (i, parameter) in spec.parameters.iter().enumerate() {
            if !used_parameters.contains(&ParameterId(i)) {
                self.push(
                    Diagnostic::new(
                        Code::UnusedParameter,
                        format!("parameter `{}` is used by no flow", parameter.id),
                    )
                    .with_label(parameter.span, "defined here")
                    .with_help("use it as `port: $id`, or remove it"),
                );
            }
        }
    }

    fn assign_flow_ids(&self, spec: &mut Spec) {
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

fn suggest_id(id: &str) -> String {
    let mut out = String::new();
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "component-1".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("data-storage"));
        assert!(is_valid_id("k8s"));
        assert!(!is_valid_id("Data Storage"));
        assert!(!is_valid_id("-x"));
        assert!(!is_valid_id(""));
        assert_eq!(suggest_id("Long-tail Store"), "long-tail-store");
    }

    /// Regression (issue 9, row 16): a 260-character id validated, then
    /// `generate` failed with "File name too long".
    #[test]
    fn ids_have_a_maximum_length() {
        let spec = |id: &str| {
            format!(
                "portolan: 1\nsystem: {{name: X}}\ncomponents: [{{id: {id}}}, {{id: b}}]\nflows: [{{from: {id}, to: b, protocol: tcp, port: 1}}]\n"
            )
        };
        let longest = "a".repeat(MAX_ID_LEN);
        assert!(load_spec(SourceFile::new("ok.yaml", spec(&longest))).is_ok());
        let long = "a".repeat(260);
        let errors = load_spec(SourceFile::new("long.yaml", spec(&long)))
            .expect_err("a 260-character id is refused");
        let found: Vec<String> = errors
            .items
            .iter()
            .filter(|d| d.code == Code::InvalidId)
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(
            found,
            [format!("id `{}…` is 260 characters long", "a".repeat(24))]
        );
    }

    /// Regression (issue 9, row 7): `port:` and `when:` without a value
    /// read as every port and as an unconditional flow; `"*"` is the
    /// explicit spelling of every port.
    #[test]
    fn empty_values_are_refused_and_every_port_is_explicit() {
        let spec = |flow: &str| {
            format!(
                "portolan: 1\nsystem: {{name: X}}\ncomponents: [{{id: a}}, {{id: b}}]\nfeatures: [{{id: f}}]\nflows:\n  - {{from: a, to: b, protocol: tcp, when: f}}\n  - {flow}\n"
            )
        };
        for flow in [
            "{from: a, to: b, protocol: tcp, port: , when: f}",
            "{from: a, to: b, protocol: udp, port: 53, when: ~}",
            "from: a\n    to: b\n    protocol: tcp\n    port:\n    when: f",
        ] {
            let errors = load_spec(SourceFile::new("x.yaml", spec(flow))).expect_err(flow);
            let codes: Vec<Code> = errors.items.iter().map(|d| d.code).collect();
            assert_eq!(codes, [Code::EmptyValue], "{flow}");
        }
        let every = load_spec(SourceFile::new(
            "x.yaml",
            spec("{from: b, to: a, protocol: tcp, port: \"*\", when: f}"),
        ))
        .expect("`*` is every port");
        assert_eq!(every.value.flows[1].id, "b->a/tcp/*");
        let mixed = spec("{from: b, to: a, protocol: tcp, port: [80, \"*\"], when: f}");
        let errors = load_spec(SourceFile::new("x.yaml", mixed)).expect_err("`*` in a list");
        assert_eq!(errors.items[0].code, Code::InvalidPort);
    }

    #[test]
    fn hosts() {
        assert!(is_valid_host("slack.com"));
        assert!(is_valid_host("monitoring.*.amazonaws.com"));
        assert!(!is_valid_host("usa.bulksms.com:5567"));
        assert!(!is_valid_host("a..b"));
        assert!(!is_valid_host("X IRC network"));
    }
}
