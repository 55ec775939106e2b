//! Port tables read into rows: ports, protocols, peers, direction, required
//! and conditions, before any flow is made.

use crate::blocks::{Block, Row, Table};
use crate::conditions::{condition_in, CondText};
use crate::context::{direction_peers, party_list};
use crate::page::Reader;
use crate::peers::peer_names;
use crate::ports::{
    port_cell, port_or_range, protocol_leftover, protocols_in, PortCell, PortItem, Proto,
};
use crate::report::WarningCode;
use crate::roles::{paren_protocols, required_word, roles, Role};
use crate::row_peers::fan_out_listeners;
use crate::structure::{direction_word, path_direction, Dir};
use crate::text::{find_ci, inline, plain, squash};

impl Reader<'_, '_> {
    pub(crate) fn port_tables(&mut self) {
        let doc = self.doc;
        let mut rows: Vec<PortRow> = Vec::new();
        for (i, block) in doc.blocks.iter().enumerate() {
            let Block::Table(table) = block else { continue };
            if self.consumed.contains(&i) {
                continue;
            }
            let ctx = &doc.ctx[i];
            let roles: Vec<Role> = roles(&table.header);
            if !roles
                .iter()
                .any(|r| matches!(r, Role::Port | Role::StartPort))
            {
                for row in &table.rows {
                    self.b.report.rows_read += 1;
                    self.b.skip(
                        row.line,
                        &row.raw,
                        "table has no port column and is not a connection matrix",
                    );
                }
                continue;
            }
            self.used_sections.insert(ctx.section);
            self.unread_columns(table, &roles);
            let footnotes = self.footnotes_after(i);
            self.read_port_table(i, table, &roles, &footnotes, &mut rows);
        }
        self.emit_port_rows(rows);
    }

    /// Says which columns of a table were not read, once per table.
    fn unread_columns(&mut self, table: &Table, roles: &[Role]) {
        let unread: Vec<String> = table
            .header
            .iter()
            .zip(roles)
            .filter(|(_, r)| **r == Role::Other)
            .map(|(h, _)| plain(h))
            .collect();
        if unread.is_empty() {
            return;
        }
        let shown: Vec<String> = unread
            .iter()
            .take(5)
            .map(|h| format!("\"{}\"", clip(h)))
            .collect();
        let more = match unread.len() {
            n if n > 5 => format!(" and {} more", n - 5),
            _ => String::new(),
        };
        self.b.warn(
            table.line,
            WarningCode::UnreadColumn,
            format!(
                "{} column(s) of this table were not read (their meaning is not known): {}{more}",
                unread.len(),
                shown.join(", ")
            ),
        );
    }

    /// Footnote definitions between a table and the next heading or table.
    pub(crate) fn footnotes_after(&self, index: usize) -> Vec<(String, String, usize)> {
        let mut out = Vec::new();
        for block in &self.doc.blocks[index + 1..] {
            match block {
                Block::Footnote { line, mark, text } => {
                    out.push((mark.clone(), text.clone(), *line))
                }
                Block::Heading { .. } | Block::Table(_) => break,
                _ => {}
            }
        }
        out
    }

