//! Inline markdown to plain text: escapes, code spans, links, emphasis,
//! HTML tags and entities, footnote marks.
//!
//! Vendor pages are written for a renderer, not for a parser: a cell may hold
//! `[API](/Components.md#API)`, `\*:\*:\*:\*`, `<ul><li>80</li></ul>`,
//! `6443*` or `&rarr;`. [`inline`] turns such text into what a reader sees,
//! and keeps the link targets and footnote marks, which carry meaning.

/// Inline markdown read into plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inline {
    /// What a reader sees; `<br>`, `<li>` and `<p>` become `\n`.
    pub text: String,
    /// Links in order: (text, target).
    pub links: Vec<(String, String)>,
    /// Footnote marks found (`*`, `†`, `1` from `[^1]` or `<sup>1</sup>`).
    pub footnotes: Vec<String>,
    /// Contents of code spans, in order.
    pub code: Vec<String>,
}

impl Inline {
    /// The non-empty lines of the text (the items of an HTML list or `<br>`-separated cell).
    pub fn items(&self) -> Vec<&str> {
        self.text
            .split('\n')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The text on one line.
    pub fn flat(&self) -> String {
        self.items().join(" ")
    }
}

/// One character of the text and whether markup may act on it.
#[derive(Debug, Clone, Copy)]
struct Piece {
    c: char,
    /// Escaped, inside a code span or from an entity: never markup.
    literal: bool,
}

const FOOTNOTE_MARKS: &[char] = &[
    '†', '‡', '§', '¶', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹',
];

/// Reads inline markdown.
pub fn inline(raw: &str) -> Inline {
    let mut out = Inline::default();
    let pieces = scan(raw, &mut out);
    let pieces = emphasis(pieces, &mut out.footnotes);
    let mut text = String::new();
    for p in pieces {
        text.push(p.c);
    }
    out.text = text
        .split('\n')
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_matches('\n')
        .to_owned();
    out
}

/// Plain text of inline markdown on one line.
pub fn plain(raw: &str) -> String {
    inline(raw).flat()
}

fn push_str(pieces: &mut Vec<Piece>, s: &str, literal: bool) {
    pieces.extend(s.chars().map(|c| Piece { c, literal }));
}

fn scan(raw: &str, out: &mut Inline) -> Vec<Piece> {
    let mut scanner = Scanner::new(raw, out);
    let mut i = 0;
    while i < scanner.chars.len() {
        i = scanner.step(i);
    }
    scanner.pieces
}

/// What [`scan`] reads: the characters, where the next `]` and `>` are,
/// the pieces so far, and the links, marks and code it found.
struct Scanner<'o> {
    chars: Vec<char>,
    /// Where the next `]` and `>` are: a bracket or angle bracket with
    /// none near is text, found without scanning (keeps hostile input
    /// linear).
    next_close: Vec<usize>,
    next_gt: Vec<usize>,
    pieces: Vec<Piece>,
    out: &'o mut Inline,
}

impl<'o> Scanner<'o> {
    fn new(raw: &str, out: &'o mut Inline) -> Self {
        let chars: Vec<char> = raw.chars().collect();
        let mut next_close = vec![usize::MAX; chars.len() + 1];
        let mut next_gt = vec![usize::MAX; chars.len() + 1];
        for k in (0..chars.len()).rev() {
            next_close[k] = if chars[k] == ']' {
                k
            } else {
                next_close[k + 1]
            };
            next_gt[k] = if chars[k] == '>' { k } else { next_gt[k + 1] };
        }
        let pieces = Vec::with_capacity(chars.len());
        Self {
            chars,
            next_close,
            next_gt,
            pieces,
            out,
        }
    }

    fn push(&mut self, c: char, literal: bool) {
        self.pieces.push(Piece { c, literal });
    }

