//! Keys written without a value (`port:`, `when:`, a site flow's `from:`).
//!
//! serde reads an empty value as an absent key, and an absent `port` means
//! every port, an absent `when` an unconditional flow: a key whose value was
//! forgotten would silently widen the flow. These keys are read as
//! [`Given`], which tells the two apart, and the checks refuse the empty one
//! with a diagnostic naming the key.

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::diag::{Code, Diagnostic, SourceFile, Span};

/// An optional key: `None` when absent, `Some` with value `None` when
/// written with an empty value (`port:`, `port: ~`, `port: null`).
pub type Given<T> = Option<Spanned<Option<T>>>;

/// serde `deserialize_with` for a [`Given`] key (called only when the key
/// is present; `#[serde(default)]` gives `None` when it is absent).
pub fn present<'de, D, T>(deserializer: D) -> Result<Given<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Spanned::<Option<T>>::deserialize(deserializer).map(Some)
}

/// The value of a [`Given`] key, or the diagnostic for an empty one (its
/// label under the key, `help` saying how to write the wide meaning).
pub(crate) fn take<T>(
    source: &SourceFile,
    key: &str,
    given: Given<T>,
    help: &str,
) -> Result<Option<Spanned<T>>, Diagnostic> {
    let Some(spanned) = given else {
        return Ok(None);
    };
    let Spanned {
        value,
        referenced,
        defined,
    } = spanned;
    match value {
        Some(value) => Ok(Some(Spanned {
            value,
            referenced,
            defined,
        })),
        None => {
            let at = Span::from_location(&referenced, source);
            Err(
                Diagnostic::new(Code::EmptyValue, format!("`{key}` has no value"))
                    .with_label(key_span(source, at, key), "written without a value")
                    .with_help(help.to_owned()),
            )
        }
    }
}

/// The span of `key` written just before the empty value at `at` (on its
/// line or the one before; `at` may be the key's colon); `at` itself when
/// the key is not found there.
fn key_span(source: &SourceFile, at: Span, key: &str) -> Span {
    let text = &source.text;
    let end = at.offset.min(text.len());
    let Some(before) = text.get(..end) else {
        return at;
    };
    // The key is on the value's line or, for a value on the next line, the
    // one before it.
    let window_start = before
        .trim_end_matches([' ', '\t', '\r', '\n'])
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let window = &before[window_start..];
    let mut search = window.len();
    while let Some(found) = window[..search].rfind(key) {
        let after = window[found + key.len()..].trim_start_matches([' ', '"', '\'']);
        let starts_word = window[..found]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
        // serde-saphyr places an empty value at the key's colon.
        if starts_word && (after.is_empty() || after.starts_with(':')) {
            return Span::new(window_start + found, key.len());
        }
        search = found;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_of_an_empty_value_is_found() {
        let text = "a: {source_port: , port: }\nb:\n  port:\n  x: 1\n";
        let source = SourceFile::new("x", text);
        let inline = text.find("port: }").expect("inline");
        for at in [inline + 4, inline + 6] {
            assert_eq!(
                key_span(&source, Span::new(at, 0), "port"),
                Span::new(inline, 4)
            );
        }
        let block = text.find("  x").expect("block");
        let found = key_span(&source, Span::new(block, 0), "port");
        assert_eq!(&text[found.offset..found.offset + found.len], "port");
        assert_eq!(found.offset, text.find("  port:").expect("key") + 2);
    }
}