    pub(crate) fn read_port_table(
        &mut self,
        index: usize,
        table: &Table,
        roles: &[Role],
        footnotes: &[(String, String, usize)],
        out: &mut Vec<PortRow>,
    ) {
        let col = |r: Role| roles.iter().position(|&x| x == r);
        let cols = |r: Role| -> Vec<usize> {
            roles
                .iter()
                .enumerate()
                .filter(|(_, &x)| x == r)
                .map(|(i, _)| i)
                .collect()
        };
        let has_peer_columns = col(Role::Source).is_some()
            || col(Role::Destination).is_some()
            || col(Role::SourceOrDestination).is_some();
        // Direction cells that name the peer ("Allow inbound from clients")
        // are peer columns too.
        let dir_cols = cols(Role::Direction);
        let dir_text = |row: &Row| -> String {
            let texts = dir_cols.iter().filter_map(|&i| row.cells.get(i));
            let texts: Vec<String> = texts.map(|c| plain(c)).collect();
            texts.join(" ").trim().to_owned()
        };
        let has_peer_columns = has_peer_columns
            || table
                .rows
                .iter()
                .any(|r| direction_peers(&dir_text(r)) != (Vec::new(), Vec::new()));
        let ctx = &self.doc.ctx[index];
        let scope = self.doc.scope(index);
        let heading_dir = path_direction(&ctx.path).or(scope.dir);
        let has_sources = col(Role::Source).is_some() || !scope.sources.is_empty();
        let has_dests = col(Role::Destination).is_some() || !scope.dests.is_empty();
        let has_peer_columns = has_peer_columns || has_sources || has_dests;
        let subject = if has_sources && has_dests {
            None
        } else {
            scope
                .subject
                .as_ref()
                .map(|(name, _)| self.section_component(name, ctx.section))
        };
        if table.delimiter_cells == 0 {
            self.b.warn(
                table.line,
                WarningCode::MalformedTable,
                "table without a delimiter row; its first row was taken as the header",
            );
        }
        // A protocol cell left empty under a filled one continues it (a
        // merged cell flattened: "TCP" over three rows).
        let mut protocol_above = String::new();
        let first_row = out.len();
        for row in &table.rows {
            self.b.report.rows_read += 1;
            if row.is_blank() {
                self.b.skip(row.line, &row.raw, "blank separator row");
                continue;
            }
            let cell = |i: Option<usize>| -> String {
                i.and_then(|i| row.cells.get(i))
                    .cloned()
                    .unwrap_or_default()
            };
            let mut marks: Vec<String> = Vec::new();
            for c in &row.cells {
                marks.extend(inline(c).footnotes);
            }
            let notes: Vec<&str> = footnotes
                .iter()
                .filter(|(m, _, _)| marks.contains(m))
                .map(|(_, t, _)| t.as_str())
                .collect();
            // Ports.
            let port_text = cols(Role::Port)
                .into_iter()
                .map(|i| inline(&cell(Some(i))).items().join("\n"))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            let mut pc: PortCell = port_cell(&port_text);
            if let Some(s) = col(Role::StartPort) {
                let start = plain(&cell(Some(s)));
                let end = col(Role::EndPort)
                    .map(|e| plain(&cell(Some(e))))
                    .unwrap_or_default();
                let range = match (port_or_range(&start), port_or_range(&end)) {
                    (Some((a, _)), Some((_, b))) if a <= b => Some((a, b)),
                    (Some(r), None) if end.trim().is_empty() => Some(r),
                    _ => None,
                };
                if !start.trim().is_empty() || !end.trim().is_empty() {
                    pc.none = false;
                }
                match range {
                    Some((a, b)) => {
                        pc.items.push(PortItem::Range(a, b));
                        pc.none = false;
                    }
                    None if start.trim().is_empty() && end.trim().is_empty() => {}
                    None => pc.unknown.push(format!("{start} to {end}")),
                }
            }
            let mut source_ports = col(Role::SourcePort)
                .map(|i| port_cell(&plain(&cell(Some(i)))).items)
                .unwrap_or_default();
            // "8112 (source `8112`)": a fixed source port written in the port cell.
            if let Some(pos) = find_ci(&port_text, "(source ") {
                let inner = port_text[pos + 8..].split(')').next().unwrap_or("");
                source_ports.extend(port_cell(inner).items);
                let cleaned = port_cell(port_text[..pos].trim());
                pc.items = cleaned.items;
                pc.unknown = cleaned.unknown;
            }
            // Protocols.
            let mut proto_text = col(Role::Protocol)
                .map(|i| plain(&cell(Some(i))))
                .unwrap_or_default();
            if proto_text.trim().is_empty() {
                proto_text.clone_from(&protocol_above);
            } else {
                protocol_above.clone_from(&proto_text);
            }
            let name = col(Role::Name)
                .map(|i| plain(&cell(Some(i))))
                .filter(|s| !s.is_empty());
            let purpose = cols(Role::Purpose)
                .into_iter()
                .map(|i| plain(&cell(Some(i))))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            // "UDP (multicast 225.0.1.9)": the group the flow is sent to.
            let multicast = find_ci(&proto_text, "multicast ").and_then(|p| {
                proto_text[p + 10..]
                    .split(|c: char| c == ')' || c.is_whitespace())
                    .next()
                    .and_then(|g| g.parse::<std::net::IpAddr>().ok())
                    .filter(std::net::IpAddr::is_multicast)
            });
            let mut protos = protocols_in(&proto_text);
            if let (false, Some(rest)) = (protos.is_empty(), protocol_leftover(&proto_text)) {
                self.b.warn(
                    row.line,
                    WarningCode::UnreadCellText,
                    format!(
                        "part of the protocol cell could not be read and was left out: \"{}\"",
                        clip(&rest)
                    ),
                );
            }
            for p in &pc.protocols {
                if !protos.contains(p) {
                    protos.push(*p);
                }
            }
            let mut proto_guess = None;
            if protos.is_empty() {
                if !proto_text.trim().is_empty()
                    && !matches!(proto_text.trim(), "-" | "N/A" | "n/a")
                {
                    self.b.skip(
                        row.line,
                        &row.raw,
                        format!(
                            "protocol \"{}\" is not one the spec knows (tcp, udp, icmp, any)",
                            proto_text.trim()
                        ),
                    );
                    continue;
                }
                let hint_text = format!("{} {}", name.clone().unwrap_or_default(), purpose);
                let hinted = paren_protocols(&hint_text);
                if hinted.is_empty() {
                    protos.push(Proto::Tcp);
                    proto_guess = Some("protocol not stated on the page; TCP assumed".to_owned());
                } else {
                    protos = hinted;
                }
            }
            if pc.none
                && pc.items.is_empty()
                && protos.iter().any(|p| matches!(p, Proto::Tcp | Proto::Udp))
            {
                self.b.skip(row.line, &row.raw, "no port given");
                continue;
            }
            if pc.items.is_empty()
                && !pc.all
                && !pc.unknown.is_empty()
                && protos.iter().any(|p| matches!(p, Proto::Tcp | Proto::Udp))
            {
                self.b.skip(
                    row.line,
                    &row.raw,
                    format!("cannot read the port \"{}\"", pc.unknown.join(", ")),
                );
                continue;
            }
            if !pc.unknown.is_empty() {
                self.b.warn(
                    row.line,
                    WarningCode::UnreadCellText,
                    format!(
                        "part of the port cell could not be read and was left out: \"{}\"",
                        pc.unknown.join(", ")
                    ),
                );
            }
            // Direction.
            let dir_cell = dir_text(row);
            let (dir_sources, dir_dests) = direction_peers(&dir_cell);
            let (dir, dir_stated) = match direction_word(&dir_cell) {
                Some(d) => (Some(d), true),
                None => (heading_dir, heading_dir.is_some()),
            };
            // Required and condition.
            let required_text = col(Role::Required)
                .map(|i| plain(&cell(Some(i))))
                .unwrap_or_default();
            let mut required = required_word(&required_text);
            if required.is_none() {
                let n = name.clone().unwrap_or_default().to_lowercase();
                if n.contains("(optional)") || purpose.to_lowercase().starts_with("optional") {
                    required = Some(false);
                }
            }
            let condition_text = col(Role::Condition)
                .map(|i| cell(Some(i)))
                .unwrap_or_default();
            let purpose_raw = cols(Role::Purpose)
                .into_iter()
                .map(|i| cell(Some(i)))
                .collect::<Vec<_>>()
                .join(" ");
            let condition = [
                condition_text.as_str(),
                purpose_raw.as_str(),
                &cell(col(Role::Name)),
            ]
            .into_iter()
            .chain(notes.iter().copied())
            .find_map(|t| {
                if t.trim().is_empty() {
                    return None;
                }
                condition_in(t).or_else(|| {
                    // A Condition column holds the phrase itself.
                    (std::ptr::eq(t, condition_text.as_str()) && !plain(t).is_empty())
                        .then(|| CondText::Phrases(vec![plain(t)]))
                })
            });
            let split = |i: Option<usize>| -> Vec<String> {
                i.map(|i| peer_names(&cell(Some(i)))).unwrap_or_default()
            };
            let rest_of_row = [
                squash(&port_text),
                squash(&proto_text),
                squash(&required_text),
                squash(&purpose),
            ]
            .join("|");
            let signature = format!(
                "{}|{rest_of_row}",
                squash(&name.clone().unwrap_or_default())
            );
            let mut purpose_full = purpose.clone();
            for n in &notes {
                let n = plain(n);
                if !purpose_full.contains(&n) {
                    if !purpose_full.is_empty() {
                        purpose_full.push(' ');
                    }
                    purpose_full.push_str(&format!("({n})"));
                }
            }
            out.push(PortRow {
                line: row.line,
                raw: row.raw.clone(),
                subject,
                dir,
                dir_stated,
                name: name.clone(),
                sources: match split(col(Role::Source)) {
                    named if !named.is_empty() => named,
                    _ if !dir_sources.is_empty() => dir_sources,
                    _ => scope.sources.clone(),
                },
                dests: match split(col(Role::Destination)) {
                    named if !named.is_empty() => named,
                    _ if !dir_dests.is_empty() => dir_dests,
                    _ => scope.dests.clone(),
                },
                section: ctx.section,
                listeners: col(Role::Listener)
                    .map(|i| party_list(&plain(&cell(Some(i))).replace(" / ", ", ")))
                    .unwrap_or_default(),
                either: split(col(Role::SourceOrDestination)),
                name_is_peer: !has_peer_columns
                    && name.is_some()
                    && matches!(dir, Some(Dir::In | Dir::Out)),
                ports: pc.items,
                all_ports: pc.all,
                source_ports,
                multicast,
                protos,
                proto_guess,
                required,
                purpose: purpose_full,
                condition,
                signature,
                rest_of_row,
            });
        }
        let heading_text: String = ctx
            .path
            .iter()
            .map(|h| h.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.refine_rows(&mut out[first_row..], subject, &heading_text);
        let fanned = fan_out_listeners(out.split_off(first_row));
        out.extend(fanned);
    }
}

/// A text cut to 80 characters, with an ellipsis when it was longer.
pub(crate) fn clip(text: &str) -> String {
    let t = text.replace('\n', " ");
    match t.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t,
    }
}

