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
        let columns = Columns(roles);
        let facts = self.table_facts(index, table, &columns);
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
            let cells = Cells {
                row,
                columns: &columns,
            };
            let notes = row_notes(row, footnotes);
            if let Some(read) = self.read_port_row(&cells, &facts, &notes, &mut protocol_above) {
                out.push(read);
            }
        }
        let ctx = &self.doc.ctx[index];
        let heading_text: String = ctx
            .path
            .iter()
            .map(|h| h.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.refine_rows(&mut out[first_row..], facts.subject, &heading_text);
        let fanned = fan_out_listeners(out.split_off(first_row));
        out.extend(fanned);
    }

    /// What a port table's headings, captions and columns say for every
    /// row: direction, peers, subject.
    fn table_facts(&mut self, index: usize, table: &Table, columns: &Columns) -> TableFacts {
        let has_peer_columns = columns.col(Role::Source).is_some()
            || columns.col(Role::Destination).is_some()
            || columns.col(Role::SourceOrDestination).is_some();
        // Direction cells that name the peer ("Allow inbound from clients")
        // are peer columns too.
        let has_peer_columns = has_peer_columns
            || table
                .rows
                .iter()
                .any(|r| direction_peers(&direction_text(r, columns)) != (Vec::new(), Vec::new()));
        let ctx = &self.doc.ctx[index];
        let scope = self.doc.scope(index);
        let heading_dir = path_direction(&ctx.path).or(scope.dir);
        let has_sources = columns.col(Role::Source).is_some() || !scope.sources.is_empty();
        let has_dests = columns.col(Role::Destination).is_some() || !scope.dests.is_empty();
        let subject = if has_sources && has_dests {
            None
        } else {
            scope
                .subject
                .as_ref()
                .map(|(name, _)| self.section_component(name, ctx.section))
        };
        TableFacts {
            heading_dir,
            has_peer_columns: has_peer_columns || has_sources || has_dests,
            subject,
            sources: scope.sources,
            dests: scope.dests,
            section: ctx.section,
        }
    }

    /// One body row of a port table, or `None` when it was skipped (and
    /// said so).
    fn read_port_row(
        &mut self,
        cells: &Cells,
        facts: &TableFacts,
        notes: &[&str],
        protocol_above: &mut String,
    ) -> Option<PortRow> {
        let row = cells.row;
        let (pc, source_ports, port_text) = row_ports(cells);
        let mut proto_text = cells.plain(Role::Protocol);
        if proto_text.trim().is_empty() {
            proto_text.clone_from(protocol_above);
        } else {
            protocol_above.clone_from(&proto_text);
        }
        let name = Some(cells.plain(Role::Name)).filter(|s| !s.is_empty());
        let purpose = cells
            .plains(Role::Purpose)
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let multicast = multicast_group(&proto_text);
        let hint = format!("{} {}", name.clone().unwrap_or_default(), purpose);
        let (protos, proto_guess) = self.row_protocols(row, &proto_text, &pc, &hint)?;
        self.check_row_ports(row, &pc, &protos)?;
        let dir_cell = direction_text(row, cells.columns);
        let (dir, dir_stated) = match direction_word(&dir_cell) {
            Some(d) => (Some(d), true),
            None => (facts.heading_dir, facts.heading_dir.is_some()),
        };
        let required_text = cells.plain(Role::Required);
        let required = row_required(&required_text, name.as_deref(), &purpose);
        let condition = row_condition(cells, notes);
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
        let peers = row_peers(cells, facts, &dir_cell);
        Some(PortRow {
            line: row.line,
            raw: row.raw.clone(),
            subject: facts.subject,
            dir,
            dir_stated,
            name_is_peer: !facts.has_peer_columns
                && name.is_some()
                && matches!(dir, Some(Dir::In | Dir::Out)),
            name,
            sources: peers.sources,
            dests: peers.dests,
            section: facts.section,
            listeners: peers.listeners,
            either: peers.either,
            ports: pc.items,
            all_ports: pc.all,
            source_ports,
            multicast,
            protos,
            proto_guess,
            required,
            purpose: with_notes(purpose, notes),
            condition,
            signature,
            rest_of_row,
        })
    }

    /// The protocols of a row (its protocol cell, those its port cell
    /// names, else a hint in its name or purpose, else TCP assumed) and the
    /// guess made; `None` when the protocol is not one the spec knows.
    fn row_protocols(
        &mut self,
        row: &Row,
        proto_text: &str,
        pc: &PortCell,
        hint: &str,
    ) -> Option<(Vec<Proto>, Option<String>)> {
        let mut protos = protocols_in(proto_text);
        if let (false, Some(rest)) = (protos.is_empty(), protocol_leftover(proto_text)) {
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
        if !protos.is_empty() {
            return Some((protos, None));
        }
        if !proto_text.trim().is_empty() && !NO_PROTOCOL.contains(&proto_text.trim()) {
            self.b.skip(
                row.line,
                &row.raw,
                format!(
                    "protocol \"{}\" is not one the spec knows (tcp, udp, icmp, any)",
                    proto_text.trim()
                ),
            );
            return None;
        }
        let hinted = paren_protocols(hint);
        if hinted.is_empty() {
            let guess = "protocol not stated on the page; TCP assumed".to_owned();
            Some((vec![Proto::Tcp], Some(guess)))
        } else {
            Some((hinted, None))
        }
    }

    /// Skips a TCP or UDP row without a port it can read (`None`), and
    /// warns of the parts of its port cell left out.
    fn check_row_ports(&mut self, row: &Row, pc: &PortCell, protos: &[Proto]) -> Option<()> {
        let has_ports = protos.iter().any(|p| matches!(p, Proto::Tcp | Proto::Udp));
        if pc.none && pc.items.is_empty() && has_ports {
            self.b.skip(row.line, &row.raw, "no port given");
            return None;
        }
        if pc.items.is_empty() && !pc.all && !pc.unknown.is_empty() && has_ports {
            self.b.skip(
                row.line,
                &row.raw,
                format!("cannot read the port \"{}\"", pc.unknown.join(", ")),
            );
            return None;
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
        Some(())
    }
}

/// Protocol cells that say there is none.
const NO_PROTOCOL: &[&str] = &["-", "N/A", "n/a"];

/// A port table's columns, by the role of each.
struct Columns<'r>(&'r [Role]);

