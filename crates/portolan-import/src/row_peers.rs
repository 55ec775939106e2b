//! Peers a port-table row states in words rather than in peer columns:
//! a Listener column ("Search head / Indexer", "All components"),
//! sentences in its description ("Clients and other daemons connect
//! here", "From users, or from the reverse proxy", "Between cluster
//! nodes"), internal traffic ("Inter-node cluster communication"),
//! dependencies named in a Name column without a direction, and a host
//! name given as the description of an outbound row.

use crate::build::{kind_of, Kind};
use crate::clauses::{clauses, Party, INTERNAL};
use crate::context::party_list;
use crate::page::Reader;
use crate::peers::host_of;
use crate::port_table::PortRow;
use crate::structure::{Dir, ALL_HOSTS};
use crate::text::{contains_words, squash};

/// Words that make a sentence a description, not a list of parties.
const DESCRIPTION_WORDS: &[&str] = &[
    " port", " for ", " if ", " by ", " with ", " is ", " are ", " of ", " when ", " from ",
    " to ", " on ", "(", ":", " used ", " only ",
];

/// A row's description's first sentence when it only names parties
/// ("Ceph OSDs, managers and metadata servers"): the row's listeners.
fn named_listeners(purpose: &str) -> Vec<String> {
    let first = purpose.split(". ").next().unwrap_or("").trim();
    let spaced = format!(" {} ", first.to_lowercase());
    if first.is_empty()
        || DESCRIPTION_WORDS.iter().any(|w| spaced.contains(w))
        || first.split_whitespace().count() > 8
        || !clauses(first).is_empty()
        || first.chars().next().is_some_and(|c| !c.is_uppercase())
    {
        return Vec::new();
    }
    let parties = party_list(first);
    if parties.len() >= 2 {
        parties
    } else {
        Vec::new()
    }
}

/// The components a description says a port is for: "The default port
/// for `mongod` and `mongos` instances" gives mongod and mongos.
fn port_for(purpose: &str) -> Vec<String> {
    let Some(p) = crate::text::find_ci(purpose, "port for ") else {
        return Vec::new();
    };
    let rest = &purpose[p + 9..];
    let end = [" when ", " if ", ",", "(", ".", " to ", " on "]
        .iter()
        .filter_map(|s| rest.find(s))
        .min()
        .unwrap_or(rest.len());
    party_list(&rest[..end])
        .into_iter()
        .map(|n| {
            n.strip_suffix(" instances")
                .or_else(|| n.strip_suffix(" instance"))
                .map_or(n.clone(), str::to_owned)
        })
        .collect()
}

impl Reader<'_, '_> {
    /// Fills in the peers each row states in words (see the module docs).
    pub(crate) fn refine_rows(
        &mut self,
        rows: &mut [PortRow],
        subject: Option<usize>,
        headings: &str,
    ) {
        // Rows without a subject go to the system itself (see `system_component`).
        let subject_name = subject.map_or_else(
            || self.system.clone(),
            |s| self.b.components[s].name.clone(),
        );
        for row in rows.iter_mut() {
            refine_row(row, subject, &subject_name, headings);
        }
    }
}

/// Fills in the peers one row states in words; `subject_name` is the
/// table's subject (or the system).
fn refine_row(row: &mut PortRow, subject: Option<usize>, subject_name: &str, headings: &str) {
    if !row.listeners.is_empty() {
        row.dir = Some(Dir::In);
        row.name_is_peer = false;
        let lower = row.purpose.to_lowercase();
        if row.sources.is_empty() && INTERNAL.iter().any(|w| lower.contains(w)) {
            // Replication among the listeners themselves.
            row.sources = row.listeners.clone();
        }
        return;
    }
    if !row.sources.is_empty() || !row.dests.is_empty() || !row.either.is_empty() {
        return;
    }
    let listeners = named_listeners(&row.purpose);
    if peers_in_clauses(row, &listeners, subject_name) {
        return;
    }
    // "The default port for `mongod` and `mongos` instances".
    let listeners = if listeners.is_empty() {
        port_for(&row.purpose)
    } else {
        listeners
    };
    if !listeners.is_empty() {
        row.listeners = listeners;
        row.dir = Some(Dir::In);
        row.name_is_peer = false;
        return;
    }
    let lower = format!("{} {}", row.purpose, headings).to_lowercase();
    if INTERNAL.iter().any(|w| lower.contains(w)) && row.dir != Some(Dir::Out) {
        row.sources = vec![subject_name.to_owned()];
        return;
    }
    // "MariaDB / MySQL | 3306" without a direction, in a section
    // about what the product depends on ("Database and cache"):
    // the product connects to it.
    if row.dir.is_none() && subject.is_none() && kind_of(headings, Kind::System) == Kind::Dependency
    {
        if let Some(name) = &row.name {
            if kind_of(name, Kind::System) == Kind::Dependency && !contains_words(&lower, "inbound")
            {
                row.dir = Some(Dir::Out);
                row.name_is_peer = true;
            }
        }
    }
    // An outbound row whose description is a host name reaches it.
    if row.name_is_peer && row.dir == Some(Dir::Out) {
        if let Some(host) = host_of(row.purpose.trim()) {
            row.dests = vec![host];
            row.name_is_peer = false;
        }
    }
}

/// The peers the clauses of a row's purpose state ("From users, or from
/// the reverse proxy": every clause that reaches the same destination
/// adds its sources), "it" being the `listeners` the purpose names, else
/// the subject. Whether the row got them.
fn peers_in_clauses(row: &mut PortRow, listeners: &[String], subject_name: &str) -> bool {
    let me: Vec<String> = if listeners.is_empty() {
        vec![subject_name.to_owned()]
    } else {
        listeners.to_vec()
    };
    let said: Vec<_> = clauses(&row.purpose)
        .into_iter()
        .filter(|s| !s.from.is_empty() && !s.to.is_empty())
        .collect();
    let names = |parties: &[Party]| -> Vec<String> {
        parties
            .iter()
            .flat_map(|p| match p {
                Party::Named(n) => vec![n.clone()],
                Party::Subject => me.clone(),
            })
            .collect()
    };
    let Some(first) = said.first() else {
        return false;
    };
    let mut from = Vec::new();
    for s in said.iter().filter(|s| s.to == first.to) {
        from.extend(names(&s.from));
    }
    let to = names(&first.to);
    if from.is_empty() || to.is_empty() {
        return false;
    }
    row.sources = from;
    row.dests = to;
    row.name_is_peer = false;
    row.subject = None;
    true
}

/// One row per listener; "All components" is every listener the table names.
pub(crate) fn fan_out_listeners(rows: Vec<PortRow>) -> Vec<PortRow> {
    let mut all: Vec<String> = Vec::new();
    for r in &rows {
        for l in &r.listeners {
            if !ALL_HOSTS.contains(&squash(l).as_str())
                && !all.iter().any(|a| squash(a) == squash(l))
            {
                all.push(l.clone());
            }
        }
    }
    let mut out = Vec::new();
    for r in rows {
        if r.listeners.is_empty() {
            out.push(r);
            continue;
        }
        let names: Vec<String> = if r
            .listeners
            .iter()
            .any(|l| ALL_HOSTS.contains(&squash(l).as_str()))
        {
            all.clone()
        } else {
            r.listeners.clone()
        };
        for name in names {
            let mut row = r.clone();
            row.listeners = vec![name];
            out.push(row);
        }
    }
    out
}
