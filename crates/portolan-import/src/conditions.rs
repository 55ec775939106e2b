//! Conditions in running text: "Only required when using [SQS](…)",
//! "Required when using the built-in MQTT broker", "if you intend to use SMS
//! alerts or Slack alerts", and the explicit form of rendered pages,
//! "only when `(google-oauth or google-analytics-checks)`".

use crate::text::{find_ci, plain};

/// A condition as the page words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondText {
    /// Feature phrases ("SQS", "built-in MQTT broker"); more than one means any of them.
    Phrases(Vec<String>),
    /// An expression over feature ids, as rendered pages write it.
    Expr(Expr),
}

/// A condition expression over feature ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A feature id.
    Id(String),
    /// At least one.
    Any(Vec<Expr>),
    /// All.
    All(Vec<Expr>),
    /// Not.
    Not(Box<Expr>),
}

/// Phrases that introduce a condition, longest first.
const TRIGGERS: &[&str] = &[
    "only required when using ",
    "only required if using ",
    "only required if you use ",
    "only required when ",
    "only required if ",
    "only needed when using ",
    "only needed if using ",
    "only needed when ",
    "only needed if ",
    "only necessary when ",
    "only necessary if ",
    "only used when ",
    "only used if ",
    "required when using ",
    "required if using ",
    "required if you use ",
    "needed when using ",
    "needed if using ",
    "needed if you use ",
    "required when ",
    "required if ",
    "needed when ",
    "needed if ",
    "only when using ",
    "only if using ",
    "only when ",
    "only if ",
    "if you intend to use ",
    "if you plan to use ",
    "if you want to use ",
    "if you use ",
    "if you enable ",
    "if you are using ",
    "if you're using ",
    "when you use ",
    "when you enable ",
    "when using ",
    "if using ",
    "when enabling ",
    "can be blocked if you disable ",
    "can be blocked if you do not use ",
    "can be blocked if ",
    "only in ",
    "only with ",
    "only for ",
];

const LEADING: &[&str] = &[
    "using ",
    "you use ",
    "you are using ",
    "you enable ",
    "you intend to use ",
    "you want to use ",
    "you plan to use ",
    "you configure ",
    "you deploy ",
    "enabling ",
    "the ",
    "a ",
    "an ",
    "any ",
    "your ",
    "our ",
    "to use ",
    "use ",
];

const TRAILING: &[&str] = &[
    " is enabled",
    " are enabled",
    " is used",
    " are used",
    " is configured",
    " are configured",
    " is in use",
    " is deployed",
    " at all",
    " feature",
    " integration",
    " option",
    " is not used",
    " are not used",
    " is disabled",
];

/// Finds a condition in a text (raw markdown).
pub fn condition_in(raw: &str) -> Option<CondText> {
    condition_stated(raw).or_else(|| if_used(raw))
}

/// "Redis (if used)", "app downloads (if used)": the words before it name
/// what is optional.
fn if_used(raw: &str) -> Option<CondText> {
    let text = plain(raw);
    let pos = find_ci(&text, "(if used)").or_else(|| find_ci(&text, ", if used"))?;
    let before = text[..pos].trim();
    let before = before
        .rsplit([':', '–', '—', ';', '.', ','])
        .next()
        .unwrap_or(before)
        .trim();
    let phrases = phrases_of(before);
    (!phrases.is_empty()).then_some(CondText::Phrases(phrases))
}

fn condition_stated(raw: &str) -> Option<CondText> {
    // The rendered form: only when `expr`.
    if let Some(pos) = find_ci(raw, "only when `") {
        let rest = &raw[pos + "only when ".len()..];
        let run = rest.chars().take_while(|&c| c == '`').count();
        let fence = "`".repeat(run);
        if let Some(end) = rest[run..].find(&fence) {
            let code = rest[run..run + end].trim();
            if let Some(expr) = parse_expr(code) {
                return Some(CondText::Expr(expr));
            }
        }
    }
    let text = plain(raw);
    for trigger in TRIGGERS {
        let Some(pos) = find_ci(&text, trigger) else {
            continue;
        };
        // A trigger must start a word.
        if pos > 0
            && text[..pos]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        let rest = &text[pos + trigger.len()..];
        let phrases = phrases_of(rest);
        if !phrases.is_empty() {
            return Some(CondText::Phrases(phrases));
        }
    }
    None
}

/// Feature phrases of a leading "If you …" clause, given what follows
/// "If you " ("deploy your workers using our Kubernetes operator" gives
/// "Kubernetes operator"): what the operator does *with* names the feature
/// better than the verb phrase around it.
pub fn if_you_phrases(clause: &str) -> Vec<String> {
    let clause = plain(clause);
    let clause = clause.trim();
    match find_ci(clause, " using ") {
        Some(p) => phrases_of(&clause[p + " using ".len()..]),
        None => phrases_of(&format!("you {clause}")),
    }
}

