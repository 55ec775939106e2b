//! Checking a [`RawDeployment`] against its spec into a [`Deployment`]:
//! the sections in file order, then what needs the whole deployment (hosts,
//! overlapping addresses, placed flow ends, site flows).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use super::flows::top_level_key;
use super::hosts::Owner;
use super::model::*;
use super::raw::*;
use crate::check::Format;
use crate::checker::{self, Checker, Loaded};
use crate::diag::{did_you_mean, Code, Diagnostic, Diagnostics, SourceFile, Span};
use crate::model::*;

/// Parses a deployment and checks it against `spec`. On success the
/// deployment comes with its warnings; otherwise every error and warning found.
pub fn load_deployment(
    source: Arc<SourceFile>,
    spec: &Spec,
) -> Result<Loaded<Deployment>, Diagnostics> {
    checker::load(source, &Format::DEPLOYMENT, |c, raw: RawDeployment| {
        DeploymentChecker {
            c,
            spec,
            index: spec.endpoint_index(),
            already_reported: BTreeSet::new(),
        }
        .check(raw)
    })
}

/// Checks a [`RawDeployment`] against its spec.
pub(super) struct DeploymentChecker<'c, 'a> {
    pub(super) c: &'c mut Checker,
    pub(super) spec: &'a Spec,
    /// The spec's components and externals by id.
    pub(super) index: EndpointIndex<'a>,
    /// Ids whose placement already has an error (a bad address, or a
    /// misspelt key that likely meant them): "unplaced" would only repeat it.
    pub(super) already_reported: BTreeSet<String>,
}

/// The closest candidate: a likely typo by similarity, or one edit
/// (a transposition counts as one) away.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    did_you_mean(word, candidates.clone()).or_else(|| {
        candidates
            .into_iter()
            .find(|c| strsim::damerau_levenshtein(word, c) <= 1.max(word.len() / 4))
    })
}

impl DeploymentChecker<'_, '_> {
    pub(super) fn check(&mut self, raw: RawDeployment) -> Deployment {
        self.c.version(&Format::DEPLOYMENT, &raw.deployment);
        let features = self.check_features(&raw.features);
        let parameters = self.check_parameters(&raw.parameters);
        let top = |key| top_level_key(&self.c.source.text, key);
        let version_span = top("deployment").unwrap_or_default();
        let components_span = top("components").unwrap_or(version_span);
        let externals_span = top("externals").unwrap_or(components_span);
        let mut addressed: Vec<(Owner, IpNet, Span)> = Vec::new();
        let components = self.components(&raw.components.value, &mut addressed);
        let externals = self.externals(&raw.externals.value, &mut addressed);
        let mut deployment = Deployment {
            name: self.text("name", raw.name.as_ref(), false),
            description: self.text("description", raw.description.as_ref(), true),
            features,
            parameters,
            components,
            externals,
            site: Vec::new(),
            components_span,
            externals_span,
            source: self.c.source.clone(),
        };
        let host_spans = self.host_spans(&raw.components.value);
        let hosts = self.check_hosts(&deployment, &host_spans);
        self.check_overlaps(&deployment, &addressed, &hosts);
        self.check_flows(&deployment);
        deployment.site = crate::site::check(self.spec, self.c, &raw.site, &deployment);
        let at = top_level_key(&self.c.source.text, "site").unwrap_or(version_span);
        for d in crate::site::dns_warnings(self.spec, &deployment, at) {
            self.c.push(d);
        }
        deployment
    }

    /// The `components:` section; the addresses of each component not of
    /// kind `external` go to `addressed` (components of kind `external` are
    /// "anywhere": overlapping them is their point).
    fn components(
        &mut self,
        raw: &RawMap<Option<RawComponentPlacement>>,
        addressed: &mut Vec<(Owner, IpNet, Span)>,
    ) -> BTreeMap<ComponentId, Placement> {
        let mut components = BTreeMap::new();
        for (key, placement) in &raw.0 {
            let key_span = self.c.span(key);
            let Some(id) = self.component_key(&key.value, key_span) else {
                continue;
            };
            if components.contains_key(&id) {
                continue; // serde-saphyr already rejects duplicate keys
            }
            if let Some(p) = placement {
                if self.spec.component(id).kind != ComponentKind::External {
                    for (net, span) in self.nets_with_spans(p.addresses.iter()) {
                        addressed.push((Owner::Component(id), net, span));
                    }
                }
            }
            let placement = self.placement(key, placement.as_ref(), |checker, p| {
                checker.check_component_placement(p, key_span)
            });
            components.insert(id, placement);
        }
        components
    }

    /// The `externals:` section; the addresses of each go to `addressed`.
    fn externals(
        &mut self,
        raw: &RawMap<Option<RawExternalBinding>>,
        addressed: &mut Vec<(Owner, IpNet, Span)>,
    ) -> BTreeMap<ExternalId, Placement> {
        let mut externals = BTreeMap::new();
        for (key, binding) in &raw.0 {
            let key_span = self.c.span(key);
            let Some(id) = self.external_key(&key.value, key_span) else {
                continue;
            };
            let placement = self.placement(key, binding.as_ref(), |checker, b| {
                checker.check_external_binding(b, key_span)
            });
            if let Some(b) = binding {
                for (net, span) in self.nets_with_spans(b.addresses.iter()) {
                    addressed.push((Owner::External(id), net, span));
                }
            }
            externals.insert(id, placement);
        }
        externals
    }

