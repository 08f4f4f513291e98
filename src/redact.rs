//! What may appear in a message an operator reads or the state store keeps (issue 12):
//! values from the outside (Graph's ids and codes, header values) with control characters
//! escaped and their length capped, so a hostile server cannot forge log lines or flood a
//! failure reason; and every live secret scrubbed from error text, so an identity platform
//! that echoes the posted form (refresh token, client secret) gets nothing printed.

use std::borrow::Cow;
use std::sync::Mutex;

/// Shortest piece of a secret that counts as a leak: an echo may cut a token anywhere.
const PIECE: usize = 12;
/// Secrets remembered at once (each refresh adds an access token; old ones expire).
const REMEMBERED: usize = 64;
const REDACTED: &str = "[redacted]";

/// The secret values of this process: tokens, passwords, client and ingest secrets.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers `value` as a secret to scrub from error text (values shorter than a piece
/// are too short to recognise and are left alone).
pub fn register(value: &str) {
    if value.len() < PIECE {
        return;
    }
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    if live.iter().any(|v| v == value) {
        return;
    }
    if live.len() == REMEMBERED {
        live.remove(0);
    }
    live.push(value.to_string());
}

/// `text` with every run of at least [`PIECE`] bytes that is part of a live secret
/// replaced by `[redacted]`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut hidden = vec![false; text.len()];
    let bytes = text.as_bytes();
    for secret in live.iter() {
        let pieces: std::collections::HashSet<&[u8]> = secret.as_bytes().windows(PIECE).collect();
        for (i, w) in bytes.windows(PIECE).enumerate() {
            if pieces.contains(w) {
                hidden[i..i + PIECE].iter_mut().for_each(|h| *h = true);
            }
        }
    }
    if !hidden.contains(&true) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    for (i, c) in text.char_indices() {
        if hidden[i] {
            if !in_secret {
                out.push_str(REDACTED);
            }
            in_secret = true;
        } else {
            in_secret = false;
            out.push(c);
        }
    }
    Cow::Owned(out)
}

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
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_capped() {
        assert_eq!(printable("a\nb\u{1b}[31m", 80), "a\\nb\\u{1b}[31m");
        assert_eq!(printable("abcdef", 3), "abc…");
    }

    #[test]
    fn live_secrets_and_pieces_of_them_are_scrubbed() {
        register("1.AXoA-scrub-test-refresh-token-value-0123456789");
        let echoed =
            "malformed: grant_type=refresh_token&refresh_token=1.AXoA-scrub-test-refresh-tok";
        let out = scrub(echoed);
        assert_eq!(
            out,
            "malformed: grant_type=refresh_token&refresh_token=[redacted]"
        );
        assert!(matches!(scrub("nothing secret here"), Cow::Borrowed(_)));
    }
}