impl Columns<'_> {
    /// The first column of role `r`.
    fn col(&self, r: Role) -> Option<usize> {
        self.0.iter().position(|&x| x == r)
    }

    /// Every column of role `r`, left to right.
    fn cols(&self, r: Role) -> Vec<usize> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &x)| x == r)
            .map(|(i, _)| i)
            .collect()
    }
}

/// One body row, read through its table's columns.
struct Cells<'a> {
    row: &'a Row,
    columns: &'a Columns<'a>,
}

impl Cells<'_> {
    /// Cell `i` as written (empty when the row is short).
    fn cell(&self, i: usize) -> String {
        self.row.cells.get(i).cloned().unwrap_or_default()
    }

    /// The first cell of role `r` as written (empty without one).
    fn raw(&self, r: Role) -> String {
        self.columns
            .col(r)
            .map(|i| self.cell(i))
            .unwrap_or_default()
    }

    /// The first cell of role `r` as plain text (empty without one).
    fn plain(&self, r: Role) -> String {
        self.columns
            .col(r)
            .map(|i| plain(&self.cell(i)))
            .unwrap_or_default()
    }

    /// Every cell of role `r` as plain text.
    fn plains(&self, r: Role) -> Vec<String> {
        let cols = self.columns.cols(r).into_iter();
        cols.map(|i| plain(&self.cell(i))).collect()
    }

    /// The peers the first cell of role `r` names.
    fn peers(&self, r: Role) -> Vec<String> {
        self.columns
            .col(r)
            .map(|i| peer_names(&self.cell(i)))
            .unwrap_or_default()
    }
}

/// What a port table says for all its rows.
struct TableFacts {
    /// The direction its headings or intro give.
    heading_dir: Option<Dir>,
    /// Whether rows name their peers (columns, direction cells, captions).
    has_peer_columns: bool,
    /// The component the table is about.
    subject: Option<usize>,
    /// Sources and destinations a caption or sentence gives every row.
    sources: Vec<String>,
    dests: Vec<String>,
    section: usize,
}

/// The peers of one row.
struct RowPeers {
    sources: Vec<String>,
    dests: Vec<String>,
    either: Vec<String>,
    listeners: Vec<String>,
}

/// A row's peers: its Source and Destination cells, else those its
/// direction cell names, else the table's.
fn row_peers(cells: &Cells, facts: &TableFacts, dir_cell: &str) -> RowPeers {
    let (dir_sources, dir_dests) = direction_peers(dir_cell);
    let pick = |named: Vec<String>, from_dir: Vec<String>, table: &[String]| match named {
        named if !named.is_empty() => named,
        _ if !from_dir.is_empty() => from_dir,
        _ => table.to_vec(),
    };
    RowPeers {
        sources: pick(cells.peers(Role::Source), dir_sources, &facts.sources),
        dests: pick(cells.peers(Role::Destination), dir_dests, &facts.dests),
        either: cells.peers(Role::SourceOrDestination),
        listeners: cells
            .columns
            .col(Role::Listener)
            .map(|i| party_list(&plain(&cells.cell(i)).replace(" / ", ", ")))
            .unwrap_or_default(),
    }
}

