//! A tolerant, line-based reader of markdown blocks: headings, tables,
//! list items, footnote definitions and paragraphs, each with its line.
//!
//! Strict GFM drops a table whose delimiter row has fewer cells than its
//! header (as on the Circonus page: 16 header cells, 14 delimiters); this
//! reader keeps it, takes the header's width, and lets the caller warn.

/// A table: header, rows, and what was odd about its shape.
#[derive(Debug, Clone)]
pub struct Table {
    /// Line of the header row (1-based).
    pub line: usize,
    /// Header cells, raw markdown.
    pub header: Vec<String>,
    /// Cells in the delimiter row (0 when there was none).
    pub delimiter_cells: usize,
    /// Body rows, raw markdown cells.
    pub rows: Vec<Row>,
}

/// One body row of a table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Line (1-based).
    pub line: usize,
    /// Raw markdown cells.
    pub cells: Vec<String>,
    /// The raw line, for the report.
    pub raw: String,
}

impl Row {
    /// Whether every cell is empty (a blank separator row).
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|c| {
            let t = c.trim();
            t.is_empty() || t.chars().all(|c| c == '-' || c == ':' || c == ' ')
        })
    }
}

/// One list item with its continuation lines.
#[derive(Debug, Clone)]
pub struct Item {
    /// Line of the marker (1-based).
    pub line: usize,
    /// Columns before the marker.
    pub indent: usize,
    /// Raw markdown text after the marker, continuation lines joined by spaces.
    pub text: String,
}

/// A block of the page.
#[derive(Debug, Clone)]
pub enum Block {
    /// `#`-style or underlined heading.
    Heading {
        /// Line (1-based).
        line: usize,
        /// 1 to 6.
        level: usize,
        /// Raw markdown text, `{#anchor}` removed.
        text: String,
    },
    /// A table.
    Table(Table),
    /// Consecutive list items (nested ones included, with their indent).
    List(Vec<Item>),
    /// A footnote definition: `† text`, `\* text`, `[^1]: text`.
    Footnote {
        /// Line (1-based).
        line: usize,
        /// The mark (`†`, `*`, `1`).
        mark: String,
        /// Raw markdown text.
        text: String,
    },
    /// Lines of running text.
    Paragraph {
        /// First line (1-based).
        line: usize,
        /// Raw markdown, lines joined by `\n`.
        text: String,
    },
}

/// Splits a table line into raw cells at unescaped pipes; outer pipes are optional.
pub fn split_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut current = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push(c);
                if let Some(&next) = chars.peek() {
                    current.push(next);
                    chars.next();
                }
            }
            '|' => cells.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    cells.push(current);
    let trimmed = line.trim();
    if trimmed.starts_with('|') && !cells.is_empty() {
        cells.remove(0);
    }
    if trimmed.ends_with('|') && !trimmed.ends_with("\\|") && trimmed.len() > 1 {
        cells.pop();
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// Whether a line has a pipe that is not escaped.
pub fn has_pipe(line: &str) -> bool {
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

/// Whether a line is a table delimiter row (`|---|:--:|`, `--- | ---`).
pub fn is_delimiter(line: &str) -> bool {
    let t = line.trim();
    if !t.contains('-') || !(has_pipe(t) || t.chars().all(|c| c == '-' || c == ':' || c == ' ')) {
        return false;
    }
    if !has_pipe(t) {
        // A line of dashes alone is a thematic break or setext underline, not a delimiter.
        return false;
    }
    let cells = split_cells(t);
    !cells.is_empty()
        && cells.iter().all(|c| {
            let c = c.trim();
            !c.is_empty()
                && c.contains('-')
                && c.trim_start_matches(':')
                    .trim_end_matches(':')
                    .chars()
                    .all(|c| c == '-')
        })
}

fn indent_of(line: &str) -> usize {
    let mut n = 0;
    for c in line.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n += 4 - n % 4,
            _ => break,
        }
    }
    n
}

