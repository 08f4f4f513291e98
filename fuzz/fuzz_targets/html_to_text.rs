//! Any bytes, read as a Teams body, must come back as text without a panic, with either
//! option, and plain-text normalisation must hold up too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teams_connector::transform::text::{html_to_text, plain_to_text, TextOptions};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    for keep in [false, true] {
        let out = html_to_text(&s, &TextOptions { keep_mention_names: keep });
        assert!(!out.starts_with('\n') && !out.ends_with('\n'));
    }
    let _ = plain_to_text(&s);
});