/// Feature phrases at the start of a clause: up to the end of the sentence,
/// split at " or ".
fn phrases_of(rest: &str) -> Vec<String> {
    let mut end = rest.len();
    for stop in [
        ". ",
        ";",
        "(",
        ",",
        ":",
        " for ",
        " to ",
        ")",
        " - ",
        " – ",
        " so ",
        " because ",
    ] {
        if let Some(p) = rest.find(stop) {
            end = end.min(p);
        }
    }
    let mut clause = rest[..end].trim().trim_end_matches('.').trim().to_owned();
    let mut changed = true;
    while changed {
        changed = false;
        for lead in LEADING {
            if let Some(rest) = strip_prefix_ci(&clause, lead) {
                clause = rest.trim_start().to_owned();
                changed = true;
                break;
            }
        }
    }
    for trail in TRAILING {
        let cut = clause.len().wrapping_sub(trail.len());
        if clause
            .get(cut..)
            .is_some_and(|t| t.eq_ignore_ascii_case(trail))
        {
            clause.truncate(cut);
            break;
        }
    }
    let mut out = Vec::new();
    for part in split_words(&clause, &[" or ", " and/or "]) {
        let part = part.trim();
        let part =
            LEADING
                .iter()
                .fold(part.to_owned(), |p, lead| match strip_prefix_ci(&p, lead) {
                    Some(rest) => rest.trim_start().to_owned(),
                    None => p,
                });
        let n = part.split_whitespace().count();
        if (1..=6).contains(&n) {
            out.push(part);
        }
    }
    out
}

/// `text` less an ASCII prefix, ignoring ASCII case.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &text[prefix.len()..])
}

fn split_words(text: &str, seps: &[&str]) -> Vec<String> {
    let mut parts = vec![text.to_owned()];
    for sep in seps {
        parts = parts
            .into_iter()
            .flat_map(|p| {
                let mut out = Vec::new();
                let mut rest = p.as_str();
                while let Some(pos) = find_ci(rest, sep) {
                    out.push(rest[..pos].to_owned());
                    rest = &rest[pos + sep.len()..];
                }
                out.push(rest.to_owned());
                out
            })
            .collect();
    }
    parts
}

/// Feature phrases for an item whose purpose is its only hint
/// ("Google OAuth setup and Google Analytics check configuration" gives
/// "Google OAuth" and "Google Analytics checks").
pub fn purpose_phrases(purpose: &str) -> Vec<String> {
    let text = plain(purpose);
    let mut clause = text.as_str();
    for stop in [
        " if ", " If ", " when ", " When ", "(", ";", ". ", " - ", " – ",
    ] {
        if let Some(p) = clause.find(stop) {
            clause = &clause[..p];
        }
    }
    let clause = clause.trim().trim_end_matches('.');
    let clause = match clause.find(" for ") {
        Some(p) if clause[..p].split_whitespace().count() <= 4 => clause[..p].to_owned(),
        Some(p) => {
            let tail = &clause[clause.rfind(" for ").unwrap_or(p) + 5..];
            let mut tail = tail;
            for stop in [" of ", " to ", " on ", " in ", " from "] {
                if let Some(q) = tail.find(stop) {
                    tail = &tail[..q];
                }
            }
            tail.to_owned()
        }
        None => clause.to_owned(),
    };
    let mut out = Vec::new();
    for part in split_words(&clause, &[" and ", " or ", " / "]) {
        let mut ws: Vec<String> = part.split_whitespace().map(str::to_owned).collect();
        while ws.len() > 1
            && matches!(
                ws.last().map(|w| w.to_lowercase()).as_deref(),
                Some(
                    "setup"
                        | "configuration"
                        | "config"
                        | "integration"
                        | "support"
                        | "access"
                        | "usage"
                        | "set-up"
                )
            )
        {
            ws.pop();
        }
        if ws.len() >= 2
            && ws.last().map(|w| w.to_lowercase()).as_deref() == Some("up")
            && ws[ws.len() - 2].eq_ignore_ascii_case("set")
        {
            ws.truncate(ws.len() - 2);
        }
        if let Some(last) = ws.last_mut() {
            if last.eq_ignore_ascii_case("check") || last.eq_ignore_ascii_case("alert") {
                last.push('s');
            }
        }
        while ws.len() > 4 {
            ws.pop();
        }
        if !ws.is_empty() {
            out.push(ws.join(" "));
        }
    }
    out
}

