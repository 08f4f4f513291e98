//! What may appear in a message an operator reads or the state store keeps (issue 12):
//! values from the outside (Graph's ids and codes, header values) with control characters
//! escaped and their length capped, so a hostile server cannot forge log lines or flood a
//! failure reason.

/// `s` with control characters escaped (`\n`, `\u{1b}`) and cut to `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_length_capped() {
        assert_eq!(super::printable("a\nb\u{1b}[31m", 80), "a\\nb\\u{1b}[31m");
        assert_eq!(super::printable("abcdef", 3), "abc…");
    }
}
