//! The part of a source file a diagnostic shows, made safe to print: only
//! the lines around its labels, each clipped to [`CLIP_WIDTH`] characters
//! around the label, with control characters escaped.
//!
//! miette quotes whatever source it is given, and would print a megabyte
//! line or an escape sequence as it is. [`Excerpt`] is the source miette
//! reads instead: the shown lines one after the other, in a coordinate space
//! of their own, reporting the true line numbers and label columns.

use std::collections::{BTreeSet, HashMap};

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::diag::{SourceFile, Span};
use crate::text::{is_control, CLIP_WIDTH};

/// A label spanning more lines than this is shown as its first line only.
const MAX_LABEL_LINES: usize = 12;

/// Byte offsets of the starts of every line of a text (the empty "line"
/// after a final line feed is none).
pub(crate) fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&start| start == 0 || start < text.len())
        .collect()
}

/// One line of the source that the excerpt shows.
#[derive(Debug)]
struct Shown {
    /// 0-based line number in the source.
    number: usize,
    /// Where the line starts in the excerpt's text.
    start: usize,
    /// Its length in the excerpt's text, line feed included.
    len: usize,
}

/// The lines a diagnostic shows (see the module documentation).
#[derive(Debug)]
pub(crate) struct Excerpt {
    name: String,
    text: String,
    lines: Vec<Shown>,
    /// Excerpt offset of each label start → its 0-based line and column in the source.
    positions: HashMap<usize, (usize, usize)>,
}

impl Excerpt {
    /// The excerpt showing `spans` (with one line of context around each),
    /// and the spans mapped into it.
    pub(crate) fn new(source: &SourceFile, starts: &[usize], spans: &[Span]) -> (Self, Vec<Span>) {
        let text = &source.text;
        let line_of = |offset: usize| starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let last_line = starts.len().saturating_sub(1);
        // Each span's first and last line; long spans shrink to their first line.
        let ranges: Vec<(usize, usize, usize, usize)> = spans
            .iter()
            .map(|span| {
                let start = span.offset.min(text.len());
                let mut end = (span.offset + span.len).min(text.len()).max(start);
                let first = line_of(start);
                let mut last = line_of(end.saturating_sub(1).max(start));
                if last - first >= MAX_LABEL_LINES {
                    last = first;
                    end = line_end(text, starts, first);
                }
                (start, end, first, last)
            })
            .collect();
        let mut numbers = BTreeSet::new();
        for &(_, _, first, last) in &ranges {
            numbers.extend(first.saturating_sub(1)..=(last + 1).min(last_line));
        }
        let mut excerpt = Excerpt {
            name: source.name.clone(),
            text: String::new(),
            lines: Vec::new(),
            positions: HashMap::new(),
        };
        // Excerpt offset of every span boundary, found while lines are copied.
        let mut mapped: HashMap<usize, usize> = HashMap::new();
        for number in numbers {
            let begin = starts[number];
            let end = line_end(text, starts, number);
            let points: Vec<usize> = ranges
                .iter()
                .flat_map(|&(s, e, _, _)| [s, e])
                .filter(|&p| p >= begin && p <= end)
                .collect();
            let anchor = ranges
                .iter()
                .map(|&(s, ..)| s)
                .find(|&s| s >= begin && s <= end);
            let start = excerpt.text.len();
            let shown = show_line(&text[begin..end], begin, anchor, &points, start);
            for (point, at) in shown.points {
                mapped.entry(point).or_insert(at);
            }
            excerpt.text.push_str(&shown.text);
            excerpt.text.push('\n');
            excerpt.lines.push(Shown {
                number,
                start,
                len: shown.text.len() + 1,
            });
        }
        let spans = ranges
            .iter()
            .map(|&(s, e, first, _)| {
                let at = mapped.get(&s).copied().unwrap_or_default();
                let to = mapped.get(&e).copied().unwrap_or(at).max(at);
                let column = text[starts[first]..s].chars().count();
                excerpt.positions.insert(at, (first, column));
                Span::new(at, to - at)
            })
            .collect();
        (excerpt, spans)
    }

    /// The index in `lines` of the shown line holding an excerpt offset.
    fn line_at(&self, offset: usize) -> usize {
        self.lines
            .partition_point(|l| l.start <= offset)
            .saturating_sub(1)
    }
}

