//! The connection-matrix page.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use portolan_spec::{ComponentId, ComponentKind, Destination, Flow, Spec};

use crate::markdown::{code, escape, text};
use crate::token::{condition_words, endpoint_text, marked_tokens, protocol_word, ConditionNotes};

/// The legend: what a cell means. Kept as one text so that the page and the
/// documentation say the same thing.
const LEGEND: &str = "\
Values are shown as `IP:protocol:source_port:destination_port`, one per
destination port, separated by spaces; the cell in row *From* and column *To*
lists what *From* sends to *To*.

- Blank leading fields are elided: `T::8112` is TCP to port 8112.
- The protocol is `T` for TCP, `U` for UDP and `I` for ICMP, which has no
  ports (`I::`).
- `*` means any: `T::*` is every TCP port, and `*:*:*:*` is every protocol
  and port.
- If `source_port` is blank, it is an ephemeral port; `U:8112:8112` is UDP
  from port 8112 to port 8112.
- `IP` is given only for multicast: `225.0.1.9:U::8082` is UDP sent to the
  group 225.0.1.9, which the column's component joins.
- A port may be a range (`T::8000-8010`) or a parameter the operator sets
  (`T::$postgres-port`, see *Parameters*).
- A trailing `?` marks an optional flow, and `[n]` a flow that exists only
  under condition *n*, listed below the matrix. Unmarked flows are required.
- `N/A` marks a component's own cell when it sends nothing to itself.
";

