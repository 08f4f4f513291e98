//! Closing the holes that removed mentions and objects leave in a line.
//!
//! A dropped mention takes its name out of a sentence that was written around it. The rule,
//! applied to each finished line:
//!
//! 1. Mentions joined only by spaces, a comma, `&`, `/`, `+` or `and`/`or` form one group
//!    (`@Miguel @de @la @Cruz`, `@Megan, @Alex`, `@A and @B`) and go together with what joins
//!    them.
//! 2. A possessive `'s` right after the group goes with it (`@A's idea` → `idea`), and so
//!    do brackets left empty (`(@A)`).
//! 3. At the start of a line or table cell, punctuation left in front (`@A: see`, `@A, can
//!    you`) is dropped.
//! 4. Between two separators (`,` `;` `:` and their CJK forms) the second goes
//!    (`Ah, @A, @B, I saw` → `Ah, I saw`); a separator before closing punctuation goes
//!    (`Thanks, @A.` → `Thanks.`); a separator left at the end of the line goes
//!    (`Thanks, @A` → `Thanks`).
//! 5. Otherwise the two sides are joined by one space, or by none before closing and after
//!    opening punctuation (`Hi @A!` → `Hi!`, `Hi @A, the plan` → `Hi, the plan`).
//!
//! Dropped emoji, images and attachments are *objects*: only rule 5 applies, since the
//! punctuation around them is the author's own (`Thanks, 👍` keeps its comma). Last, a line
//! with holes never starts with a separator (`<img>, hi` → `hi`).

use super::chars::{closer_of, is_closing, is_opening, is_separator};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoleKind {
    Mention,
    Object,
}

/// A byte offset in the line where something was removed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hole {
    pub(super) at: usize,
    pub(super) kind: HoleKind,
}

/// Rewrites `line` (which has at least one hole) with its holes closed; `buf` is scratch.
pub(super) fn close_holes(line: &mut String, holes: &[Hole], buf: &mut String) {
    buf.clear();
    buf.push_str(&line[..holes[0].at]);
    let mut i = 0;
    while i < holes.len() {
        let last = group_end(line, holes, i);
        let end = holes.get(last + 1).map_or(line.len(), |h| h.at);
        let right = &line[holes[last].at..end];
        match holes[i].kind {
            HoleKind::Mention => join_after_mention(buf, right, last + 1 == holes.len()),
            HoleKind::Object => join_after_object(buf, right),
        }
        i = last + 1;
    }
    // Whatever joined where, a line left starting with a separator (`<img>,<at>A</at>, hi`)
    // starts with the words after it.
    let lead = buf.len()
        - buf
            .trim_start_matches(|c: char| is_separator(c) || c == ' ')
            .len();
    line.clear();
    line.push_str(&buf[lead..]);
}

/// Index of the last hole of the mention group starting at `first`.
fn group_end(line: &str, holes: &[Hole], first: usize) -> usize {
    let mut last = first;
    if holes[first].kind != HoleKind::Mention {
        return last;
    }
    while let Some(next) = holes.get(last + 1) {
        if next.kind != HoleKind::Mention || !is_connector(&line[holes[last].at..next.at]) {
            break;
        }
        last += 1;
    }
    last
}

/// What may stand between two mentions of one group.
fn is_connector(between: &str) -> bool {
    let word = between.trim_matches(' ');
    !between.contains('\t')
        && matches!(
            word,
            "" | "," | "，" | "、" | "&" | "/" | "+" | "and" | "or" | "und" | "et"
        )
}

fn join_after_mention(buf: &mut String, right: &str, line_end: bool) {
    trim_end_spaces(buf);
    let mut r = strip_possessive(right.trim_start_matches(' ')).trim_start_matches(' ');
    r = drop_empty_brackets(buf, r);
    if buf.is_empty() || buf.ends_with('\t') {
        buf.push_str(r.trim_start_matches(|c: char| is_closing(c) || c == ' '));
        return;
    }
    if r.is_empty() || r.starts_with('\t') {
        if line_end || r.starts_with('\t') {
            trim_end_separators(buf);
        }
        buf.push_str(r);
        return;
    }
    r = settle_separators(buf, r);
    push_joined(buf, r);
}

/// Rule 4 for a mention between two pieces of punctuation; returns what is left of `r`.
fn settle_separators<'a>(buf: &mut String, r: &'a str) -> &'a str {
    let (Some(lc), Some(rc)) = (buf.chars().next_back(), r.chars().next()) else {
        return r;
    };
    if !is_separator(lc) || !is_closing(rc) {
        return r;
    }
    if is_separator(rc) {
        let rest = r[rc.len_utf8()..].trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with(is_closing) {
            trim_end_separators(buf);
        }
        return rest;
    }
    trim_end_separators(buf);
    r
}

fn join_after_object(buf: &mut String, right: &str) {
    trim_end_spaces(buf);
    push_joined(buf, right.trim_start_matches(' '));
}

/// Appends `r` after `buf` with one space between words, none around punctuation or tabs.
fn push_joined(buf: &mut String, r: &str) {
    let (Some(lc), Some(rc)) = (buf.chars().next_back(), r.chars().next()) else {
        buf.push_str(r);
        return;
    };
    if lc != '\t' && rc != '\t' && !is_opening(lc) && !is_closing(rc) {
        buf.push(' ');
    }
    buf.push_str(r);
}

fn strip_possessive(r: &str) -> &str {
    for apostrophe in ["'s", "’s"] {
        if let Some(rest) = r.strip_prefix(apostrophe) {
            if !rest.starts_with(char::is_alphanumeric) {
                return rest;
            }
        }
    }
    r
}

/// `see (@A) now` → `see now`: an opening bracket before the hole, its closer after it.
fn drop_empty_brackets<'a>(buf: &mut String, mut r: &'a str) -> &'a str {
    while let (Some(lc), Some(rc)) = (buf.chars().next_back(), r.chars().next()) {
        if closer_of(lc) != Some(rc) {
            break;
        }
        buf.pop();
        trim_end_spaces(buf);
        r = r[rc.len_utf8()..].trim_start_matches(' ');
    }
    r
}

fn trim_end_spaces(buf: &mut String) {
    let len = buf.trim_end_matches(' ').len();
    buf.truncate(len);
}

fn trim_end_separators(buf: &mut String) {
    let len = buf
        .trim_end_matches(|c: char| is_separator(c) || c == ' ')
        .len();
    buf.truncate(len);
}
