//! Port-table rows turned into flows: pairing the two sides of one flow stated
//! in two sections, and implicit peers.

use std::collections::HashMap;

use crate::build::{Dest, Draft, Kind, PItem};
use crate::page::Reader;
use crate::peers::Peer;
use crate::port_table::PortRow;
use crate::ports::{PortItem, Proto};
use crate::report::WarningCode;
use crate::structure::Dir;
use crate::text::squash;

/// Ingress rows with a subject, by what pairs them with an egress row of
/// another section.
#[derive(Default)]
struct IngressIndex<'r> {
    /// Rows whose Name is their peer, by signature.
    by_signature: HashMap<&'r str, Vec<usize>>,
    /// Rows that name their sources, by the row less its name.
    by_rest: HashMap<&'r str, Vec<usize>>,
}

impl<'r> IngressIndex<'r> {
    fn of(rows: &'r [PortRow]) -> Self {
        let mut index = Self::default();
        for (j, r) in rows.iter().enumerate() {
            if r.dir == Some(Dir::In) && r.subject.is_some() {
                if r.name_is_peer {
                    let entry = index.by_signature.entry(r.signature.as_str());
                    entry.or_default().push(j);
                }
                if !r.sources.is_empty() {
                    index
                        .by_rest
                        .entry(r.rest_of_row.as_str())
                        .or_default()
                        .push(j);
                }
            }
        }
        index
    }
}

/// The flows from named components that reach a destination on a
/// protocol and ports: the line of the first.
type Reaching = HashMap<(Dest, Proto, Vec<PItem>), usize>;

impl Reader<'_, '_> {
    pub(crate) fn emit_port_rows(&mut self, mut rows: Vec<PortRow>) {
        // A row with a listener is about that listener.
        for row in &mut rows {
            if let Some(name) = row.listeners.first() {
                let kind = self.kind_for(name, Kind::System);
                row.subject = Some(self.b.component(name, kind));
            }
        }
        // Egress rows that name their target: resolve, pairing with ingress
        // rows of other sections that state the same row (the two sides of
        // one flow, as per-component pages list them).
        let index = IngressIndex::of(&rows);
        let mut targets: Vec<Vec<Peer>> = vec![Vec::new(); rows.len()];
        let mut merged_into: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
        for (k, row) in rows.iter().enumerate() {
            if row.name_is_peer && row.dir == Some(Dir::Out) {
                let pairs = self.egress_target(&rows, k, &index, &mut targets[k]);
                for j in pairs {
                    merged_into[j].push(row.line);
                }
            }
        }
        let mut merges: Vec<(usize, usize)> = Vec::new();
        let mut deferred = Vec::new();
        for (k, row) in rows.iter().enumerate() {
            if !merged_into[k].is_empty() {
                merges.extend(merged_into[k].iter().map(|&with| (row.line, with)));
                continue;
            }
            if self.implicit_ingress(row) {
                deferred.push(k);
                continue;
            }
            self.emit_port_row(row, &targets[k]);
        }
        self.emit_sourceless_ingress(&rows, deferred, &mut merges);
        self.record_merges(&merges);
    }

