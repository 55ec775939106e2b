//! Scoring an import against a hand-made answer key (docs/import-corpus.md).
//!
//! Shared by the integration test (which holds the corpus to a floor) and
//! `cargo run -p portolan-import --example score` (which prints the table).
//! A flow is scored as atoms: one per (source, destination, protocol,
//! destination port item). An imported atom is right when a key atom has
//! the same protocol and port and one of its spellings of each party names
//! the imported party; each key atom is matched at most once.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use portolan_import::{import_markdown, source_from_bytes, ImportOptions};
use portolan_spec::{
    load_spec, Destination, ExternalAddress, PortItem, Protocol, SourceFile, Spec,
};

/// One line of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFlow {
    /// Its line in the key file.
    pub line: usize,
    /// Spellings of the source (normalised); empty means "unspecified".
    pub from: Vec<String>,
    /// Spellings of the destination (normalised); empty means "unspecified".
    pub to: Vec<String>,
    /// `tcp`, `udp`, `icmp`, `any`.
    pub protocols: Vec<String>,
    /// Port items as text (`443`, `6800-7300`); empty for ICMP.
    pub ports: Vec<String>,
    /// Whether the page makes it optional or conditional.
    pub optional: bool,
}

/// One scored unit: a party pair, a protocol and one port item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Atom {
    /// Names the source goes by (normalised).
    pub from: Vec<String>,
    /// Names the destination goes by (normalised).
    pub to: Vec<String>,
    /// The protocol.
    pub protocol: String,
    /// The port item, empty for ICMP.
    pub port: String,
    /// Whether it is optional.
    pub optional: bool,
    /// A readable form, for reports.
    pub text: String,
}

/// Precision, recall and their counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Right answers.
    pub hits: usize,
    /// Answers given (imported).
    pub given: usize,
    /// Answers expected (key).
    pub expected: usize,
}

impl Counts {
    /// Share of the given answers that are right.
    pub fn precision(&self) -> f64 {
        ratio(self.hits, self.given)
    }
    /// Share of the expected answers that were given.
    pub fn recall(&self) -> f64 {
        ratio(self.hits, self.expected)
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    /// Adds another page's counts.
    pub fn add(&mut self, other: Counts) {
        self.hits += other.hits;
        self.given += other.given;
        self.expected += other.expected;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        if a == 0 {
            1.0
        } else {
            0.0
        }
    } else {
        a as f64 / b as f64
    }
}

/// The scores of one page.
#[derive(Debug, Clone, Default)]
pub struct PageScore {
    /// The page's file stem.
    pub page: String,
    /// Flow level: parties, protocol and port.
    pub flows: Counts,
    /// Port level: (protocol, port) pairs, whoever the parties.
    pub ports: Counts,
    /// Matched atoms whose optional/required agrees with the key, of matched atoms.
    pub optional_agree: (usize, usize),
    /// Key atoms not found.
    pub missed: Vec<String>,
    /// Imported atoms the key does not have.
    pub extra: Vec<String>,
    /// Why the import failed, if it did.
    pub error: Option<String>,
}

/// Lowercase letters and digits only, so that spacing, case and
/// punctuation do not count.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The spellings of the party the importer leaves for the user to place.
const UNSPECIFIED: &str = "unspecified";

fn party(text: &str) -> Vec<String> {
    let text = text.trim();
    if text == "?" {
        return Vec::new();
    }
    text.split('|').map(normalise).collect()
}

/// Reads a key: `FROM -> TO PROTO[/PORTS] [optional]`, `#` comments.
pub fn parse_key(text: &str) -> Result<Vec<KeyFlow>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |what: &str| format!("line {}: {what}: {raw}", i + 1);
        let (from, rest) = line.split_once(" -> ").ok_or_else(|| err("no ` -> `"))?;
        let mut words: Vec<&str> = rest.split_whitespace().collect();
        let optional = words.last() == Some(&"optional");
        if optional {
            words.pop();
        }
        let spec = words.pop().ok_or_else(|| err("no protocol"))?;
        let to = words.join(" ");
        if to.is_empty() || from.trim().is_empty() {
            return Err(err("a party is missing"));
        }
        let (protos, ports) = match spec.split_once('/') {
            Some((p, ports)) => (p, ports.split(',').map(str::to_owned).collect()),
            None => (spec, Vec::new()),
        };
        let protocols: Vec<String> = protos.split(',').map(str::to_owned).collect();
        if protocols
            .iter()
            .any(|p| !matches!(p.as_str(), "tcp" | "udp" | "icmp" | "any"))
        {
            return Err(err("unknown protocol"));
        }
        out.push(KeyFlow {
            line: i + 1,
            from: party(from),
            to: party(&to),
            protocols,
            ports,
            optional,
        });
    }
    Ok(out)
}

