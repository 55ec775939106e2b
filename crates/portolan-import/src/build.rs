//! What the importer collects while it reads a page (components, endpoints,
//! features, parameters, flows, and the report), by index; `draft.rs` turns
//! it into the typed draft spec.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::conditions::{CondText, Expr};
use crate::ports::{PortItem, Proto};
use crate::report::{Guess, ImportReport, Merged, Skipped, Warning, WarningCode};
use crate::text::{slug, squash};

pub(crate) use crate::kinds::kind_of;

/// What a component is to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Part of the product.
    System,
    /// Provided by the operator.
    Dependency,
    /// The outside world.
    External,
}

/// A component being built.
#[derive(Debug, Clone)]
pub struct Comp {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub aliases: Vec<String>,
    /// Link targets that named it (`/Components.md#API`).
    pub anchors: Vec<String>,
    /// What it is, when the importer had to introduce it itself.
    pub description: Option<String>,
}

/// Where an external endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    Host(String),
    Cidr(String),
    Placeholder(String),
}

/// An external endpoint being built.
#[derive(Debug, Clone)]
pub struct Ext {
    pub id: String,
    pub name: Option<String>,
    pub addr: Addr,
}

/// A feature being built.
#[derive(Debug, Clone)]
pub struct Feat {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

/// A parameter being built.
#[derive(Debug, Clone)]
pub struct Param {
    pub id: String,
    pub default: Option<u16>,
    pub shown_as: String,
    pub description: Option<String>,
}

/// A condition over features (by index).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cond {
    Feature(usize),
    Any(Vec<Cond>),
    All(Vec<Cond>),
    Not(Box<Cond>),
}

/// A destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    Comp(usize),
    Ext(usize),
}

/// A port of a flow being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PItem {
    Range(u16, u16),
    Param(usize),
}

/// A flow being built: one source, one destination.
#[derive(Debug, Clone)]
pub struct Draft {
    pub from: usize,
    pub to: Dest,
    pub proto: Proto,
    pub ports: Vec<PItem>,
    pub source_ports: Vec<PItem>,
    pub multicast: Option<IpAddr>,
    pub required: bool,
    pub when: Option<Cond>,
    pub name: Option<String>,
    pub purpose: Option<String>,
    /// The page line it came from.
    pub line: usize,
    /// Other lines that say the same.
    pub also: Vec<usize>,
    pub guesses: Vec<String>,
}

impl Draft {
    /// A required flow with no ports yet.
    pub fn new(from: usize, to: Dest, proto: Proto, line: usize) -> Self {
        Self {
            from,
            to,
            proto,
            ports: Vec::new(),
            source_ports: Vec::new(),
            multicast: None,
            required: true,
            when: None,
            name: None,
            purpose: None,
            line,
            also: Vec::new(),
            guesses: Vec::new(),
        }
    }

    /// What makes two flows the same requirement (the spec's duplicate key).
    pub fn key(&self) -> FlowKey {
        (
            self.from,
            self.to,
            self.multicast,
            self.proto,
            self.ports.clone(),
            self.source_ports.clone(),
            self.when.clone(),
        )
    }
}

/// The spec's duplicate key of a flow.
pub type FlowKey = (
    usize,
    Dest,
    Option<IpAddr>,
    Proto,
    Vec<PItem>,
    Vec<PItem>,
    Option<Cond>,
);

/// What the flows use, by index.
#[derive(Debug, Default)]
pub struct Used {
    /// External endpoints some flow reaches.
    pub externals: HashSet<usize>,
    /// Features some flow's condition names.
    pub features: HashSet<usize>,
    /// Parameters some flow's ports name.
    pub parameters: HashSet<usize>,
}

/// Everything read so far.
#[derive(Debug, Default)]
pub struct Builder {
    pub file: String,
    pub components: Vec<Comp>,
    pub externals: Vec<Ext>,
    pub features: Vec<Feat>,
    pub params: Vec<Param>,
    /// Parameters a rendered page defines in its Parameters list.
    pub param_defs: Vec<Param>,
    pub flows: Vec<Draft>,
    pub report: ImportReport,
    ids: HashSet<String>,
    /// Squashed names and aliases of components, to their index.
    names: std::collections::HashMap<String, usize>,
    /// Duplicate keys of flows, to their index.
    keys: std::collections::HashMap<FlowKey, usize>,
    /// Addresses of external endpoints, to their index.
    addrs: std::collections::HashMap<Addr, usize>,
    /// Squashed ids and names of features, to their index.
    feature_names: std::collections::HashMap<String, usize>,
    /// Warnings already given, so that each is given once.
    warned: HashSet<(usize, String)>,
}

