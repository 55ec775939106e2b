//! Object names and label values the Kubernetes API server accepts, made of
//! free text (the system's name, component ids).
//!
//! Kubernetes refuses a label value longer than 63 characters, or one that
//! does not begin and end with a letter or digit (`-`, `_` and `.` may stand
//! between), and an object name that is not a DNS-1123 label here (lowercase
//! letters, digits and `-`, at most 63). A value that already fits is kept
//! as it is; any other is sanitized, cut, and given a suffix of 8 hex digits
//! of a stable hash (32-bit FNV-1a) of the whole value, so that two long
//! values that share their first characters stay distinct, and the same
//! value gives the same label on every run and platform.

/// The longest label value, and the longest object name this crate writes.
pub const MAX_LABEL_LEN: usize = 63;

/// 32-bit FNV-1a of the UTF-8 bytes of `text`, as 8 lowercase hex digits.
/// Defined by its constants alone, so identical on every platform.
pub fn stable_hash(text: &str) -> String {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let hash = text
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME));
    format!("{hash:08x}")
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Whether `text` is already a valid label value.
fn is_label_value(text: &str) -> bool {
    text.is_empty() || fits(text, is_label_char)
}

fn fits(text: &str, allowed: fn(char) -> bool) -> bool {
    text.len() <= MAX_LABEL_LEN
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text.chars().all(allowed)
}

/// `text` with every character outside `allowed` turned into `-`, its first
/// characters kept so that `-` and the hash fit in 63, trimmed to begin and
/// end with a letter or digit, then `-` and [`stable_hash`] of all of `text`.
fn shortened(text: &str, allowed: fn(char) -> bool) -> String {
    let hash = stable_hash(text);
    let head: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(MAX_LABEL_LEN - hash.len() - 1)
        .collect();
    let head = head.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// A valid Kubernetes label value for `text`: `text` itself when it is one,
/// else its shortened form (`<first characters>-<8 hex digits>`).
pub fn label_value(text: &str) -> String {
    if is_label_value(text) {
        text.to_owned()
    } else {
        shortened(text, is_label_char)
    }
}

/// A DNS-1123 label for an object name: `text` itself when it is one, else
/// its shortened form, lowercase.
pub fn object_name(text: &str) -> String {
    if fits(text, is_name_char) {
        text.to_owned()
    } else {
        shortened(&text.to_ascii_lowercase(), is_name_char)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_32() {
        // The published FNV-1a test vectors.
        assert_eq!(stable_hash(""), "811c9dc5");
        assert_eq!(stable_hash("a"), "e40c292c");
        assert_eq!(stable_hash("foobar"), "bf9cf968");
    }

    #[test]
    fn valid_values_are_kept() {
        assert_eq!(
            label_value("spacelift-self-hosted"),
            "spacelift-self-hosted"
        );
        assert_eq!(label_value("A_b.c"), "A_b.c");
        assert_eq!(label_value(""), "");
        let longest = "a".repeat(63);
        assert_eq!(label_value(&longest), longest);
        assert_eq!(object_name("shop-web"), "shop-web");
    }

    #[test]
    fn long_or_odd_values_are_cut_with_a_hash() {
        let long = "b".repeat(200);
        let value = label_value(&long);
        assert_eq!(value.len(), 63);
        assert_eq!(value, format!("{}-{}", "b".repeat(54), stable_hash(&long)));
        // Two long values with the same first characters differ.
        assert_ne!(label_value(&format!("{long}x")), value);
        // A trailing dash (a valid id, not a valid label) is cut and hashed.
        assert_eq!(label_value("web-"), format!("web-{}", stable_hash("web-")));
        assert_eq!(label_value("!!!"), stable_hash("!!!"));
        assert_eq!(
            object_name("Shop Web"),
            format!("shop-web-{}", stable_hash("shop web"))
        );
        let name = object_name(&format!("{}-{}", "s".repeat(200), "c".repeat(63)));
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("sss") && name.chars().all(is_name_char));
    }
}