/// Parses `a`, `(a or b)`, `(a and b)`, `not a` over feature ids.
pub fn parse_expr(text: &str) -> Option<Expr> {
    let tokens = tokenize(text);
    let mut pos = 0;
    let expr = parse_or(&tokens, &mut pos, 0)?;
    (pos == tokens.len()).then_some(expr)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == '(' || c == ')' {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(c.to_string());
        } else if c.is_whitespace() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn parse_or(tokens: &[String], pos: &mut usize, depth: usize) -> Option<Expr> {
    if depth > 32 {
        return None;
    }
    let first = parse_and(tokens, pos, depth + 1)?;
    let mut items = vec![first];
    while tokens.get(*pos).is_some_and(|t| t == "or") {
        *pos += 1;
        items.push(parse_and(tokens, pos, depth + 1)?);
    }
    Some(if items.len() == 1 {
        items.pop()?
    } else {
        Expr::Any(items)
    })
}

fn parse_and(tokens: &[String], pos: &mut usize, depth: usize) -> Option<Expr> {
    let first = parse_atom(tokens, pos, depth + 1)?;
    let mut items = vec![first];
    while tokens.get(*pos).is_some_and(|t| t == "and") {
        *pos += 1;
        items.push(parse_atom(tokens, pos, depth + 1)?);
    }
    Some(if items.len() == 1 {
        items.pop()?
    } else {
        Expr::All(items)
    })
}

fn parse_atom(tokens: &[String], pos: &mut usize, depth: usize) -> Option<Expr> {
    if depth > 32 {
        return None;
    }
    let token = tokens.get(*pos)?;
    *pos += 1;
    match token.as_str() {
        "not" => Some(Expr::Not(Box::new(parse_atom(tokens, pos, depth + 1)?))),
        "(" => {
            let inner = parse_or(tokens, pos, depth + 1)?;
            (tokens.get(*pos)? == ")").then_some(())?;
            *pos += 1;
            Some(inner)
        }
        ")" | "or" | "and" => None,
        id => crate::text::slug(id)
            .eq(id)
            .then(|| Expr::Id(id.to_owned())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn phrases(text: &str) -> Vec<String> {
        match condition_in(text) {
            Some(CondText::Phrases(p)) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn prose_conditions() {
        assert_eq!(
            phrases("github.com – app downloads (if used)"),
            vec!["app downloads"]
        );
        assert_eq!(
            phrases("Gossip between datacenters (only with WAN federation)"),
            vec!["WAN federation"]
        );
        assert_eq!(
            phrases("release checks (can be blocked if you disable the beacon)"),
            vec!["beacon"]
        );
        assert_eq!(
            phrases("mirrors, only in offline environments"),
            vec!["offline environments"]
        );
    }

    #[test]
    fn vendor_phrases() {
        assert_eq!(
            phrases("Only required when using [SQS](./message-queues.md#sqs)."),
            ["SQS"]
        );
        assert_eq!(
            phrases("Only required when using [IoT Core](./mqtt-broker.md#iot-core)."),
            ["IoT Core"]
        );
        assert_eq!(
            phrases("Used for serving the MQTT broker server. Required when using the built-in MQTT broker."),
            ["built-in MQTT broker"]
        );
        assert_eq!(
            phrases("requires external internet access if you intend to use SMS alerts or Slack alerts."),
            ["SMS alerts", "Slack alerts"]
        );
        assert_eq!(
            phrases("Only required when the admin console is enabled."),
            ["admin console"]
        );
        assert_eq!(
            condition_in("Outbound access to your object storage buckets."),
            None
        );
    }

    #[test]
    fn non_ascii_case_does_not_shift_offsets() {
        // 'İ' lowercases to two characters and 'K' (Kelvin) to ASCII 'k':
        // offsets found in a lowercased copy would not fit the original.
        assert_eq!(phrases("İİ Only required when using KMS."), ["KMS"]);
        assert_eq!(
            condition_in("\u{212a}ONLY REQUIRED WHEN the x"),
            Some(CondText::Phrases(vec!["x".into()]))
        );
        assert_eq!(purpose_phrases("İ x"), ["İ x"]);
    }

    #[test]
    fn rendered_expressions() {
        assert_eq!(
            condition_in("Only when `sqs` (SQS message queue)."),
            Some(CondText::Expr(Expr::Id("sqs".into())))
        );
        assert_eq!(
            condition_in("optional, only when `(google-oauth or google-analytics-checks)`"),
            Some(CondText::Expr(Expr::Any(vec![
                Expr::Id("google-oauth".into()),
                Expr::Id("google-analytics-checks".into())
            ])))
        );
        assert_eq!(
            parse_expr("not a"),
            Some(Expr::Not(Box::new(Expr::Id("a".into()))))
        );
        assert_eq!(parse_expr("(a or"), None);
        assert_eq!(parse_expr("A B"), None);
    }

    #[test]
    fn purposes() {
        assert_eq!(purpose_phrases("Slack OAuth setup"), ["Slack OAuth"]);
        assert_eq!(
            purpose_phrases("Google OAuth setup and Google Analytics check configuration"),
            ["Google OAuth", "Google Analytics checks"]
        );
        assert_eq!(
            purpose_phrases("Inside monitoring script that reports data to Circonus SaaS for external monitoring of alerting system"),
            ["external monitoring"]
        );
        assert_eq!(
            purpose_phrases("IRC alerts If using public / external server"),
            ["IRC alerts"]
        );
        assert_eq!(
            purpose_phrases("Backtrace crash reporting for Circonus engineering"),
            ["Backtrace crash reporting"]
        );
        assert_eq!(purpose_phrases("SMS Alerts"), ["SMS Alerts"]);
    }
}
