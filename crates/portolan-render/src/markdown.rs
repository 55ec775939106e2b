//! Markdown helpers shared by the matrix page and the tables page.

/// Escapes text for inline markdown, table cells included. Every character
/// that could start emphasis, a link, HTML, inline math (GitHub's `$`),
/// strikethrough or end a table cell gets a CommonMark backslash escape;
/// line breaks become spaces because a cell is one line.
pub fn escape(text: &str) -> String {
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
/// spans, links), so it is kept as written; only what would break the line
/// structure changes: an unescaped `|` (which would end a table cell, even
/// inside a code span) gets a backslash, and line breaks become spaces.
pub(crate) fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '|' if !escaped => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
        escaped = c == '\\' && !escaped;
    }
    out
}

/// Text inside a code span: backticks in the text get a longer fence.
pub(crate) fn code(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
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
    fn padded_table() {
        let t = table(&["Name", "Port"], &[vec!["HTTP".into(), "1983".into()]]);
        assert_eq!(t, "| Name | Port |\n| ---- | ---- |\n| HTTP | 1983 |\n");
    }
}
