//! Markdown helpers shared by the matrix page and the tables page.

use portolan_spec::text::escape_controls_multiline;

/// Escapes text for inline markdown, table cells included. Every character
/// that could start emphasis, a link, HTML, inline math (GitHub's `$`),
/// strikethrough or end a table cell gets a CommonMark backslash escape;
/// line breaks become spaces because a cell is one line.
pub fn escape(text: &str) -> String {
    let text = escape_controls_multiline(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '$' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Free text (a purpose, a description) for a table cell or a paragraph.
/// It is markdown already, as on the vendor pages it is copied from (code
/// spans, links), so it is kept as written, except what would break the
/// line structure or the page: an unescaped `|` (which would end a table
/// cell, even inside a code span) gets a backslash, line breaks become
/// spaces, control characters are shown escaped, and a `<` outside code
/// spans gets a backslash, so that no HTML (`<script>`, `<img onerror>`,
/// comments) comes from the spec.
pub(crate) fn text(text: &str) -> String {
    let chars: Vec<char> = escape_controls_multiline(text).chars().collect();
    let mut out = String::with_capacity(chars.len());
    let mut escaped = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' && !escaped {
            let run = chars[i..].iter().take_while(|&&b| b == '`').count();
            let span_end = closing_run(&chars, i + run, run).map_or(i + run, |close| close + run);
            // A code span is literal: only `|` and line breaks change.
            let mut previous = '`';
            for &k in &chars[i..span_end] {
                match k {
                    '|' if previous != '\\' => out.push_str("\\|"),
                    '\n' => out.push(' '),
                    _ => out.push(k),
                }
                previous = k;
            }
            i = span_end;
            continue;
        }
        match c {
            '|' | '<' if !escaped => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push(' '),
            _ => out.push(c),
        }
        escaped = c == '\\' && !escaped;
        i += 1;
    }
    out
}

/// Where the run of exactly `run` backticks closing a code span opened
/// before `from` starts, if any.
fn closing_run(chars: &[char], from: usize, run: usize) -> Option<usize> {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == '`' {
            let len = chars[i..].iter().take_while(|&&b| b == '`').count();
            if len == run {
                return Some(i);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    None
}

/// Text inside a code span: backticks in the text get a longer fence.
pub(crate) fn code(text: &str) -> String {
    let text = escape_controls_multiline(text).replace('\n', " ");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    if longest == 0 {
        return format!("`{text}`");
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {text} {fence}")
}

/// A table with columns padded to equal width, as hand-written vendor pages
/// are; the cells must already be escaped.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count().max(3)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| -> String {
        let mut out = String::from("|");
        for (cell, width) in cells.zip(&widths) {
            let pad = width - cell.chars().count().min(*width);
            out.push(' ');
            out.push_str(&cell);
            out.push_str(&" ".repeat(pad));
            out.push_str(" |");
        }
        out.push('\n');
        out
    };
    let mut out = line(&mut header.iter().map(|h| (*h).to_owned()));
    out.push_str(&line(&mut widths.iter().map(|w| "-".repeat(*w))));
    for row in rows {
        out.push_str(&line(&mut row.iter().cloned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape("*:*:*:*"), r"\*:\*:\*:\*");
        assert_eq!(escape("T::$pg"), r"T::\$pg");
        assert_eq!(escape("a|b\nc"), r"a\|b c");
        assert_eq!(escape("Long-tail Store"), "Long-tail Store");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(
            text("By default `5432`. See [SQS](./q.md#sqs) or `a|b`."),
            r"By default `5432`. See [SQS](./q.md#sqs) or `a\|b`."
        );
        assert_eq!(text(r"a \| b | c\\|d"), r"a \| b \| c\\\|d");
        assert_eq!(text("two\nlines"), "two lines");
        assert_eq!(code("slack.com:443"), "`slack.com:443`");
    }

    #[test]
    fn no_html_and_no_control_characters_come_from_the_spec() {
        assert_eq!(
            text("<script>alert(1)</script> a < b"),
            r"\<script>alert(1)\</script> a \< b"
        );
        assert_eq!(
            text("keep `<b>` and ``a ` <i>``"),
            "keep `<b>` and ``a ` <i>``"
        );
        assert_eq!(
            text("open ` <img src=x onerror=y>"),
            r"open ` \<img src=x onerror=y>"
        );
        assert_eq!(text(r"already \<b>"), r"already \<b>");
        assert_eq!(text("a\u{1b}[2J\0b"), r"a\e[2J\0b");
        assert_eq!(escape("x\u{1b}]0;t\u{7}"), r"x\\e\]0;t\\u{7}");
        assert_eq!(code("a\0b"), r"`a\0b`");
    }

    #[test]
    fn padded_table() {
        let t = table(&["Name", "Port"], &[vec!["HTTP".into(), "1983".into()]]);
        assert_eq!(t, "| Name | Port |\n| ---- | ---- |\n| HTTP | 1983 |\n");
    }
}