/// A port-table row, read but not yet turned into flows.
#[derive(Debug, Clone)]
pub(crate) struct PortRow {
    pub(crate) line: usize,
    pub(crate) raw: String,
    /// The section it is in.
    pub(crate) section: usize,
    /// The components a Listener column names for this row.
    pub(crate) listeners: Vec<String>,
    pub(crate) subject: Option<usize>,
    pub(crate) dir: Option<Dir>,
    pub(crate) dir_stated: bool,
    pub(crate) name: Option<String>,
    pub(crate) sources: Vec<String>,
    pub(crate) dests: Vec<String>,
    pub(crate) either: Vec<String>,
    /// The table has Name as its only peer column (vendor Ingress/Egress tables).
    pub(crate) name_is_peer: bool,
    pub(crate) ports: Vec<PortItem>,
    pub(crate) all_ports: bool,
    pub(crate) source_ports: Vec<PortItem>,
    pub(crate) multicast: Option<std::net::IpAddr>,
    pub(crate) protos: Vec<Proto>,
    pub(crate) proto_guess: Option<String>,
    pub(crate) required: Option<bool>,
    pub(crate) purpose: String,
    pub(crate) condition: Option<CondText>,
    /// Name, port, protocol, required and description, squashed: the
    /// egress row of one section and the ingress row of another that state
    /// the same flow have the same signature.
    pub(crate) signature: String,
    /// The signature less the name, for ingress rows that name their source.
    pub(crate) rest_of_row: String,
}
