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
        let mut by_signature: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_rest: HashMap<&str, Vec<usize>> = HashMap::new();
        for (j, r) in rows.iter().enumerate() {
            if r.dir == Some(Dir::In) && r.subject.is_some() {
                if r.name_is_peer {
                    by_signature
                        .entry(r.signature.as_str())
                        .or_default()
                        .push(j);
                }
                if !r.sources.is_empty() {
                    by_rest.entry(r.rest_of_row.as_str()).or_default().push(j);
                }
            }
        }
        let mut targets: Vec<Vec<Peer>> = vec![Vec::new(); rows.len()];
        let mut merged_into: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
        let mut merges: Vec<(usize, usize)> = Vec::new();
        let mut deferred = Vec::new();
        for (k, row) in rows.iter().enumerate() {
            if !(row.name_is_peer && row.dir == Some(Dir::Out)) {
                continue;
            }
            let name = row.name.clone().unwrap_or_default();
            let resolved = self.b.find_component(&name);
            let elsewhere = |j: &&usize| {
                let r = &rows[**j];
                r.subject != row.subject && (resolved.is_none() || resolved == r.subject)
            };
            let pairs: Vec<usize> = by_signature
                .get(row.signature.as_str())
                .map(|js| js.iter().filter(elsewhere).copied().collect())
                .unwrap_or_default();
            // Ingress rows elsewhere that name this row's subject as their source.
            let subject_name = row.subject.map(|s| squash(&self.b.components[s].name));
            let from_pairs: Vec<usize> = by_rest
                .get(row.rest_of_row.as_str())
                .map(|js| {
                    js.iter()
                        .filter(elsewhere)
                        .filter(|&&j| {
                            subject_name
                                .as_ref()
                                .is_some_and(|n| rows[j].sources.iter().any(|s| squash(s) == *n))
                        })
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
                targets[k].push(Peer::Comp(c));
            } else if !paired.is_empty() {
                for &j in paired {
                    if let Some(s) = rows[j].subject {
                        if !targets[k].contains(&Peer::Comp(s)) {
                            targets[k].push(Peer::Comp(s));
                        }
                    }
                }
            } else if let Some(addr) = self
                .external_names_of_hosts
                .iter()
                .find(|(n, _)| squash(n) == squash(&name))
                .map(|(_, a)| a.clone())
            {
                let e = self.b.external(addr, Some(&name));
                targets[k].push(Peer::Ext(e));
            } else {
                let peer = self.peer(&name, false, row.subject, row.line, Kind::Dependency);
                if let Some(p) = peer {
                    targets[k].push(p);
                }
                self.near_miss(&name, row.line);
            }
            for j in pairs {
                merged_into[j].push(row.line);
            }
        }
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
        // Ingress rows that name no source: when flows from named components
        // already reach the same ports, the row is their other side.
        let mut reaching: HashMap<(Dest, Proto, Vec<PItem>), usize> = HashMap::new();
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
        let mut also: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(line, with) in &merges {
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
        let subject = |me: &mut Self| -> usize {
            match row.subject {
                Some(s) => s,
                None => me.system_component(row.line),
            }
        };
        let mut pairs: Vec<(usize, Peer)> = Vec::new();
        let explicit_sources = !row.sources.is_empty();
        let explicit_dests = !row.dests.is_empty();
        let dir = match row.dir {
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
        };
        let _ = row.dir_stated;
        if explicit_sources && explicit_dests {
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
                let me = subject(self);
                let names: &[String] = if explicit_sources {
                    &row.sources
                } else {
                    &row.either
                };
                let froms = if !names.is_empty() {
                    self.peers(names, true, Some(me), row.line)
                } else if row.name_is_peer {
                    let name = row.name.clone().unwrap_or_default();
                    match self.b.find_component(&name).filter(|&c| c != me) {
                        Some(c) => vec![Peer::Comp(c)],
                        None => vec![self.implicit(
                            true,
                            row.line,
                            Some(row.section),
                            &row.raw,
                            &mut guesses,
                        )],
                    }
                } else {
                    vec![self.implicit(true, row.line, Some(row.section), &row.raw, &mut guesses)]
                };
                for f in froms {
                    if let Peer::Comp(f) = f {
                        pairs.push((f, Peer::Comp(me)));
                    }
                }
            }
            if matches!(dir, Dir::Out | Dir::Both) {
                let me = subject(self);
                let names: &[String] = if explicit_dests {
                    &row.dests
                } else {
                    &row.either
                };
                let tos = if !names.is_empty() {
                    self.peers(names, false, Some(me), row.line)
                } else if !targets.is_empty() {
                    targets.to_vec()
                } else if let (Some(name), false) = (&row.name, row.name_is_peer) {
                    // A Name column in a table without peers: the service, not a peer.
                    let _ = name;
                    vec![self.implicit(false, row.line, Some(row.section), &row.raw, &mut guesses)]
                } else {
                    vec![self.implicit(false, row.line, Some(row.section), &row.raw, &mut guesses)]
                };
                for t in tos {
                    pairs.push((me, t));
                }
            }
        }
        if pairs.is_empty() {
            self.b
                .skip(row.line, &row.raw, "no source or destination could be read");
            return;
        }
        let when = row.condition.as_ref().and_then(|c| self.b.condition(c));
        self.b.describe(when.as_ref(), &row.purpose);
        let required = match row.required {
            Some(r) => r,
            None => when.is_none(),
        };
        if !required && when.is_none() {
            self.b.warn(
                row.line,
                WarningCode::OptionalWithoutCondition,
                "optional row names no condition; the flow is optional without `when`",
            );
        }
        for (from, to) in pairs {
            if let Peer::Ext(_) = to {
                if self.b.components[from].kind == Kind::External {
                    continue;
                }
            }
            let dest = match to {
                Peer::Comp(c) => Dest::Comp(c),
                Peer::Ext(e) => Dest::Ext(e),
            };
            let hint = match (&row.name, dir) {
                (Some(n), _) => n.clone(),
                (None, Dir::Out) => self.b.dest_name(dest),
                (None, _) => self.b.dest_name(dest),
            };
            for proto in &row.protos {
                let mut g = guesses.clone();
                let mut draft = Draft::new(from, dest, *proto, row.line);
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
pub(crate) fn covering_flow(
    row: &PortRow,
    reaching: &HashMap<(Dest, Proto, Vec<PItem>), usize>,
) -> Option<usize> {
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