    /// Reads what starts at `i`; returns where the next thing starts.
    fn step(&mut self, i: usize) -> usize {
        let c = self.chars[i];
        match c {
            '\\' if self
                .chars
                .get(i + 1)
                .is_some_and(char::is_ascii_punctuation) =>
            {
                self.push(self.chars[i + 1], true);
                i + 2
            }
            '`' => self.code_span(i),
            '!' if self.chars.get(i + 1) == Some(&'[') => self.link(i, i + 1, false),
            '[' => match self.footnote_reference(i) {
                Some(next) => next,
                None => self.link(i, i, true),
            },
            '<' => self.html(i),
            '&' => match entity_at(&self.chars, i) {
                Some((decoded, next)) => {
                    self.push(decoded, true);
                    next
                }
                None => {
                    self.push(c, true);
                    i + 1
                }
            },
            c if FOOTNOTE_MARKS.contains(&c) => {
                self.out.footnotes.push(c.to_string());
                i + 1
            }
            '\t' | '\r' => {
                self.push(' ', true);
                i + 1
            }
            _ => {
                self.push(c, false);
                i + 1
            }
        }
    }

    /// A code span at `i` (literal, its content kept), or the backticks
    /// as text when it is not closed.
    fn code_span(&mut self, i: usize) -> usize {
        let run = self.chars[i..].iter().take_while(|&&c| c == '`').count();
        let Some(end) = find_closing_backticks(&self.chars, i + run, run) else {
            for _ in 0..run {
                self.push('`', true);
            }
            return i + run;
        };
        let content: String = self.chars[i + run..end].iter().collect();
        let content = content.replace('\n', " ");
        let content = if content.len() > 2
            && content.starts_with(' ')
            && content.ends_with(' ')
            && !content.trim().is_empty()
        {
            content[1..content.len() - 1].to_owned()
        } else {
            content
        };
        push_str(&mut self.pieces, &content, true);
        self.out.code.push(content);
        end + run
    }

    /// A footnote reference `[^mark]` at `i`: where it ends.
    fn footnote_reference(&mut self, i: usize) -> Option<usize> {
        if self.chars.get(i + 1) != Some(&'^') {
            return None;
        }
        let end = self.chars[i..].iter().position(|&c| c == ']')?;
        let mark: String = self.chars[i + 2..i + end].iter().collect();
        if mark.is_empty() || mark.contains(char::is_whitespace) {
            return None;
        }
        self.out.footnotes.push(mark);
        Some(i + end + 1)
    }

    /// A link (or, from `!`, an image) whose `[` is at `at`: its text, and
    /// the link kept (with the footnote marks of its text, for a link);
    /// else the character at `i` as text.
    fn link(&mut self, i: usize, at: usize, footnotes: bool) -> usize {
        let link = if near(&self.next_close, i, 1000) {
            link_at(&self.chars, at)
        } else {
            None
        };
        let Some((text, target, next)) = link else {
            self.push(self.chars[i], false);
            return i + 1;
        };
        let inner = inline(&text);
        push_str(&mut self.pieces, &inner.flat(), true);
        self.out.links.push((inner.flat(), target));
        if footnotes {
            self.out.footnotes.extend(inner.footnotes);
        }
        next
    }

    /// An HTML tag or autolink at `i`, or the `<` as text.
    fn html(&mut self, i: usize) -> usize {
        let html = near(&self.next_gt, i, 2000)
            .then(|| html_at(&self.chars, i))
            .flatten();
        match html {
            Some(Html::Autolink(url, next)) => {
                push_str(&mut self.pieces, &url, true);
                self.out.links.push((url.clone(), url));
                next
            }
            Some(Html::Break(next)) => {
                self.push('\n', true);
                next
            }
            Some(Html::Superscript(mark, next)) => {
                self.out.footnotes.push(mark);
                next
            }
            Some(Html::Other(next)) => {
                self.push(' ', true);
                next
            }
            None => {
                self.push('<', true);
                i + 1
            }
        }
    }
}

/// Whether the next of `next` after `i` is at most `limit` away.
fn near(next: &[usize], i: usize, limit: usize) -> bool {
    next[i].saturating_sub(i) <= limit
}