/// A list marker at the start of the line: (indent, ordered, text after the marker).
fn list_item(line: &str) -> Option<(usize, bool, &str)> {
    let indent = indent_of(line);
    let t = line.trim_start();
    let (ordered, rest) = if let Some(rest) = t
        .strip_prefix("- ")
        .or_else(|| t.strip_prefix("* "))
        .or_else(|| t.strip_prefix("+ "))
        .or_else(|| t.strip_prefix("• "))
    {
        (false, rest)
    } else if matches!(t, "-" | "*" | "+") {
        (false, "")
    } else {
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let rest = &t[digits..];
        let rest = rest
            .strip_prefix(". ")
            .or_else(|| rest.strip_prefix(") "))?;
        (true, rest)
    };
    if is_thematic_break(line) {
        return None;
    }
    Some((indent, ordered, rest.trim()))
}

fn is_thematic_break(line: &str) -> bool {
    let t: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    t.len() >= 3
        && (t.chars().all(|c| c == '-')
            || t.chars().all(|c| c == '*')
            || t.chars().all(|c| c == '_'))
}

fn heading(line: &str) -> Option<(usize, String)> {
    if indent_of(line) > 3 {
        return None;
    }
    let t = line.trim_start();
    let level = t.chars().take_while(|&c| c == '#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut text = rest.trim().trim_end_matches('#').trim_end().to_owned();
    if text.ends_with('}') {
        if let Some(open) = text.rfind("{#") {
            text.truncate(open);
        }
    }
    Some((level, text.trim().to_owned()))
}

fn footnote(line: &str) -> Option<(String, String)> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix("[^") {
        let end = rest.find("]:")?;
        return Some((rest[..end].to_owned(), rest[end + 2..].trim().to_owned()));
    }
    if let Some(rest) = t.strip_prefix("\\*") {
        let extra = rest.chars().take_while(|&c| c == '*').count();
        let rest = rest[extra..].trim_start_matches("\\*");
        return Some(("*".to_owned(), rest.trim().to_owned()));
    }
    let mut chars = t.chars();
    let first = chars.next()?;
    if matches!(first, '†' | '‡' | '§' | '¶' | '¹' | '²' | '³' | '⁴' | '⁵') {
        return Some((first.to_string(), chars.as_str().trim().to_owned()));
    }
    // `*Only required when ...*` would be emphasis; `*Note:` alone is not a
    // footnote either. A star followed by text and no closing star is.
    if first == '*' {
        let rest = chars.as_str();
        if !rest.starts_with(['*', ' ']) && !rest.contains('*') && !rest.is_empty() {
            return Some(("*".to_owned(), rest.trim().to_owned()));
        }
    }
    None
}

/// Reads the page into blocks.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut reader = BlockReader {
        lines: text.lines().collect(),
        out: Vec::new(),
        paragraph: None,
    };
    let mut i = front_matter_end(&reader.lines);
    while i < reader.lines.len() {
        i = reader.step(i);
    }
    reader.flush();
    reader.out
}

/// The first line after the page's front matter (0 without one).
fn front_matter_end(lines: &[&str]) -> usize {
    if lines.first().is_some_and(|l| l.trim() == "---") {
        if let Some(end) = lines
            .iter()
            .skip(1)
            .position(|l| l.trim() == "---" || l.trim() == "...")
        {
            return end + 2;
        }
    }
    0
}

/// What [`blocks`] reads: the lines, the blocks so far, and the
/// paragraph being read (its first line and lines).
struct BlockReader<'t> {
    lines: Vec<&'t str>,
    out: Vec<Block>,
    paragraph: Option<(usize, Vec<&'t str>)>,
}

