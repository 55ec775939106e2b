//! Reading and validating a spec: YAML → [`RawSpec`] → [`Spec`], collecting
//! every problem as a [`Diagnostic`].

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde_saphyr::Spanned;

pub use crate::checker::Loaded;
use crate::checker::{self, Checker};
use crate::diag::{Code, Diagnostic, Diagnostics, SourceFile, Span};
use crate::given::Given;
use crate::model::*;
use crate::raw::*;
use crate::text::is_control;
pub use crate::yaml::{parse_yaml, yaml_error_to_diagnostic, Format, MAX_YAML_NODES};

mod flow;

/// Parses and validates a spec. On success the spec comes with its warnings;
/// otherwise every error and warning found.
pub fn load_spec(source: Arc<SourceFile>) -> Result<Loaded<Spec>, Diagnostics> {
    checker::load(source, &Format::SPEC, |c, raw: RawSpec| {
        SpecChecker {
            c,
            needs_value_reported: BTreeSet::new(),
        }
        .check(raw)
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

/// Checks a [`RawSpec`] into a [`Spec`].
struct SpecChecker<'c> {
    c: &'c mut Checker,
    /// Parameters already reported as needing a deployment value (once each).
    needs_value_reported: BTreeSet<ParameterId>,
}

/// Where an id is defined, for duplicate detection across sections.
struct Defined {
    span: Span,
    section: &'static str,
}

impl SpecChecker<'_> {
    fn check(&mut self, raw: RawSpec) -> Spec {
        self.c.version(&Format::SPEC, &raw.portolan);
        if raw.components.is_empty() {
            let span = self.c.span(&raw.system.name);
            self.c.push(
                Diagnostic::new(Code::EmptyList, "the spec has no components")
                    .with_label(span, "system defined here")
                    .with_help("list the roles that are deployed under `components:`"),
            );
        }
        let system = self.system(raw.system);
        let mut endpoint_ids: HashMap<String, Defined> = HashMap::new();
        let components: Vec<Component> = raw
            .components
            .into_iter()
            .map(|c| self.component(c, &mut endpoint_ids))
            .collect();
        let externals: Vec<External> = raw
            .externals
            .into_iter()
            .map(|e| self.external(e, &mut endpoint_ids))
            .collect();
        let mut feature_ids = HashMap::new();
        let features: Vec<Feature> = raw
            .features
            .into_iter()
            .map(|f| self.feature(f, &mut feature_ids))
            .collect();
        let mut parameter_ids = HashMap::new();
        let parameters: Vec<Parameter> = raw
            .parameters
            .into_iter()
            .map(|p| self.parameter(p, &mut parameter_ids))
            .collect();

        let mut spec = Spec {
            system,
            components,
            externals,
            features,
            parameters,
            flows: Vec::new(),
            source: self.c.source.clone(),
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
        if self.c.error_count() == 0 {
            self.check_unused(&spec);
        }
        self.assign_flow_ids(&mut spec);
        spec
    }

    fn system(&mut self, raw: RawSystem) -> System {
        System {
            name: self
                .text("system name", Some(raw.name), false)
                .unwrap_or_default(),
            vendor: self.text("vendor", raw.vendor, false),
            description: self.text("description", raw.description, true),
            source: self.text("source", raw.source, false),
        }
    }

    fn component(&mut self, c: RawComponent, ids: &mut HashMap<String, Defined>) -> Component {
        let span = self.define_id(&c.id, "component", ids);
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
    }

    fn external(&mut self, e: RawExternal, ids: &mut HashMap<String, Defined>) -> External {
        let span = self.define_id(&e.id, "external", ids);
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
    }

    fn feature(&mut self, f: RawFeature, ids: &mut HashMap<String, Defined>) -> Feature {
        let span = self.define_id(&f.id, "feature", ids);
        Feature {
            name: self
                .text("name", f.name, false)
                .unwrap_or_else(|| f.id.value.clone()),
            id: f.id.value,
            description: self.text("description", f.description, true),
            span,
        }
    }

    fn parameter(&mut self, p: RawParameter, ids: &mut HashMap<String, Defined>) -> Parameter {
        let span = self.define_id(&p.id, "parameter", ids);
        let default = p
            .default
            .as_ref()
            .and_then(|d| self.port_number(d.value, self.c.span(d)));
        Parameter {
            id: p.id.value,
            description: self.text("description", p.description, true),
            default,
            shown_as: self
                .text("shown_as", p.shown_as, false)
                .unwrap_or_else(|| "User-defined".to_owned()),
            span,
        }
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
        self.c
            .printable(Code::ControlCharacter, field, &value, multiline);
        Some(value.value)
    }

    /// The value of an optional key; an empty one is an error (see
    /// [`crate::given`]) and reads as absent.
    fn given<T>(&mut self, key: &str, value: Given<T>, help: &str) -> Option<Spanned<T>> {
        self.c.given(key, value, help).flatten()
    }

    fn define_id(
        &mut self,
        id: &Spanned<String>,
        section: &'static str,
        seen: &mut HashMap<String, Defined>,
    ) -> Span {
        let span = self.c.span(id);
        let length = id.value.chars().count();
        if length > MAX_ID_LEN {
            let head: String = id.value.chars().take(24).collect();
            self.c.push(
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
            self.c.push(
                Diagnostic::new(Code::InvalidId, format!("invalid id `{}`", id.value))
                    .with_label(span, "ids are lowercase letters, digits and '-'")
                    .with_help(format!("for example `{suggestion}`")),
            );
        }
        if let Some(first) = seen.get(&id.value) {
            self.c.push(
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
            self.c.push(
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
            let hspan = self.c.span(host);
            if !is_valid_host(&host.value) {
                self.c.push(
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
            let cspan = self.c.span(cidr);
            let parsed = cidr
                .value
                .parse::<ipnet::IpNet>()
                .or_else(|_| cidr.value.parse::<IpAddr>().map(ipnet::IpNet::from));
            return match parsed {
                Ok(net) => ExternalAddress::Cidr(net.trunc()),
                Err(_) => {
                    self.c.push(
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

    fn check_unused(&mut self, spec: &Spec) {
        let used_features: BTreeSet<FeatureId> = spec
            .flows
            .iter()
            .filter_map(|f| f.when.as_ref())
            .flat_map(Condition::features)
            .collect();
        for (i, feature) in spec.features.iter().enumerate() {
            if !used_features.contains(&FeatureId(i)) {
                self.c.push(
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
                self.c.push(
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