fn unique(ids: &mut HashSet<String>, base: &str, fallback: &str) -> String {
    let base = if base.is_empty() { fallback } else { base };
    let mut id = base.to_owned();
    let mut n = 2;
    while ids.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    ids.insert(id.clone());
    id
}

impl Builder {
    /// A builder for a page.
    pub fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            report: ImportReport {
                file: file.to_owned(),
                ..ImportReport::default()
            },
            ..Self::default()
        }
    }

    /// Records a warning.
    pub fn warn(&mut self, line: usize, code: WarningCode, message: impl Into<String>) {
        let message = message.into();
        if self.warned.insert((line, message.clone())) {
            self.report.warnings.push(Warning {
                line,
                code,
                message,
            });
        }
    }

    /// Records a skipped row or item.
    pub fn skip(&mut self, line: usize, text: &str, reason: impl Into<String>) {
        self.report.rows_skipped.push(Skipped {
            line,
            text: text.trim().to_owned(),
            reason: reason.into(),
        });
    }

    /// Records a line consumed as a definition (feature, parameter, condition, subject).
    pub fn definition(&mut self, line: usize) {
        self.report.definitions.push(line);
    }

    /// The component with this name, alias or anchor.
    pub fn find_component(&self, name: &str) -> Option<usize> {
        let key = squash(name);
        if key.is_empty() {
            return None;
        }
        self.names.get(&key).copied()
    }

    /// The component with a link target.
    pub fn find_anchor(&self, anchor: &str) -> Option<usize> {
        if anchor.is_empty() {
            return None;
        }
        self.components
            .iter()
            .position(|c| c.anchors.iter().any(|a| a == anchor))
    }

    /// The component with this name, created if new.
    pub fn component(&mut self, name: &str, kind: Kind) -> usize {
        if let Some(i) = self.find_component(name) {
            return i;
        }
        let id = unique(&mut self.ids, &slug(name), "component");
        self.names
            .entry(squash(name))
            .or_insert(self.components.len());
        self.components.push(Comp {
            id,
            name: name.trim().to_owned(),
            kind,
            aliases: Vec::new(),
            anchors: Vec::new(),
            description: None,
        });
        self.components.len() - 1
    }

    /// Adds another spelling to a component.
    pub fn alias(&mut self, component: usize, alias: &str) {
        let c = &mut self.components[component];
        if squash(&c.name) != squash(alias)
            && !c.aliases.iter().any(|a| a.eq_ignore_ascii_case(alias))
        {
            c.aliases.push(alias.trim().to_owned());
            self.names.entry(squash(alias)).or_insert(component);
        }
    }

    /// An external endpoint, created if new.
    pub fn external(&mut self, addr: Addr, name: Option<&str>) -> usize {
        if let Some(&i) = self.addrs.get(&addr) {
            if self.externals[i].name.is_none() {
                self.externals[i].name = name.map(str::to_owned);
            }
            return i;
        }
        let base = match &addr {
            Addr::Host(h) => slug(&h.replace('*', "any")),
            Addr::Cidr(c) => format!("net-{}", slug(c)),
            Addr::Placeholder(p) => slug(p),
        };
        let id = unique(&mut self.ids, &base, "external");
        self.addrs.insert(addr.clone(), self.externals.len());
        self.externals.push(Ext {
            id,
            name: name.map(str::to_owned),
            addr,
        });
        self.externals.len() - 1
    }

    /// The feature a phrase names, created if new.
    pub fn feature(&mut self, phrase: &str) -> usize {
        let key = squash(phrase);
        if let Some(&i) = self.feature_names.get(&key) {
            return i;
        }
        let mut id = slug(phrase);
        if id.is_empty() {
            id = "feature".to_owned();
        }
        let base = id.clone();
        let mut n = 2;
        while self.feature_names.contains_key(&squash(&id)) {
            id = format!("{base}-{n}");
            n += 1;
        }
        self.feature_names.insert(key, self.features.len());
        self.feature_names
            .entry(squash(&id))
            .or_insert(self.features.len());
        let mut name = phrase.trim().to_owned();
        if let Some(first) = name.chars().next() {
            name.replace_range(..first.len_utf8(), &first.to_uppercase().to_string());
        }
        self.features.push(Feat {
            id,
            name,
            description: None,
        });
        self.features.len() - 1
    }

    /// A feature defined by the page itself (a rendered Features list).
    pub fn define_feature(&mut self, id: &str, name: Option<&str>, description: Option<&str>) {
        if self.features.iter().any(|f| f.id == id) {
            return;
        }
        self.feature_names
            .entry(squash(id))
            .or_insert(self.features.len());
        if let Some(name) = name {
            self.feature_names
                .entry(squash(name))
                .or_insert(self.features.len());
        }
        self.features.push(Feat {
            id: id.to_owned(),
            name: name.unwrap_or(id).to_owned(),
            description: description.map(str::to_owned),
        });
    }

    /// The condition a text states.
    pub fn condition(&mut self, text: &CondText) -> Option<Cond> {
        match text {
            CondText::Phrases(phrases) => {
                let mut items: Vec<Cond> = phrases
                    .iter()
                    .map(|p| Cond::Feature(self.feature(p)))
                    .collect();
                items.dedup();
                match items.len() {
                    0 => None,
                    1 => items.pop(),
                    _ => Some(Cond::Any(items)),
                }
            }
            CondText::Expr(expr) => Some(self.expr(expr)),
        }
    }

    /// Gives the features of a condition the sentence that states it as
    /// their description, where they have none yet.
    pub fn describe(&mut self, cond: Option<&Cond>, sentence: &str) {
        let Some(cond) = cond else { return };
        let sentence = sentence.trim();
        if sentence.is_empty() {
            return;
        }
        let mut features = HashSet::new();
        collect_features(cond, &mut features);
        for f in features {
            if self.features[f].description.is_none() {
                self.features[f].description = Some(sentence.to_owned());
            }
        }
    }

    fn expr(&mut self, expr: &Expr) -> Cond {
        match expr {
            Expr::Id(id) => Cond::Feature(self.feature(id)),
            Expr::Any(items) => Cond::Any(items.iter().map(|e| self.expr(e)).collect()),
            Expr::All(items) => Cond::All(items.iter().map(|e| self.expr(e)).collect()),
            Expr::Not(inner) => Cond::Not(Box::new(self.expr(inner))),
        }
    }

    /// The parameter for a port the operator chooses.
    ///
    /// A page that defines its parameters (a rendered page) is followed;
    /// otherwise the parameter is named after `hint` (`postgres` →
    /// `postgres-port`) and shared by every row that gives the same default.
    pub fn parameter(
        &mut self,
        hint: &str,
        shown_as: &str,
        default: Option<u16>,
        description: &str,
    ) -> usize {
        let hint = slug(hint);
        let candidates: Vec<&Param> = self
            .param_defs
            .iter()
            .filter(|p| p.shown_as.eq_ignore_ascii_case(shown_as.trim()))
            .collect();
        let chosen = candidates
            .iter()
            .find(|p| !hint.is_empty() && p.id.starts_with(&hint))
            .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
            .map(|p| (*p).clone());
        if let Some(def) = chosen {
            if let Some(i) = self.params.iter().position(|p| p.id == def.id) {
                return i;
            }
            return self.push_param(def);
        }
        let base = if hint.is_empty() {
            "port".to_owned()
        } else {
            format!("{hint}-port")
        };
        // One port of one thing is one parameter: a row that states no
        // default shares the parameter of a row that does.
        if let Some(i) = self.params.iter().position(|p| {
            (p.id == base || p.id.starts_with(&format!("{base}-")))
                && (p.default == default || default.is_none())
        }) {
            return i;
        }
        self.push_param(Param {
            id: base,
            default,
            shown_as: shown_as.trim().to_owned(),
            description: (!description.is_empty()).then(|| description.to_owned()),
        })
    }

    /// The parameter a rendered port names (`$postgres-port`).
    pub fn parameter_ref(&mut self, id: &str, line: usize) -> usize {
        let key = match slug(id) {
            k if k.is_empty() => "port".to_owned(),
            k => k,
        };
        if let Some(i) = self.params.iter().position(|p| p.id == key) {
            return i;
        }
        let def = self.param_defs.iter().find(|p| p.id == key).cloned();
        let param = match def {
            Some(def) => def,
            None => {
                self.warn(
                    line,
                    WarningCode::ParameterNotDefined,
                    format!("parameter `${id}` is not defined on the page; it has no default"),
                );
                Param {
                    id: key,
                    default: None,
                    shown_as: "User-defined".to_owned(),
                    description: None,
                }
            }
        };
        self.push_param(param)
    }

    /// Adds a parameter, renaming it if its id is taken.
    fn push_param(&mut self, mut param: Param) -> usize {
        let mut ids: HashSet<String> = self.params.iter().map(|p| p.id.clone()).collect();
        param.id = unique(&mut ids, &slug(&param.id), "port");
        self.params.push(param);
        self.params.len() - 1
    }

    /// Port items of the spec for the page's port items.
    pub fn port_items(
        &mut self,
        items: &[PortItem],
        hint: &str,
        description: &str,
        line: usize,
        guesses: &mut Vec<String>,
    ) -> Vec<PItem> {
        let mut out = Vec::new();
        for item in items {
            match item {
                PortItem::Range(a, b) => out.push(PItem::Range(*a, *b)),
                PortItem::ParamRef(id) => out.push(PItem::Param(self.parameter_ref(id, line))),
                PortItem::UserDefined { shown_as, default } => {
                    let default = default.or_else(|| crate::ports::default_in(description));
                    let p = self.parameter(hint, shown_as, default, description);
                    if self.params[p].default.is_none() {
                        let id = self.params[p].id.clone();
                        self.warn(
                            line,
                            WarningCode::ParameterWithoutDefault,
                            format!("port \"{shown_as}\" has no default on the page; parameter `{id}` must be set by the deployment"),
                        );
                    } else if default.is_none() {
                        let (id, d) = (
                            self.params[p].id.clone(),
                            self.params[p].default.unwrap_or(0),
                        );
                        guesses.push(format!("port \"{shown_as}\" without a default here; parameter `{id}` (default {d}) of another row assumed"));
                    }
                    out.push(PItem::Param(p));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Adds a flow, merging it into an earlier one that says the same.
    pub fn add(&mut self, mut draft: Draft) {
        draft.ports.sort();
        draft.ports.dedup();
        draft.source_ports.sort();
        draft.source_ports.dedup();
        if !matches!(draft.proto, Proto::Tcp | Proto::Udp) {
            draft.ports.clear();
            draft.source_ports.clear();
        }
        let key = draft.key();
        if let Some(existing) = self.keys.get(&key).map(|&i| &mut self.flows[i]) {
            if existing.line != draft.line && !existing.also.contains(&draft.line) {
                existing.also.push(draft.line);
            }
            let with = existing.line;
            let differs = existing.required != draft.required;
            existing.required |= draft.required;
            if existing.line != draft.line {
                self.report.rows_merged.push(Merged {
                    line: draft.line,
                    with_line: with,
                });
            }
            if differs {
                self.warn(
                    draft.line,
                    WarningCode::RequiredAndOptional,
                    format!("the same flow is required on line {with} or here and optional on the other; kept as required"),
                );
            }
            return;
        }
        for g in &draft.guesses {
            self.report.guesses.push(Guess {
                line: draft.line,
                guess: g.clone(),
            });
        }
        self.keys.insert(key, self.flows.len());
        self.flows.push(draft);
    }

    /// The display text of a destination.
    pub fn dest_name(&self, dest: Dest) -> String {
        match dest {
            Dest::Comp(c) => self.components[c].name.clone(),
            Dest::Ext(e) => match &self.externals[e].addr {
                Addr::Host(h) | Addr::Cidr(h) => h.clone(),
                Addr::Placeholder(p) => format!("\"{p}\""),
            },
        }
    }

    /// The externals, features and parameters the flows use: only these
    /// are written, and the report counts them.
    pub fn used(&self) -> Used {
        let externals = self
            .flows
            .iter()
            .filter_map(|f| match f.to {
                Dest::Ext(e) => Some(e),
                Dest::Comp(_) => None,
            })
            .collect();
        let mut features = HashSet::new();
        for f in &self.flows {
            if let Some(c) = &f.when {
                collect_features(c, &mut features);
            }
        }
        let parameters = self
            .flows
            .iter()
            .flat_map(|f| f.ports.iter().chain(&f.source_ports))
            .filter_map(|p| match p {
                PItem::Param(i) => Some(*i),
                PItem::Range(..) => None,
            })
            .collect();
        Used {
            externals,
            features,
            parameters,
        }
    }

    /// `file:line`, with the other lines that state the same flow.
    pub fn origin(&self, flow: &Draft) -> String {
        let mut origin = format!("{}:{}", self.file, flow.line);
        if !flow.also.is_empty() {
            let also: Vec<String> = flow.also.iter().map(usize::to_string).collect();
            let _ = write!(origin, " (also line {})", also.join(", "));
        }
        origin
    }
}

fn collect_features(c: &Cond, out: &mut HashSet<usize>) {
    match c {
        Cond::Feature(f) => {
            out.insert(*f);
        }
        Cond::Any(items) | Cond::All(items) => items.iter().for_each(|c| collect_features(c, out)),
        Cond::Not(inner) => collect_features(inner, out),
    }
}