impl BlockReader<'_> {
    /// Ends the paragraph being read, if any.
    fn flush(&mut self) {
        if let Some((line, text)) = self.paragraph.take() {
            self.out.push(Block::Paragraph {
                line,
                text: text.join("\n"),
            });
        }
    }

    /// Reads what starts at line `i`; returns the next line to read.
    fn step(&mut self, i: usize) -> usize {
        let line = self.lines[i];
        let t = line.trim();
        // Fenced code and comments: not part of the page's structure.
        if t.starts_with("```") || t.starts_with("~~~") {
            self.flush();
            let fence: String = t.chars().take_while(|&c| c == '`' || c == '~').collect();
            let rest = self.lines[i + 1..].iter();
            return i
                + 1
                + rest
                    .take_while(|l| !l.trim().starts_with(fence.as_str()))
                    .count()
                + 1;
        }
        if t.starts_with("<!--") {
            self.flush();
            return i
                + self.lines[i..]
                    .iter()
                    .take_while(|l| !l.contains("-->"))
                    .count()
                + 1;
        }
        if t.is_empty() {
            self.flush();
            return i + 1;
        }
        if let Some((level, text)) = heading(line) {
            self.flush();
            let line = i + 1;
            self.out.push(Block::Heading { line, level, text });
            return i + 1;
        }
        if self.paragraph.is_some() && is_setext_underline(t) {
            self.setext_heading(i, t);
            return i + 1;
        }
        if let Some(next) = self.table_at(i, t) {
            return next;
        }
        if let Some((mark, text)) = footnote(line) {
            self.flush();
            let line = i + 1;
            self.out.push(Block::Footnote { line, mark, text });
            return i + 1;
        }
        if list_item(line).is_some() {
            self.flush();
            let (items, next) = read_list(&self.lines, i);
            self.out.push(Block::List(items));
            return next;
        }
        if is_thematic_break(t) {
            self.flush();
            return i + 1;
        }
        match &mut self.paragraph {
            Some((_, text)) => text.push(line),
            None => self.paragraph = Some((i + 1, vec![line])),
        }
        i + 1
    }

    /// The paragraph's last line, underlined at line `i` (`===` or
    /// `---`): a heading; the lines before it stay a paragraph.
    fn setext_heading(&mut self, i: usize, underline: &str) {
        let Some((first, mut text)) = self.paragraph.take() else {
            return;
        };
        let last = text.pop().unwrap_or_default();
        if !text.is_empty() {
            self.out.push(Block::Paragraph {
                line: first,
                text: text.join("\n"),
            });
        }
        self.out.push(Block::Heading {
            line: i,
            level: if underline.starts_with('=') { 1 } else { 2 },
            text: last.trim().to_owned(),
        });
    }

    /// A table at line `i`: with a delimiter row, or two pipe rows
    /// without one outside a paragraph. Returns the line after it.
    fn table_at(&mut self, i: usize, t: &str) -> Option<usize> {
        let next_line = self.lines.get(i + 1).copied();
        let has_delimiter = if has_pipe(t) && next_line.is_some_and(is_delimiter) {
            self.flush();
            true
        } else if is_pipe_row(t)
            && self.paragraph.is_none()
            && next_line.is_some_and(|l| is_pipe_row(l.trim()))
        {
            false
        } else {
            return None;
        };
        let (table, next) = read_table(&self.lines, i, has_delimiter);
        self.out.push(Block::Table(table));
        Some(next)
    }
}

/// A setext underline: `==` or `--` and longer, without a pipe.
fn is_setext_underline(t: &str) -> bool {
    !has_pipe(t) && t.len() >= 2 && (t.chars().all(|c| c == '=') || t.chars().all(|c| c == '-'))
}

/// A line that is a table row with outer pipes (`| a | b |`).
fn is_pipe_row(t: &str) -> bool {
    t.starts_with('|') && t.ends_with('|') && t.len() > 2
}

fn read_table(lines: &[&str], start: usize, has_delimiter: bool) -> (Table, usize) {
    let header = split_cells(lines[start]);
    let (delimiter_cells, mut i) = if has_delimiter {
        (split_cells(lines[start + 1]).len(), start + 2)
    } else {
        (0, start + 1)
    };
    let width = header.len();
    let mut rows = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            // A blank line ends the table, unless more rows of the same
            // width follow that do not start a new table.
            let next = (i..lines.len().min(i + 2)).find(|&k| !lines[k].trim().is_empty());
            let continues = next.is_some_and(|k| {
                let l = lines[k];
                has_pipe(l)
                    && heading(l).is_none()
                    && list_item(l).is_none()
                    && split_cells(l).len() == width
                    && !lines.get(k + 1).is_some_and(|n| is_delimiter(n))
                    && k - i <= 1
            });
            if continues {
                i += 1;
                continue;
            }
            break;
        }
        if !has_pipe(line) || heading(line).is_some() {
            break;
        }
        if is_delimiter(line) && rows.is_empty() && !has_delimiter {
            i += 1;
            continue;
        }
        rows.push(Row {
            line: i + 1,
            cells: split_cells(line),
            raw: line.trim().to_owned(),
        });
        i += 1;
    }
    (
        Table {
            line: start + 1,
            header,
            delimiter_cells,
            rows,
        },
        i,
    )
}