fn find_closing_backticks(chars: &[char], from: usize, run: usize) -> Option<usize> {
    let mut j = from;
    // Code spans in cells and items are short; the bound keeps many
    // unmatched backtick runs linear.
    let end = chars.len().min(from + 4000);
    while j < end {
        if chars[j] == '`' {
            let n = chars[j..].iter().take_while(|&&c| c == '`').count();
            if n == run {
                return Some(j);
            }
            j += n;
        } else {
            j += 1;
        }
    }
    None
}

/// A link `[text](target)`, `[text][ref]` or `[text]` starting at `i` (the `[`):
/// its text, target and the index after it. A bare `[text]` is not a link.
fn link_at(chars: &[char], i: usize) -> Option<(String, String, usize)> {
    let mut depth = 0usize;
    let mut j = i;
    let close = loop {
        // Links are short; bounding the search keeps a page of unmatched
        // brackets linear.
        if j - i > 1000 {
            return None;
        }
        match chars.get(j)? {
            '\\' => j += 1,
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    break j;
                }
            }
            '`' => {
                let run = chars[j..].iter().take_while(|&&c| c == '`').count();
                if let Some(end) = find_closing_backticks(chars, j + run, run) {
                    j = end + run - 1;
                }
            }
            _ => {}
        }
        j += 1;
    };
    let text: String = chars[i + 1..close].iter().collect();
    match chars.get(close + 1) {
        Some('(') => {
            let mut depth = 0usize;
            let mut k = close + 1;
            loop {
                if k - close > 2000 {
                    return None;
                }
                match chars.get(k)? {
                    '\\' => k += 1,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            let target: String = chars[close + 2..k].iter().collect();
            let target = target
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|c| c == '<' || c == '>')
                .to_owned();
            Some((text, target, k + 1))
        }
        Some('[') => {
            let end = chars[close + 1..]
                .iter()
                .take(1000)
                .position(|&c| c == ']')?;
            let reference: String = chars[close + 2..close + 1 + end].iter().collect();
            Some((text, reference, close + 2 + end))
        }
        _ => None,
    }
}

enum Html {
    Autolink(String, usize),
    Break(usize),
    Superscript(String, usize),
    Other(usize),
}

fn html_at(chars: &[char], i: usize) -> Option<Html> {
    let end = i + chars[i..].iter().take(2000).position(|&c| c == '>')?;
    let inner: String = chars[i + 1..end].iter().collect();
    if inner.starts_with("http://") || inner.starts_with("https://") || inner.starts_with("mailto:")
    {
        if inner.contains(char::is_whitespace) {
            return None;
        }
        return Some(Html::Autolink(inner, end + 1));
    }
    let body = inner.strip_prefix('/').unwrap_or(&inner);
    let name: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let rest = &body[name.len()..];
    let is_tag = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && (rest.is_empty()
            || rest.starts_with(char::is_whitespace)
            || rest.trim() == "/"
            || rest.starts_with('/'));
    if !is_tag {
        return None;
    }
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "br" | "li" | "p" | "tr" | "div" | "ul" | "ol" => Some(Html::Break(end + 1)),
        "sup" if !inner.starts_with('/') => {
            let close = find_str(chars, end + 1, "</sup>")?;
            let mark: String = chars[end + 1..close].iter().collect();
            Some(Html::Superscript(plain(&mark), close + 6))
        }
        _ => Some(Html::Other(end + 1)),
    }
}

fn find_str(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    let end = chars.len().saturating_sub(needle.len() - 1).min(from + 200);
    (from..end).find(|&k| {
        chars[k..k + needle.len()]
            .iter()
            .zip(&needle)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
    })
}

fn entity_at(chars: &[char], i: usize) -> Option<(char, usize)> {
    let end = i + chars[i..].iter().take(12).position(|&c| c == ';')?;
    let name: String = chars[i + 1..end].iter().collect();
    let decoded = if let Some(num) = name.strip_prefix('#') {
        let value = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(value)?
    } else {
        match name.as_str() {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
            "rarr" => '→',
            "larr" => '←',
            "darr" => '↓',
            "uarr" => '↑',
            "harr" => '↔',
            "rArr" => '⇒',
            "mdash" => '—',
            "ndash" => '–',
            "dagger" => '†',
            "Dagger" => '‡',
            "times" => '×',
            "hellip" => '…',
            "middot" => '·',
            "bull" => '•',
            "check" => '✓',
            "sect" => '§',
            _ => return None,
        }
    };
    Some((decoded, end + 1))
}