/// Renders the matrix page.
pub(crate) fn render(spec: &Spec) -> String {
    let mut out = String::new();
    let mut notes = ConditionNotes::new();
    title(spec, &mut out);
    out.push_str("## Legend\n\n");
    out.push_str(LEGEND);
    out.push_str("\n## Connection matrix\n\n");
    out.push_str(&matrix_table(spec, &mut notes));
    if !notes.is_empty() {
        out.push_str("\nConditions:\n\n");
        for (i, condition) in notes.conditions().iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. only when {}",
                i + 1,
                condition_words(spec, condition)
            );
        }
    }
    let outside: Vec<&str> = spec
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::External)
        .map(|c| c.name.as_str())
        .collect();
    if !outside.is_empty() {
        let verb = if outside.len() == 1 {
            "stands"
        } else {
            "stand"
        };
        let _ = writeln!(
            out,
            "\n{} {verb} for the outside world: no fixed address, and a flow \
             to it may go anywhere.",
            outside
                .iter()
                .map(|n| format!("*{}*", escape(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    external_endpoints(spec, &mut out);
    features_and_parameters(spec, &mut out);
    out
}

/// The page title and what the spec says about the system.
pub(crate) fn title(spec: &Spec, out: &mut String) {
    let _ = writeln!(
        out,
        "# {}: networking requirements\n",
        escape(&spec.system.name)
    );
    if let Some(description) = &spec.system.description {
        let _ = writeln!(out, "{}\n", text(description.trim()));
    }
    let mut facts = Vec::new();
    if let Some(vendor) = &spec.system.vendor {
        facts.push(format!("Vendor: {}.", escape(vendor)));
    }
    if let Some(source) = &spec.system.source {
        facts.push(format!("Source: {}.", link(source.trim())));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "{}\n", facts.join(" "));
    }
}

/// A URL as an autolink when it is one, else as text.
fn link(text: &str) -> String {
    let is_url = (text.starts_with("https://") || text.starts_with("http://"))
        && !text.contains(|c: char| c.is_whitespace() || c == '<' || c == '>');
    if is_url {
        format!("<{text}>")
    } else {
        escape(text)
    }
}

/// The table itself: one row and one column per component, in spec order.
fn matrix_table(spec: &Spec, notes: &mut ConditionNotes) -> String {
    let mut out = String::from("| To →<br>↓ From |");
    for component in &spec.components {
        let _ = write!(out, " {} |", escape(&component.name));
    }
    out.push_str("\n|---|");
    for _ in &spec.components {
        out.push_str("---|");
    }
    out.push('\n');
    // Each cell's flows, in spec order, found in one pass: scanning every
    // flow for every cell is quadratic in components times flows.
    let width = spec.components.len();
    let mut cells: Vec<Vec<&Flow>> = vec![Vec::new(); width * width];
    for flow in &spec.flows {
        if let Destination::Component(to) = flow.to {
            cells[flow.from.0 * width + to.0].push(flow);
        }
    }
    for (row, from) in spec.components.iter().enumerate() {
        let _ = write!(out, "| {} |", escape(&from.name));
        for column in 0..width {
            let tokens: Vec<String> = cells[row * width + column]
                .iter()
                .flat_map(|f| marked_tokens(spec, f, notes))
                .collect();
            let cell = if tokens.is_empty() && row == column {
                "N/A".to_owned()
            } else {
                escape(&tokens.join(" "))
            };
            if cell.is_empty() {
                out.push_str(" |");
            } else {
                let _ = write!(out, " {cell} |");
            }
        }
        out.push('\n');
    }
    out
}

/// Flows to named external endpoints, grouped by source component. An
/// endpoint that every system component reaches the same way is listed once,
/// under "Every system component", as vendor pages do ("All hosts").
fn external_endpoints(spec: &Spec, out: &mut String) {
    let items: Vec<(ComponentId, String)> = spec
        .flows
        .iter()
        .filter(|f| matches!(f.to, Destination::External(_)))
        .map(|f| (f.from, external_item(spec, f)))
        .collect();
    if items.is_empty() {
        return;
    }
    // Which system components reach each item, counted once: asking it
    // again of every item for every component grows with the fourth power
    // of the flows (20,000 flows to external endpoints took minutes).
    let system = spec
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::System)
        .count();
    let mut reached: HashMap<&str, HashSet<ComponentId>> = HashMap::new();
    for (from, item) in &items {
        if spec.component(*from).kind == ComponentKind::System {
            reached.entry(item).or_default().insert(*from);
        }
    }
    let everywhere: HashSet<&str> = reached
        .into_iter()
        .filter(|(_, from)| system > 1 && from.len() == system)
        .map(|(item, _)| item)
        .collect();
    let mut own: Vec<Vec<&str>> = vec![Vec::new(); spec.components.len()];
    let mut shared: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (from, item) in &items {
        if !everywhere.contains(item.as_str()) {
            own[from.0].push(item);
        } else if seen.insert(item) {
            shared.push(item);
        }
    }
    out.push_str("\n## External endpoints\n\n");
    out.push_str(
        "Endpoints outside the system that components connect to, with the \
         condition under which each is needed.\n",
    );
    for (component, own) in spec.components.iter().zip(&own) {
        if own.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n### {}\n", escape(&component.name));
        for item in own {
            let _ = writeln!(out, "- {item}");
        }
    }
    if !shared.is_empty() {
        out.push_str("\n### Every system component\n\n");
        for item in shared {
            let _ = writeln!(out, "- {item}");
        }
    }
}

/// One line about a flow to an external endpoint:
/// `` `slack.com:443` TCP, optional, only when `slack-alerts`: Slack alerts ``.
pub(crate) fn external_item(spec: &Spec, flow: &Flow) -> String {
    let Destination::External(e) = flow.to else {
        return String::new();
    };
    let external = spec.external(e);
    let address = external.address.to_string();
    let mut item = code(&endpoint_text(spec, flow, &address));
    if external.name != address && format!("<{}>", external.name) != address {
        let _ = write!(item, " ({})", escape(&external.name));
    }
    let _ = write!(item, " {}", protocol_word(flow.protocol));
    if let Some(group) = flow.multicast {
        let _ = write!(item, " multicast to {group}");
    }
    if !flow.source_ports.is_all() {
        let _ = write!(
            item,
            " from port {}",
            code(&spec.ports_text(&flow.source_ports))
        );
    }
    item.push_str(if flow.required {
        ", required"
    } else {
        ", optional"
    });
    if let Some(condition) = &flow.when {
        let _ = write!(item, ", only when {}", condition_words(spec, condition));
    }
    if let Some(purpose) = &flow.purpose {
        let _ = write!(item, ": {}", text(purpose.trim()));
    }
    item
}

/// The features that switch flows on and the parameters that set ports.
pub(crate) fn features_and_parameters(spec: &Spec, out: &mut String) {
    if !spec.features.is_empty() {
        out.push_str("\n## Features\n\n");
        for feature in &spec.features {
            let _ = write!(out, "- {}", code(&feature.id));
            if feature.name != feature.id {
                let _ = write!(out, " ({})", escape(&feature.name));
            }
            if let Some(description) = &feature.description {
                let _ = write!(out, ": {}", text(description.trim()));
            }
            out.push('\n');
        }
    }
    if !spec.parameters.is_empty() {
        out.push_str("\n## Parameters\n\n");
        for parameter in &spec.parameters {
            let default = match parameter.default {
                Some(default) => format!("default {default}"),
                None => "no default: every deployment sets it".to_owned(),
            };
            let _ = write!(
                out,
                "- {} (shown as \"{}\"; {default})",
                code(&format!("${}", parameter.id)),
                escape(&parameter.shown_as)
            );
            if let Some(description) = &parameter.description {
                let _ = write!(out, ": {}", text(description.trim()));
            }
            out.push('\n');
        }
    }
}