fn read_list(lines: &[&str], start: usize) -> (Vec<Item>, usize) {
    let mut items: Vec<Item> = Vec::new();
    let mut i = start;
    while i < lines.len() {
        let line = lines[i];
        if let Some((indent, _, text)) = list_item(line) {
            items.push(Item {
                line: i + 1,
                indent,
                text: text.to_owned(),
            });
            i += 1;
            continue;
        }
        let t = line.trim();
        if t.is_empty() {
            // The list goes on after blank lines if an item or an indented
            // continuation follows.
            let next = (i..lines.len().min(i + 3)).find(|&k| !lines[k].trim().is_empty());
            match next {
                Some(k) if list_item(lines[k]).is_some() && k - i <= 2 => {
                    i = k;
                    continue;
                }
                Some(k)
                    if indent_of(lines[k]) >= 2
                        && k - i <= 1
                        && !has_pipe(lines[k])
                        && items.last().is_some() =>
                {
                    i = k;
                    continue;
                }
                _ => break,
            }
        }
        let starts_block = heading(line).is_some()
            || (has_pipe(t) && lines.get(i + 1).is_some_and(|l| is_delimiter(l)))
            || t.starts_with("```")
            || t.starts_with("~~~")
            || footnote(line).is_some();
        if starts_block {
            break;
        }
        // Continuation of the last item (indented or lazy).
        match items.last_mut() {
            Some(item) => {
                if !item.text.is_empty() {
                    item.text.push(' ');
                }
                item.text.push_str(t);
            }
            None => break,
        }
        i += 1;
    }
    (items, i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(split_cells("| a | b |"), ["a", "b"]);
        assert_eq!(split_cells("a | b"), ["a", "b"]);
        assert_eq!(split_cells(r"| a \| b | c |"), [r"a \| b", "c"]);
        assert_eq!(split_cells("| | x | |"), ["", "x", ""]);
        assert!(is_delimiter("|---|:--:|"));
        assert!(is_delimiter("--- | ---"));
        assert!(!is_delimiter("---"));
        assert!(!is_delimiter("| a | --- |"));
    }

    #[test]
    fn mismatched_delimiter_keeps_the_table() {
        let page = "| a | b | c |\n|---|---|\n| 1 | 2 | 3 |\n";
        let b = blocks(page);
        let Block::Table(t) = &b[0] else {
            panic!("{b:?}")
        };
        assert_eq!(t.header.len(), 3);
        assert_eq!(t.delimiter_cells, 2);
        assert_eq!(t.rows[0].cells, ["1", "2", "3"]);
        assert_eq!(t.rows[0].line, 3);
    }

    #[test]
    fn front_matter_headings_lists_footnotes() {
        let page = "---\ndescription: x\n---\n\n# Title {#t}\n\nWeb frontend:\n\n* slack.com - x\n   * github.com - y\n* z\n  continued\n\n† note\n";
        let b = blocks(page);
        assert!(matches!(&b[0], Block::Heading { line: 5, level: 1, text } if text == "Title"));
        assert!(matches!(&b[1], Block::Paragraph { line: 7, .. }));
        let Block::List(items) = &b[2] else {
            panic!("{b:?}")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].indent, 3);
        assert_eq!(items[2].text, "z continued");
        assert!(matches!(&b[3], Block::Footnote { line: 14, mark, .. } if mark == "†"));
    }

    #[test]
    fn blank_separated_rows_continue() {
        let page = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n\nafter\n";
        let b = blocks(page);
        let Block::Table(t) = &b[0] else {
            panic!("{b:?}")
        };
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].line, 5);
    }
}