fn is_word(p: Option<&Piece>) -> bool {
    p.is_some_and(|p| p.c.is_alphanumeric())
}

fn is_space(p: Option<&Piece>) -> bool {
    p.is_none_or(|p| p.c.is_whitespace())
}

/// Removes emphasis markers (`**x**`, `*x*`, `_x_`) and footnote stars
/// (`6443*`), leaving literal stars (`*.example.com`, `*:*:*:*`) alone.
fn emphasis(pieces: Vec<Piece>, footnotes: &mut Vec<String>) -> Vec<Piece> {
    let mut keep = vec![true; pieces.len()];
    let markup = |k: usize, c: char| pieces[k].c == c && !pieces[k].literal;
    // Strong emphasis: runs of two or more markers next to a word are dropped.
    let mut k = 0;
    while k < pieces.len() {
        let c = pieces[k].c;
        if (c == '*' || c == '_') && !pieces[k].literal {
            let run = (k..pieces.len()).take_while(|&j| markup(j, c)).count();
            if run >= 2 {
                let before = k.checked_sub(1).and_then(|j| pieces.get(j));
                let after = pieces.get(k + run);
                let flanking = !is_space(after) || !is_space(before);
                let underscore_inside_word = c == '_' && is_word(before) && is_word(after);
                if flanking && !underscore_inside_word {
                    keep[k..k + run].iter_mut().for_each(|x| *x = false);
                }
            }
            k += run;
        } else {
            k += 1;
        }
    }
    // Single markers: pair an opener with the next closer when a word lies between.
    let single = |keep: &[bool], k: usize, c: char| {
        markup(k, c)
            && keep[k]
            && !(k > 0 && markup(k - 1, c))
            && !(k + 1 < pieces.len() && markup(k + 1, c))
    };
    let mut k = 0;
    while k < pieces.len() {
        let c = pieces[k].c;
        if (c == '*' || c == '_') && single(&keep, k, c) {
            let before = k.checked_sub(1).and_then(|j| pieces.get(j));
            let after = pieces.get(k + 1);
            let opens = !(is_space(after) || (c == '_' && is_word(before)));
            if opens {
                // Emphasis spans a few words; the bound keeps a line of
                // unpaired stars linear.
                let closer = (k + 1..pieces.len().min(k + 400)).find(|&j| {
                    let before_closer = j.checked_sub(1).and_then(|i| pieces.get(i));
                    single(&keep, j, c) && !(is_space(before_closer) || is_word(pieces.get(j + 1)))
                });
                if let Some(j) = closer {
                    let has_word = pieces[k + 1..j].iter().any(|p| p.c.is_alphanumeric());
                    let has_break = pieces[k + 1..j].iter().any(|p| p.c == '\n');
                    if has_word && !has_break {
                        keep[k] = false;
                        keep[j] = false;
                        k = j + 1;
                        continue;
                    }
                }
            }
            if c == '*'
                && (is_word(before) || before.is_some_and(|p| p.c == ')'))
                && (after.is_none_or(|p| !p.c.is_alphanumeric() && p.c != '.'))
            {
                keep[k] = false;
                footnotes.push("*".to_owned());
            }
        }
        k += 1;
    }
    pieces
        .into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect()
}

/// An identifier from a name: lowercase ASCII letters and digits, other
/// characters as single dashes (`Long-tail Store` → `long-tail-store`).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    // Within the spec's id limit, leaving room for the `-N` that makes an
    // id unique and for prefixes such as `net-`.
    out.truncate(SLUG_MAX_LEN);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The longest slug: [`portolan_spec::MAX_ID_LEN`] less room for `-NNN`
/// and a `net-` prefix.
const SLUG_MAX_LEN: usize = portolan_spec::MAX_ID_LEN - 8;