/// The atoms of a key.
pub fn key_atoms(key: &[KeyFlow]) -> Vec<Atom> {
    let mut out = Vec::new();
    for k in key {
        for proto in &k.protocols {
            let ports = if k.ports.is_empty() {
                vec![String::new()]
            } else {
                k.ports.clone()
            };
            for port in ports {
                let show = |p: &[String]| {
                    if p.is_empty() {
                        "?".to_owned()
                    } else {
                        p[0].clone()
                    }
                };
                out.push(Atom {
                    text: format!(
                        "line {}: {} -> {} {proto}/{port}",
                        k.line,
                        show(&k.from),
                        show(&k.to)
                    ),
                    from: k.from.clone(),
                    to: k.to.clone(),
                    protocol: proto.clone(),
                    port,
                    optional: k.optional,
                });
            }
        }
    }
    out
}

fn names_of_component(spec: &Spec, id: portolan_spec::ComponentId) -> Vec<String> {
    let c = spec.component(id);
    let mut names = vec![normalise(&c.name), normalise(&c.id)];
    names.extend(c.aliases.iter().map(|a| normalise(a)));
    names
}

/// The atoms of an imported spec.
pub fn spec_atoms(spec: &Spec) -> Vec<Atom> {
    let mut out = Vec::new();
    for flow in &spec.flows {
        let from = names_of_component(spec, flow.from);
        let to = match flow.to {
            Destination::Component(c) => names_of_component(spec, c),
            Destination::External(e) => {
                let x = spec.external(e);
                let addr = match &x.address {
                    ExternalAddress::Host(h) | ExternalAddress::Pattern(h) => h.clone(),
                    // A block of one address is that address.
                    ExternalAddress::Cidr(c) if c.prefix_len() == c.max_prefix_len() => {
                        c.addr().to_string()
                    }
                    ExternalAddress::Cidr(c) => c.to_string(),
                    ExternalAddress::Placeholder(p) => p.clone(),
                };
                vec![normalise(&addr), normalise(&x.name), normalise(&x.id)]
            }
        };
        let protocol = match flow.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Any => "any",
        };
        let ports: Vec<String> = if !flow.protocol.has_ports() {
            vec![String::new()]
        } else if flow.ports.is_all() {
            vec!["*".to_owned()]
        } else {
            flow.ports
                .0
                .iter()
                .map(|p| match p {
                    PortItem::Range(r) => r.to_string(),
                    PortItem::Parameter(id) => {
                        let param = &spec.parameters[id.0];
                        param
                            .default
                            .map_or_else(|| format!("${}", param.id), |d| d.to_string())
                    }
                })
                .collect()
        };
        for port in ports {
            out.push(Atom {
                text: format!(
                    "{} -> {} {protocol}/{port}",
                    spec.component(flow.from).name,
                    match flow.to {
                        Destination::Component(c) => spec.component(c).name.clone(),
                        Destination::External(e) => spec.external(e).address.to_string(),
                    }
                ),
                from: from.clone(),
                to: to.clone(),
                protocol: protocol.to_owned(),
                port,
                optional: !flow.required,
            });
        }
    }
    out
}

fn names_match(key: &[String], imported: &[String]) -> bool {
    if key.is_empty() {
        return imported.iter().any(|n| n.starts_with(UNSPECIFIED));
    }
    key.iter().any(|k| !k.is_empty() && imported.contains(k))
}