/// Where line `number` ends (before its line feed and any carriage return).
fn line_end(text: &str, starts: &[usize], number: usize) -> usize {
    let end = starts.get(number + 1).map_or_else(
        || text.len() - usize::from(text.ends_with('\n')),
        |next| next - 1,
    );
    if end > starts[number] && text.as_bytes()[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

struct ShownLine {
    text: String,
    /// Source offset → excerpt offset, for the requested points.
    points: Vec<(usize, usize)>,
}

/// A line as shown: escaped, and clipped to a window around `anchor` when
/// too long. `points` (source offsets in this line) are mapped to excerpt
/// offsets (`base` is where the line starts in the excerpt).
fn show_line(
    line: &str,
    begin: usize,
    anchor: Option<usize>,
    points: &[usize],
    base: usize,
) -> ShownLine {
    let chars = line.chars().count();
    let (from, to) = if chars <= CLIP_WIDTH {
        (0, chars)
    } else {
        let at = anchor.map_or(0, |a| line[..a - begin].chars().count());
        let from = at.saturating_sub(CLIP_WIDTH / 4).min(chars - CLIP_WIDTH);
        (from, from + CLIP_WIDTH)
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut mapped = Vec::new();
    let mut map = |offset: usize, out: &String| {
        for &p in points {
            if p == begin + offset {
                mapped.push((p, base + out.len()));
            }
        }
    };
    for (index, (offset, c)) in line.char_indices().enumerate() {
        if index < from {
            if points.contains(&(begin + offset)) {
                map(offset, &out);
            }
            continue;
        }
        if index >= to {
            break;
        }
        map(offset, &out);
        if is_control(c) && c != '\t' {
            out.push_str(&crate::text::escape_controls(c.encode_utf8(&mut [0; 4])));
        } else {
            out.push(c);
        }
    }
    // Points at or past the window's end map to its end.
    for &p in points {
        if !mapped.iter().any(|(q, _)| *q == p) {
            mapped.push((p, base + out.len()));
        }
    }
    if to < chars {
        out.push('…');
    }
    ShownLine {
        text: out,
        points: mapped,
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        if self.lines.is_empty() {
            return Err(MietteError::OutOfBounds);
        }
        let mut first = self.line_at(span.offset());
        let mut last = self.line_at(
            (span.offset() + span.len())
                .saturating_sub(1)
                .max(span.offset()),
        );
        // Context only from consecutive source lines: a gap is never bridged.
        for _ in 0..context_lines_before {
            if first > 0 && self.lines[first - 1].number + 1 == self.lines[first].number {
                first -= 1;
            }
        }
        for _ in 0..context_lines_after {
            if last + 1 < self.lines.len()
                && self.lines[last].number + 1 == self.lines[last + 1].number
            {
                last += 1;
            }
        }
        let start = self.lines[first].start;
        let end = self.lines[last].start + self.lines[last].len;
        let (line, column) = match self.positions.get(&span.offset()) {
            Some(&(line, column)) if context_lines_before == 0 => (line, column),
            _ => (self.lines[first].number, 0),
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[start..end],
            SourceSpan::new(start.into(), end - start),
            line,
            column,
            last - first + 1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_clipped_around_the_label() {
        let long = format!("key: {}TARGET{}\n", "a".repeat(5000), "b".repeat(5000));
        let text = format!("first: 1\n{long}last: 2\n");
        let source = SourceFile::new("x.yaml", text.clone());
        let offset = text.find("TARGET").expect("target");
        let (excerpt, spans) = Excerpt::new(&source, &line_starts(&text), &[Span::new(offset, 6)]);
        assert!(
            excerpt.text.len() < 3 * CLIP_WIDTH,
            "{}",
            excerpt.text.len()
        );
        let s = spans[0];
        assert_eq!(&excerpt.text[s.offset..s.offset + s.len], "TARGET");
        assert!(excerpt.text.contains("first: 1\n…a") && excerpt.text.contains("b…\nlast: 2"));
        assert_eq!(excerpt.positions[&s.offset], (1, 5005));
    }

    #[test]
    fn controls_are_escaped_and_labels_follow() {
        let text = "name: \u{1b}]0;x\u{7} id: bad\r\n";
        let source = SourceFile::new("x.yaml", text);
        let offset = text.find("bad").expect("bad");
        let (excerpt, spans) = Excerpt::new(&source, &line_starts(text), &[Span::new(offset, 3)]);
        assert_eq!(excerpt.text, "name: \\e]0;x\\u{7} id: bad\n");
        assert_eq!(&excerpt.text[spans[0].offset..][..3], "bad");
    }
}