/// A name reduced to lowercase letters and digits, for comparing spellings
/// (`Built-in MQTT broker` and `builtin-mqtt-broker` are equal).
pub fn squash(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The words of a text, lowercase, split at anything but letters, digits and `-`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '/' || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Finds `needle` (ASCII, lowercase) in `haystack` ignoring ASCII case; returns the byte offset.
pub fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len())
        .find(|&i| haystack.is_char_boundary(i) && h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Whether `needle` occurs in `haystack` as whole words, ignoring case.
pub fn contains_words(haystack: &str, needle: &str) -> bool {
    let h = haystack.to_lowercase();
    let mut from = 0;
    while let Some(pos) = h[from..].find(needle) {
        let start = from + pos;
        let end = start + needle.len();
        let before_ok = h[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = h[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            return true;
        }
        from = start + needle.len().max(1);
        while from < h.len() && !h.is_char_boundary(from) {
            from += 1;
        }
        if from >= h.len() {
            break;
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn links_and_anchors() {
        let i = inline("[Long-tail Storage](/Components.md#Long-tailStore)");
        assert_eq!(i.text, "Long-tail Storage");
        assert_eq!(i.links[0].1, "/Components.md#Long-tailStore");
    }

    #[test]
    fn escapes_stars_and_emphasis() {
        assert_eq!(plain(r"\*:\*:\*:\*"), "*:*:*:*");
        assert_eq!(plain("*:*:*:*"), "*:*:*:*");
        assert_eq!(
            plain(r"monitoring.\*.amazonaws.com"),
            "monitoring.*.amazonaws.com"
        );
        assert_eq!(
            plain("monitoring.*.amazonaws.com"),
            "monitoring.*.amazonaws.com"
        );
        assert_eq!(plain("*.cdn.example.com"), "*.cdn.example.com");
        assert_eq!(plain("**Outside**"), "Outside");
        assert_eq!(plain("*Outside* stands"), "Outside stands");
        assert_eq!(plain("the _backend image_, and"), "the backend image, and");
        assert_eq!(
            plain("postgres_exporter metrics"),
            "postgres_exporter metrics"
        );
        assert_eq!(plain(r"T::\$pg"), "T::$pg");
    }

    #[test]
    fn footnotes() {
        let i = inline("6443*");
        assert_eq!(i.text, "6443");
        assert_eq!(i.footnotes, ["*"]);
        let i = inline("NodePort Services†");
        assert_eq!(i.text, "NodePort Services");
        assert_eq!(i.footnotes, ["†"]);
        let i = inline("8500<sup>1</sup> and 8501[^2]");
        assert_eq!(i.text, "8500 and 8501");
        assert_eq!(i.footnotes, ["1", "2"]);
    }

    #[test]
    fn html_and_entities() {
        let i = inline("To &rarr;<br>&darr; From");
        assert_eq!(i.items(), ["To →", "↓ From"]);
        let i = inline("<ul><li>80</li><li>443</li></ul>");
        assert_eq!(i.items(), ["80", "443"]);
        assert_eq!(plain("a &unknown; b"), "a &unknown; b");
        assert_eq!(plain("a < b"), "a < b");
    }

    #[test]
    fn code_spans() {
        let i = inline("By default this is `5432`.");
        assert_eq!(i.text, "By default this is 5432.");
        assert_eq!(i.code, ["5432"]);
        assert_eq!(plain("`a*b*c`"), "a*b*c");
        assert_eq!(plain("`` a`b ``"), "a`b");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Long-tail Store"), "long-tail-store");
        assert_eq!(slug("Worker node(s)"), "worker-node-s");
        assert_eq!(slug("  --  "), "");
        // Within the spec's id limit, however long the name.
        let long = slug(&"Very Long Component Name ".repeat(20));
        assert!(long.len() <= portolan_spec::MAX_ID_LEN - 8, "{long}");
        assert!(!long.ends_with('-'), "{long}");
        assert_eq!(
            squash("Built-in MQTT broker"),
            squash("builtin-mqtt-broker")
        );
        assert!(contains_words("Only required when using SQS", "when using"));
        assert!(!contains_words("whenever", "when"));
    }
}