/// The texts of the footnotes a row's cells mark.
fn row_notes<'f>(row: &Row, footnotes: &'f [(String, String, usize)]) -> Vec<&'f str> {
    let mut marks: Vec<String> = Vec::new();
    for c in &row.cells {
        marks.extend(inline(c).footnotes);
    }
    footnotes
        .iter()
        .filter(|(m, _, _)| marks.contains(m))
        .map(|(_, t, _)| t.as_str())
        .collect()
}

/// The direction cells of a row, as one text.
fn direction_text(row: &Row, columns: &Columns) -> String {
    let cols = columns.cols(Role::Direction);
    let texts = cols.iter().filter_map(|&i| row.cells.get(i));
    let texts: Vec<String> = texts.map(|c| plain(c)).collect();
    texts.join(" ").trim().to_owned()
}

/// A row's ports (Port columns, or Start and End Port), its fixed source
/// ports, and the text of its port cells.
fn row_ports(cells: &Cells) -> (PortCell, Vec<PortItem>, String) {
    let port_text = cells
        .columns
        .cols(Role::Port)
        .into_iter()
        .map(|i| inline(&cells.cell(i)).items().join("\n"))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut pc: PortCell = port_cell(&port_text);
    if cells.columns.col(Role::StartPort).is_some() {
        start_end_ports(cells, &mut pc);
    }
    let mut source_ports = cells
        .columns
        .col(Role::SourcePort)
        .map(|i| port_cell(&plain(&cells.cell(i))).items)
        .unwrap_or_default();
    // "8112 (source `8112`)": a fixed source port written in the port cell.
    if let Some(pos) = find_ci(&port_text, "(source ") {
        let inner = port_text[pos + 8..].split(')').next().unwrap_or("");
        source_ports.extend(port_cell(inner).items);
        let cleaned = port_cell(port_text[..pos].trim());
        pc.items = cleaned.items;
        pc.unknown = cleaned.unknown;
    }
    (pc, source_ports, port_text)
}

/// The range a Start Port and an End Port cell give, added to `pc`.
fn start_end_ports(cells: &Cells, pc: &mut PortCell) {
    let start = cells.plain(Role::StartPort);
    let end = cells.plain(Role::EndPort);
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

/// "UDP (multicast 225.0.1.9)": the group the flow is sent to.
fn multicast_group(proto_text: &str) -> Option<std::net::IpAddr> {
    find_ci(proto_text, "multicast ").and_then(|p| {
        proto_text[p + 10..]
            .split(|c: char| c == ')' || c.is_whitespace())
            .next()
            .and_then(|g| g.parse::<std::net::IpAddr>().ok())
            .filter(std::net::IpAddr::is_multicast)
    })
}

/// Whether a row is required: its Required cell, else "optional" in its
/// name or at the start of its purpose.
fn row_required(required_text: &str, name: Option<&str>, purpose: &str) -> Option<bool> {
    let required = required_word(required_text);
    if required.is_some() {
        return required;
    }
    let n = name.unwrap_or_default().to_lowercase();
    if n.contains("(optional)") || purpose.to_lowercase().starts_with("optional") {
        return Some(false);
    }
    None
}

/// A row's condition: the first of its Condition cell (a phrase of its
/// own when no condition is recognised in it), its purpose, its name and
/// its footnotes that states one.
fn row_condition(cells: &Cells, notes: &[&str]) -> Option<CondText> {
    let condition_text = cells.raw(Role::Condition);
    let purpose_raw = cells
        .columns
        .cols(Role::Purpose)
        .into_iter()
        .map(|i| cells.cell(i))
        .collect::<Vec<_>>()
        .join(" ");
    let name = cells.raw(Role::Name);
    let condition = [condition_text.as_str(), purpose_raw.as_str(), name.as_str()]
        .into_iter()
        .chain(notes.iter().copied())
        .enumerate()
        .find_map(|(k, t)| {
            if t.trim().is_empty() {
                return None;
            }
            condition_in(t).or_else(|| {
                // A Condition column holds the phrase itself.
                (k == 0 && !plain(t).is_empty()).then(|| CondText::Phrases(vec![plain(t)]))
            })
        });
    condition
}

/// A row's purpose with the footnotes it marks that it does not already
/// hold, in parentheses.
fn with_notes(purpose: String, notes: &[&str]) -> String {
    let mut full = purpose;
    for n in notes {
        let n = plain(n);
        if !full.contains(&n) {
            if !full.is_empty() {
                full.push(' ');
            }
            full.push_str(&format!("({n})"));
        }
    }
    full
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
