//! YAML syntax highlighting for the editor: one pass per line over the text (keys, strings,
//! numbers, booleans and null, comments, list dashes), HTML-escaped, each line in its own
//! element so an error can mark it.

use std::fmt::Write as _;

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

fn span(class: &str, text: &str, out: &mut String) {
    if text.is_empty() {
        return;
    }
    let _ = write!(out, "<span class=\"{class}\">");
    escape(text, out);
    out.push_str("</span>");
}

/// Where a `#` starts a comment (not inside quotes, and at the start or after a space).
fn comment_start(line: &str) -> Option<usize> {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return Some(i),
            _ => {}
        }
        previous = c;
    }
    None
}

/// A scalar value, coloured by what it looks like.
fn value(text: &str, out: &mut String) {
    let trimmed = text.trim();
    let lead = &text[..text.len() - text.trim_start().len()];
    out.push_str(lead);
    let class = if trimmed.starts_with('"') || trimmed.starts_with('\'') {
        "ys"
    } else if matches!(trimmed, "true" | "false" | "null" | "~" | "yes" | "no") {
        "yb"
    } else if !trimmed.is_empty()
        && trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | ':' | 'T'))
    {
        "yn"
    } else if trimmed.starts_with('[') || trimmed.starts_with('{') || trimmed == "|" || trimmed == ">" {
        "yp"
    } else {
        "ys"
    };
    span(class, trimmed, out);
    out.push_str(&text[lead.len() + trimmed.len()..]);
}

/// One line, highlighted.
pub fn line(text: &str, out: &mut String) {
    let (code, comment) = match comment_start(text) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let indent = code.len() - code.trim_start().len();
    out.push_str(&code[..indent]);
    let mut rest = &code[indent..];
    if let Some(after) = rest.strip_prefix("- ") {
        span("yp", "-", out);
        out.push(' ');
        rest = after;
    } else if rest == "-" {
        span("yp", "-", out);
        rest = "";
    }
    // `key: value`, where the key is a plain word.
    let key_end = rest.find(": ").or_else(|| rest.strip_suffix(':').map(|k| k.len()));
    match key_end {
        Some(k) if !rest[..k].contains(['"', '\'', '{', '[']) && !rest[..k].trim().is_empty() => {
            span("yk", &rest[..k], out);
            out.push(':');
            value(rest.get(k + 1..).unwrap_or_default(), out);
        }
        _ => value(rest, out),
    }
    span("yc", comment, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(text: &str) -> String {
        let mut out = String::new();
        line(text, &mut out);
        out
    }

    #[test]
    fn keys_values_and_comments_get_their_classes() {
        assert_eq!(html("dag: orders"), "<span class=\"yk\">dag</span>: <span class=\"ys\">orders</span>");
        assert!(html("  - id: a # first").contains("<span class=\"yc\"># first</span>"));
        assert!(html("retries: 3").contains("<span class=\"yn\">3</span>"));
        assert!(html("catchup: false").contains("<span class=\"yb\">false</span>"));
        assert!(html("url: \"http://x/#y\"").contains("<span class=\"ys\">&quot;http://x/#y&quot;</span>"));
        assert_eq!(html("a < b"), "<span class=\"ys\">a &lt; b</span>");
    }
}