/// Scores imported atoms against key atoms.
pub fn score(page: &str, key: &[Atom], imported: &[Atom]) -> PageScore {
    let mut used = vec![false; imported.len()];
    let mut hits = 0;
    let mut agree = 0;
    let mut missed = Vec::new();
    for k in key {
        let found = imported.iter().enumerate().position(|(i, a)| {
            !used[i]
                && a.protocol == k.protocol
                && a.port == k.port
                && names_match(&k.from, &a.from)
                && names_match(&k.to, &a.to)
        });
        match found {
            Some(i) => {
                used[i] = true;
                hits += 1;
                if imported[i].optional == k.optional {
                    agree += 1;
                }
            }
            None => missed.push(k.text.clone()),
        }
    }
    let extra = imported
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a.text.clone())
        .collect();
    let pairs = |atoms: &[Atom]| -> BTreeSet<(String, String)> {
        atoms
            .iter()
            .map(|a| (a.protocol.clone(), a.port.clone()))
            .collect()
    };
    let (kp, ip) = (pairs(key), pairs(imported));
    PageScore {
        page: page.to_owned(),
        flows: Counts {
            hits,
            given: imported.len(),
            expected: key.len(),
        },
        ports: Counts {
            hits: kp.intersection(&ip).count(),
            given: ip.len(),
            expected: kp.len(),
        },
        optional_agree: (agree, hits),
        missed,
        extra,
        error: None,
    }
}

/// Imports a corpus page and scores it against the key beside it
/// (`page.md` and `page.key`).
pub fn score_page(page: &Path) -> Result<PageScore, String> {
    let stem = page
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key_path = page.with_extension("key");
    let key_text =
        std::fs::read_to_string(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let key = key_atoms(&parse_key(&key_text).map_err(|e| format!("{}: {e}", key_path.display()))?);
    let bytes = std::fs::read(page).map_err(|e| format!("{}: {e}", page.display()))?;
    let name = format!("{stem}.md");
    let imported = source_from_bytes(&name, &bytes)
        .map_err(|e| e.to_string())
        .and_then(|source| {
            import_markdown(&source, &ImportOptions::default()).map_err(|e| e.to_string())
        });
    let atoms = match imported {
        Ok(imported) => match load_spec(SourceFile::new("imported.yaml", imported.yaml)) {
            Ok(spec) => spec_atoms(&spec.value),
            Err(_) => return Err(format!("{stem}: the imported spec does not validate")),
        },
        Err(e) => {
            let mut s = score(&stem, &key, &[]);
            s.error = Some(e);
            return Ok(s);
        }
    };
    Ok(score(&stem, &key, &atoms))
}

/// Every page of a corpus directory, in name order.
pub fn corpus_pages(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut pages: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .collect()
        })
        .unwrap_or_default();
    pages.sort();
    pages
}

/// The table the example prints: per page and overall.
pub fn table(scores: &[PageScore]) -> String {
    let mut out = String::from(
        "| page | key | imported | hits | flow P | flow R | flow F1 | port P | port R | port F1 | optional agrees |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut flows = Counts::default();
    let mut ports = Counts::default();
    let mut agree = (0, 0);
    for s in scores {
        flows.add(s.flows);
        ports.add(s.ports);
        agree.0 += s.optional_agree.0;
        agree.1 += s.optional_agree.1;
        out.push_str(&row(&s.page, s.flows, s.ports, s.optional_agree));
    }
    out.push_str(&row("**overall**", flows, ports, agree));
    out
}

fn row(page: &str, f: Counts, p: Counts, agree: (usize, usize)) -> String {
    format!(
        "| {page} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} |\n",
        f.expected,
        f.given,
        f.hits,
        f.precision(),
        f.recall(),
        f.f1(),
        p.precision(),
        p.recall(),
        p.f1(),
        agree.0,
        agree.1
    )
}

/// Overall flow-level and port-level counts.
pub fn overall(scores: &[PageScore]) -> (Counts, Counts) {
    let mut flows = Counts::default();
    let mut ports = Counts::default();
    for s in scores {
        flows.add(s.flows);
        ports.add(s.ports);
    }
    (flows, ports)
}