    /// Resolves the target of egress row `k` (its Name) into `targets`:
    /// a component of that name, else the subjects of the ingress rows of
    /// other sections that state the same flow, else a host-list endpoint
    /// of that name, else a new peer. Returns the ingress rows paired by
    /// signature (merged into this one).
    fn egress_target(
        &mut self,
        rows: &[PortRow],
        k: usize,
        index: &IngressIndex,
        targets: &mut Vec<Peer>,
    ) -> Vec<usize> {
        let row = &rows[k];
        let name = row.name.clone().unwrap_or_default();
        let resolved = self.b.find_component(&name);
        let elsewhere = |j: &&usize| {
            let r = &rows[**j];
            r.subject != row.subject && (resolved.is_none() || resolved == r.subject)
        };
        let pairs: Vec<usize> = index
            .by_signature
            .get(row.signature.as_str())
            .map(|js| js.iter().filter(elsewhere).copied().collect())
            .unwrap_or_default();
        // Ingress rows elsewhere that name this row's subject as their source.
        let subject_name = row.subject.map(|s| squash(&self.b.components[s].name));
        let names_subject = |j: &&usize| {
            let sources = &rows[**j].sources;
            subject_name
                .as_ref()
                .is_some_and(|n| sources.iter().any(|s| squash(s) == *n))
        };
        let from_pairs: Vec<usize> = index
            .by_rest
            .get(row.rest_of_row.as_str())
            .map(|js| {
                js.iter()
                    .filter(elsewhere)
                    .filter(names_subject)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let paired = if from_pairs.is_empty() {
            &pairs
        } else {
            &from_pairs
        };
        if let Some(c) = resolved {
            targets.push(Peer::Comp(c));
        } else if !paired.is_empty() {
            for s in paired.iter().filter_map(|&j| rows[j].subject) {
                if !targets.contains(&Peer::Comp(s)) {
                    targets.push(Peer::Comp(s));
                }
            }
        } else if let Some(addr) = self.host_endpoint_named(&name) {
            let e = self.b.external(addr, Some(&name));
            targets.push(Peer::Ext(e));
        } else {
            let peer = self.peer(&name, false, row.subject, row.line, Kind::Dependency);
            targets.extend(peer);
            self.near_miss(&name, row.line);
        }
        pairs
    }

    /// The address of the host-list endpoint the page names `name`.
    fn host_endpoint_named(&self, name: &str) -> Option<crate::build::Addr> {
        self.external_names_of_hosts
            .iter()
            .find(|(n, _)| squash(n) == squash(name))
            .map(|(_, a)| a.clone())
    }

    /// Ingress rows that name no source (`deferred`): when flows from
    /// named components already reach the same ports, the row is their
    /// other side (merged); else its flow from an implicit peer.
    fn emit_sourceless_ingress(
        &mut self,
        rows: &[PortRow],
        deferred: Vec<usize>,
        merges: &mut Vec<(usize, usize)>,
    ) {
        let mut reaching: Reaching = HashMap::new();
        for f in &self.b.flows {
            if self.b.components[f.from].kind != Kind::External {
                reaching
                    .entry((f.to, f.proto, f.ports.clone()))
                    .or_insert(f.line);
            }
        }
        for k in deferred {
            let row = &rows[k];
            if let Some(with) = covering_flow(row, &reaching) {
                self.b.warn(
                    row.line,
                    WarningCode::IngressMerged,
                    format!("this ingress row names no source; the flow of line {with} reaches the same port, so no Clients flow was added (add one by hand if outside clients connect too)"),
                );
                merges.push((row.line, with));
                continue;
            }
            self.emit_port_row(row, &[]);
        }
    }

    /// Reports each `(line, with)` merge, and adds the merged line to the
    /// flows of line `with`.
    fn record_merges(&mut self, merges: &[(usize, usize)]) {
        let mut also: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(line, with) in merges {
            self.b.report.rows_merged.push(crate::report::Merged {
                line,
                with_line: with,
            });
            also.entry(with).or_default().push(line);
        }
        for f in &mut self.b.flows {
            if let Some(lines) = also.get(&f.line) {
                for &l in lines {
                    if !f.also.contains(&l) {
                        f.also.push(l);
                    }
                }
            }
        }
    }

    /// Whether a row is an ingress row whose source is implicit.
    pub(crate) fn implicit_ingress(&self, row: &PortRow) -> bool {
        if row.dir != Some(Dir::In)
            || !row.sources.is_empty()
            || !row.either.is_empty()
            || row.subject.is_none()
        {
            return false;
        }
        if row.name_is_peer {
            let name = row.name.clone().unwrap_or_default();
            return self
                .b
                .find_component(&name)
                .filter(|&c| Some(c) != row.subject)
                .is_none();
        }
        true
    }

    pub(crate) fn emit_port_row(&mut self, row: &PortRow, targets: &[Peer]) {
        let mut guesses: Vec<String> = row.proto_guess.iter().cloned().collect();
        if let Some(g) = &row.proto_guess {
            self.b
                .warn(row.line, WarningCode::ProtocolAssumed, g.clone());
        }
        let dir = self.row_direction(row, &mut guesses);
        let _ = row.dir_stated;
        let mut pairs: Vec<(usize, Peer)> = Vec::new();
        if !row.sources.is_empty() && !row.dests.is_empty() {
            let froms = self.peers(&row.sources, true, row.subject, row.line);
            let tos = self.peers(&row.dests, false, row.subject, row.line);
            for f in &froms {
                let Peer::Comp(f) = f else { continue };
                for t in &tos {
                    pairs.push((*f, *t));
                }
            }
        } else {
            if matches!(dir, Dir::In | Dir::Both) {
                self.inbound_pairs(row, &mut guesses, &mut pairs);
            }
            if matches!(dir, Dir::Out | Dir::Both) {
                self.outbound_pairs(row, targets, &mut guesses, &mut pairs);
            }
        }
        if pairs.is_empty() {
            self.b
                .skip(row.line, &row.raw, "no source or destination could be read");
            return;
        }
        self.add_row_flows(row, pairs, &guesses);
    }

    /// The row's direction: stated, else from which peers it names, else
    /// inbound (assumed, and said).
    fn row_direction(&mut self, row: &PortRow, guesses: &mut Vec<String>) -> Dir {
        let explicit_sources = !row.sources.is_empty();
        let explicit_dests = !row.dests.is_empty();
        match row.dir {
            Some(d) => d,
            None if explicit_sources && !explicit_dests => Dir::In,
            None if explicit_dests && !explicit_sources => Dir::Out,
            None if explicit_sources && explicit_dests => Dir::In,
            None if !row.either.is_empty() => {
                self.b.warn(
                    row.line,
                    WarningCode::DirectionAssumed,
                    "direction not stated; the peer was taken as the source (inbound)",
                );
                guesses.push("direction not stated; inbound assumed".to_owned());
                Dir::In
            }
            None => {
                let s = row
                    .subject
                    .map(|s| self.b.components[s].name.clone())
                    .unwrap_or_else(|| self.system.clone());
                self.b.warn(
                    row.line,
                    WarningCode::DirectionAssumed,
                    format!("direction not stated; taken as a port that {s} listens on"),
                );
                guesses.push(format!(
                    "direction not stated; a port {s} listens on assumed"
                ));
                Dir::In
            }
        }
    }

    /// The row's subject, or the system's component (said).
    fn row_subject(&mut self, row: &PortRow) -> usize {
        match row.subject {
            Some(s) => s,
            None => self.system_component(row.line),
        }
    }

    /// Flows into the row's subject: from the peers it names, else from
    /// the component its Name names, else from an implicit peer.
    fn inbound_pairs(
        &mut self,
        row: &PortRow,
        guesses: &mut Vec<String>,
        pairs: &mut Vec<(usize, Peer)>,
    ) {
        let me = self.row_subject(row);
        let names: &[String] = if row.sources.is_empty() {
            &row.either
        } else {
            &row.sources
        };
        let named = if row.name_is_peer {
            let name = row.name.clone().unwrap_or_default();
            self.b.find_component(&name).filter(|&c| c != me)
        } else {
            None
        };
        let froms = if !names.is_empty() {
            self.peers(names, true, Some(me), row.line)
        } else if let Some(c) = named {
            vec![Peer::Comp(c)]
        } else {
            vec![self.implicit(true, row.line, Some(row.section), &row.raw, guesses)]
        };
        for f in froms {
            if let Peer::Comp(f) = f {
                pairs.push((f, Peer::Comp(me)));
            }
        }
    }

    /// Flows out of the row's subject: to the peers it names, else to the
    /// resolved `targets`, else to an implicit peer (a Name column in a
    /// table without peers names the service, not a peer).
    fn outbound_pairs(
        &mut self,
        row: &PortRow,
        targets: &[Peer],
        guesses: &mut Vec<String>,
        pairs: &mut Vec<(usize, Peer)>,
    ) {
        let me = self.row_subject(row);
        let names: &[String] = if row.dests.is_empty() {
            &row.either
        } else {
            &row.dests
        };
        let tos = if !names.is_empty() {
            self.peers(names, false, Some(me), row.line)
        } else if !targets.is_empty() {
            targets.to_vec()
        } else {
            vec![self.implicit(false, row.line, Some(row.section), &row.raw, guesses)]
        };
        for t in tos {
            pairs.push((me, t));
        }
    }

    /// One flow per pair and protocol of the row, with its condition,
    /// purpose, ports and guesses.
    fn add_row_flows(&mut self, row: &PortRow, pairs: Vec<(usize, Peer)>, guesses: &[String]) {
        let when = row.condition.as_ref().and_then(|c| self.b.condition(c));
        self.b.describe(when.as_ref(), &row.purpose);
        let required = row.required.unwrap_or(when.is_none());
        if !required && when.is_none() {
            self.b.warn(
                row.line,
                WarningCode::OptionalWithoutCondition,
                "optional row names no condition; the flow is optional without `when`",
            );
        }
        for (from, to) in pairs {
            if matches!(to, Peer::Ext(_)) && self.b.components[from].kind == Kind::External {
                continue;
            }
            let dest = match to {
                Peer::Comp(c) => Dest::Comp(c),
                Peer::Ext(e) => Dest::Ext(e),
            };
            let hint = match &row.name {
                Some(n) => n.clone(),
                None => self.b.dest_name(dest),
            };
            for proto in &row.protos {
                let mut draft = Draft::new(from, dest, *proto, row.line);
                let mut g = guesses.to_vec();
                if matches!(proto, Proto::Tcp | Proto::Udp) {
                    draft.ports =
                        self.b
                            .port_items(&row.ports, &hint, &row.purpose, row.line, &mut g);
                    draft.source_ports =
                        self.b
                            .port_items(&row.source_ports, &hint, "", row.line, &mut g);
                } else if !row.ports.is_empty() {
                    self.b.warn(
                        row.line,
                        WarningCode::PortsLeftOut,
                        format!("ports given for protocol {}; left out", proto.as_str()),
                    );
                }
                let _ = row.all_ports;
                draft.required = required;
                draft.when = when.clone();
                if *proto == Proto::Udp && matches!(dest, Dest::Comp(_)) {
                    draft.multicast = row.multicast;
                }
                draft.name = row.name.clone();
                draft.purpose = (!row.purpose.is_empty()).then(|| row.purpose.clone());
                draft.guesses = g;
                self.b.add(draft);
            }
        }
    }
}

/// The line of a flow from a named component to the row's subject on the
/// same protocols and ports.
pub(crate) fn covering_flow(row: &PortRow, reaching: &Reaching) -> Option<usize> {
    let subject = row.subject?;
    let ranges: Vec<PItem> = row
        .ports
        .iter()
        .filter_map(|p| match p {
            PortItem::Range(a, b) => Some(PItem::Range(*a, *b)),
            _ => None,
        })
        .collect();
    if ranges.is_empty() || ranges.len() != row.ports.len() {
        return None;
    }
    let mut line = None;
    for proto in &row.protos {
        line = Some(*reaching.get(&(Dest::Comp(subject), *proto, ranges.clone()))?);
    }
    line
}