    /// The placement under `key`, checked by `check` (an id without a value
    /// is placed nowhere); when it has an error, the id is marked
    /// reported, so that "unplaced" does not repeat it.
    fn placement<R>(
        &mut self,
        key: &Spanned<String>,
        raw: Option<&R>,
        check: impl FnOnce(&mut Self, &R) -> Placement,
    ) -> Placement {
        let errors_before = self.c.error_count();
        let placement = match raw {
            Some(raw) => check(self, raw),
            None => Placement {
                span: self.c.span(key),
                ..Placement::default()
            },
        };
        if self.c.error_count() > errors_before {
            self.already_reported.insert(key.value.clone());
        }
        placement
    }

    /// Where each component's `host:` is written.
    fn host_spans(
        &self,
        raw: &RawMap<Option<RawComponentPlacement>>,
    ) -> BTreeMap<ComponentId, Span> {
        raw.0
            .iter()
            .filter_map(|(key, p)| {
                let id = self.index.component(&key.value)?;
                let host = p.as_ref()?.host.as_ref()?;
                Some((id, self.c.span(host)))
            })
            .collect()
    }

    /// Free text: control characters are an error (see [`crate::check::check_text`]).
    pub(super) fn text(
        &mut self,
        field: &str,
        value: Option<&Spanned<String>>,
        multiline: bool,
    ) -> Option<String> {
        let value = value?;
        let code = Code::DeploymentControlCharacter;
        self.c.printable(code, field, value, multiline);
        Some(value.value.clone())
    }

    pub(super) fn check_features(&mut self, raw: &[Spanned<String>]) -> BTreeSet<FeatureId> {
        let mut out = BTreeSet::new();
        for name in raw {
            let span = self.c.span(name);
            match self.spec.feature_by_id(&name.value) {
                Some(f) => {
                    out.insert(f);
                }
                None => {
                    let near = suggest(
                        &name.value,
                        self.spec.features.iter().map(|f| f.id.as_str()),
                    );
                    let help = match near {
                        Some(n) => format!("did you mean `{n}`?"),
                        None if self.spec.features.is_empty() => {
                            "the spec defines no features".to_owned()
                        }
                        None => format!(
                            "the spec's features: {}",
                            self.spec
                                .features
                                .iter()
                                .map(|f| f.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.c.push(
                        Diagnostic::new(
                            Code::DeploymentUnknownFeature,
                            format!("unknown feature `{}`", name.value),
                        )
                        .with_label(span, "the spec defines no such feature")
                        .with_help(help),
                    );
                }
            }
        }
        out
    }

    pub(super) fn check_parameters(
        &mut self,
        raw: &RawMap<Spanned<i64>>,
    ) -> BTreeMap<ParameterId, u16> {
        let mut out = BTreeMap::new();
        for (key, value) in &raw.0 {
            let key_span = self.c.span(key);
            let Some(p) = self.spec.parameter_by_id(&key.value) else {
                let near = suggest(
                    &key.value,
                    self.spec.parameters.iter().map(|p| p.id.as_str()),
                );
                if let Some(n) = near {
                    self.already_reported.insert(format!("${n}"));
                }
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentUnknownParameter,
                        format!("unknown parameter `{}`", key.value),
                    )
                    .with_label(key_span, "the spec defines no such parameter")
                    .with_help(match near {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => "only the spec's `parameters:` can be given values".to_owned(),
                    }),
                );
                continue;
            };
            match u16::try_from(value.value) {
                Ok(port) if port >= 1 => {
                    out.insert(p, port);
                }
                _ => {
                    let span = self.c.span(value);
                    self.c.push(
                        Diagnostic::new(
                            Code::DeploymentInvalidPort,
                            format!("port {} is out of range", value.value),
                        )
                        .with_label(span, "not in 1..65535")
                        .with_help("a parameter's value is a port from 1 to 65535"),
                    );
                }
            }
        }
        out
    }

    pub(super) fn component_key(&mut self, id: &str, span: Span) -> Option<ComponentId> {
        if let Some(c) = self.index.component(id) {
            return Some(c);
        }
        let help = if self.index.external(id).is_some() {
            format!("`{id}` is an external endpoint: put it under `externals:`")
        } else if let Some(c) = self.spec.components.iter().find(|c| {
            c.name.eq_ignore_ascii_case(id) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
        }) {
            self.already_reported.insert(c.id.clone());
            format!("`{id}` names component `{}`: use its id", c.id)
        } else if let Some(near) = suggest(id, self.spec.components.iter().map(|c| c.id.as_str())) {
            self.already_reported.insert(near.to_owned());
            format!("did you mean `{near}`?")
        } else {
            "only the spec's components can be placed".to_owned()
        };
        self.c.push(
            Diagnostic::new(
                Code::DeploymentUnknownComponent,
                format!("unknown component `{id}`"),
            )
            .with_label(span, "the spec has no such component")
            .with_help(help),
        );
        None
    }

    pub(super) fn external_key(&mut self, id: &str, span: Span) -> Option<ExternalId> {
        if let Some(e) = self.index.external(id) {
            return Some(e);
        }
        let help = if self.index.component(id).is_some() {
            format!("`{id}` is a component: put it under `components:`")
        } else if let Some(near) = suggest(id, self.spec.externals.iter().map(|e| e.id.as_str())) {
            self.already_reported.insert(near.to_owned());
            format!("did you mean `{near}`?")
        } else {
            "only the spec's externals can be bound".to_owned()
        };
        self.c.push(
            Diagnostic::new(
                Code::DeploymentUnknownExternal,
                format!("unknown external endpoint `{id}`"),
            )
            .with_label(span, "the spec has no such external endpoint")
            .with_help(help),
        );
        None
    }
}
