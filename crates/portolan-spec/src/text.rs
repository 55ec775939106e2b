//! Text from input files, made safe to show: control characters escaped and
//! long text clipped.
//!
//! A spec is written by people and copied from vendor pages, so its names,
//! descriptions and even its ids (before they are checked) can hold an
//! escape sequence (`ESC]0;` retitles a terminal, `ESC[2J` clears it), a NUL
//! (which `dot` refuses), a carriage return (which hides what came before it
//! on a terminal), bidirectional overrides (which show text in another order
//! than it is read) or a line of a megabyte. Every output a person or a
//! parser reads goes through these functions, in addition to the escaping of
//! its own syntax (markdown, HTML, DOT, Mermaid).

use std::borrow::Cow;

/// Width to which one line of input is clipped when shown (diagnostic
/// excerpts, messages, table cells): wide enough for any real line.
pub const CLIP_WIDTH: usize = 200;

/// Whether a character must not reach a terminal or a parser raw: C0
/// controls (tab and line feed included; callers that keep them say so),
/// DEL, C1 controls, and the invisible characters that reorder or hide text
/// (bidirectional marks, embeddings, overrides and isolates; line and
/// paragraph separators; the byte order mark).
pub fn is_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

/// The visible form of a control character: `\n`, `\r`, `\t`, `\0`, `\e`,
/// or `\u{…}`.
fn escaped(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        '\u{1b}' => out.push_str("\\e"),
        _ => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

/// `text` with every control character ([`is_control`]) written as a
/// visible escape (`\e`, `\0`, `\u{202e}`), line breaks included: for text
/// shown on one line.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape_except(text, |_| false)
}

/// As [`escape_controls`], but line feeds are kept (and a carriage return
/// just before one is dropped): for cells and paragraphs that may span
/// lines.
pub fn escape_controls_multiline(text: &str) -> Cow<'_, str> {
    let text: Cow<'_, str> = if text.contains("\r\n") {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    match escape_except(&text, |c| c == '\n') {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => Cow::Owned(escaped),
    }
}

fn escape_except(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_control(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) && !keep(c) {
            escaped(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `width` characters, the cut marked with `…`.
pub fn clip(text: &str, width: usize) -> Cow<'_, str> {
    match text.char_indices().nth(width) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = width.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &text[..end]))
        }
    }
}

/// Text from input for one line of a terminal or a log: control characters
/// escaped, then clipped to [`CLIP_WIDTH`].
pub fn for_line(text: &str) -> Cow<'_, str> {
    // Clip first (bounded work on a megabyte line), then escape, then clip
    // again: escapes lengthen the text.
    let clipped = clip(text, CLIP_WIDTH);
    match escape_controls(&clipped) {
        Cow::Borrowed(_) => clipped,
        Cow::Owned(escaped) => Cow::Owned(clip(&escaped, CLIP_WIDTH).into_owned()),
    }
}

/// A message or a table cell of several lines, possibly quoting input:
/// every line clipped, control characters escaped, line breaks kept.
pub fn for_message(text: &str) -> String {
    text.split('\n')
        .map(|line| for_line(line.strip_suffix('\r').unwrap_or(line)).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible() {
        assert_eq!(escape_controls("a\u{1b}]0;x\u{7}b"), "a\\e]0;x\\u{7}b");
        assert_eq!(escape_controls("nul\0 cr\r lf\n"), "nul\\0 cr\\r lf\\n");
        assert_eq!(escape_controls("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert_eq!(escape_controls("c1\u{9b}2J"), "c1\\u{9b}2J");
        assert!(matches!(escape_controls("plain ü"), Cow::Borrowed(_)));
        assert_eq!(escape_controls_multiline("a\r\nb\u{1b}"), "a\nb\\e");
    }

    #[test]
    fn long_text_is_clipped_with_an_ellipsis() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcd", 4), "abcd");
        assert_eq!(clip("ééééé", 3), "éé…");
        let line = "x".repeat(1_000_000);
        assert_eq!(for_line(&line).chars().count(), CLIP_WIDTH);
        let escapes = "\u{1b}".repeat(1_000);
        assert_eq!(for_line(&escapes).chars().count(), CLIP_WIDTH);
        assert_eq!(for_message("a\u{1b}\nb"), "a\\e\nb");
    }
}
