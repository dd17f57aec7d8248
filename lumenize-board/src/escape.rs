//! Escaping of every stored string the page shows: HTML text and attribute values.

/// `s` as HTML text or a quoted attribute value: the five markup characters become
/// entities, and characters that could hide or reorder what is shown (C0 and C1 controls
/// other than tab and newline, bidirectional overrides and isolates, zero-width marks)
/// become a visible `\u{..}`, so a hostile id, payload or error reads as what it is.
#[must_use]
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A character that changes how the text around it shows without showing itself.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// At most `max` characters of `s` (cut on a character boundary), and whether it was cut.
#[must_use]
pub(crate) fn clip(s: &str, max: usize) -> (&str, bool) {
    match s.char_indices().nth(max) {
        Some((at, _)) => (&s[..at], true),
        None => (s, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_text() {
        assert_eq!(html(r#"<script>alert(1)</script>"#), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(html(r#""><img src=x onerror=alert(1)>"#), "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(html("a'b&c"), "a&#39;b&amp;c");
        assert_eq!(html("é ✓ plain"), "é ✓ plain");
    }

    #[test]
    fn controls_and_bidi_overrides_become_visible() {
        assert_eq!(html("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(html("a\u{0}b\u{1b}[31m\u{85}"), "a\\u{0}b\\u{1b}[31m\\u{85}");
        assert_eq!(html("zero\u{200b}width\u{2066}iso\u{feff}"), "zero\\u{200b}width\\u{2066}iso\\u{feff}");
        assert_eq!(html("tab\tand\nnewline"), "tab\tand\nnewline");
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("héllo", 2), ("hé", true));
        assert_eq!(clip("héllo", 5), ("héllo", false));
        assert_eq!(clip("", 0), ("", false));
        assert_eq!(clip("ab", 0), ("", true));
    }
}
