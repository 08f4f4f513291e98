//! Teams message bodies (`body.content`) → the plain text the ingest receives as `content`.
//!
//! The ingest extracts topics from this text, so it must hold the author's own words and
//! nothing else (see DESIGN.md, "Ingest contract"), with the line structure kept:
//!
//! - Blocks (`p`, `div`, `li`, `tr`, headings, `blockquote`, `pre`, `table`, lists), `<br>`
//!   and `<hr>` end a line; inline elements never split a word. Whitespace collapses to one
//!   space within a line, lines are trimmed, blank lines come at most one in a row and never
//!   first or last. `<p>&nbsp;</p>` and `<br><br>` are how Teams writes a blank line.
//! - Lists print `- ` or `1. ` markers, two spaces of indent per nesting level; a table row is
//!   one line with its cells separated by a tab, whatever blocks the cells contain.
//! - `<pre>`, `<codeblock>` and a `<code>` spanning lines keep their spaces and line breaks;
//!   inline `<code>` is ordinary text.
//! - Dropped whole: quoted replies (`itemtype=".../Reply"`), mentions (unless
//!   [`TextOptions::keep_mention_names`]; those of opted-out people always, see
//!   [`html_to_text_hiding`]), emoji, images, attachment and card placeholders,
//!   `<systemEventMessage/>`, scripts, styles, templates, comments. The punctuation a
//!   removed mention leaves behind is tidied (rules in `text/tidy.rs`):
//!   `Ah, <at>Megan</at>, <at>Alex</at>, I saw` → `Ah, I saw`.
//! - Entities decoded (`&nbsp;` is a space), zero-width, bidi and control characters removed
//!   (tab and newline excepted), Unicode NFC.
//!
//! Any input is accepted: the work is linear in the input and no recursion follows its
//! nesting depth.
//!
//! The way through, one module each: `prepare` (strip what the walk never reads, cap the
//! nesting; `tags` has the tokenizer rules it needs) → scraper's parse → `walk` (what each
//! element is) → `lines` (spacing, blank lines, list and table layout; `tidy` closes the
//! holes left by dropped mentions) → NFC. `chars` has the character classes. Bodies of
//! plain paragraphs, mentions and bold words skip the parse: `simple` reads them and drives
//! `lines` as `walk` would.

mod chars;
mod lines;
mod prepare;
mod simple;
mod tags;
mod tidy;
mod walk;

use std::cell::RefCell;

use scraper::Html;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use lines::{Buffers, Lines};
use walk::{Frames, Walk};

/// How [`html_to_text`] treats what is not the author's prose.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// Keep the visible names of `<at>` mentions (a name split over several adjacent `<at>`
    /// tags reads as one name, `Miguel de la Cruz`). Off for the ingest: the mentioned people
    /// travel as mails in their own field, and a name is not a topic.
    pub keep_mention_names: bool,
}

/// Teams `body.content` with contentType "html" → the author's own words as plain text.
///
/// An empty result means the message holds nothing of the author's own (only a mention, an
/// image, a card, a system event).
pub fn html_to_text(html: &str, opts: &TextOptions) -> String {
    html_to_text_hiding(html, opts, &[])
}

/// [`html_to_text`], with the mentions whose `<at id>` (or `itemid`) is in `hidden`
/// dropped even when [`TextOptions::keep_mention_names`] keeps the others: they stand for
/// people who opted out (`[privacy]`), whose names must not reach the ingest.
pub fn html_to_text_hiding(html: &str, opts: &TextOptions, hidden: &[String]) -> String {
    with_scratch(|scratch| {
        if !opts.keep_mention_names && simple::read(html, &mut scratch.simple) {
            let mut lines = Lines::new(&mut scratch.buffers, html.len() / 2);
            simple::replay(&scratch.simple, &mut lines);
            return lines.finish();
        }
        let mut input = std::mem::take(&mut scratch.input);
        prepare::prepare(html, &mut input, &mut scratch.open);
        let text = convert(&input, opts, hidden, scratch);
        scratch.input = input;
        text
    })
}

/// Parse and walk, without `prepare`.
fn convert(html: &str, opts: &TextOptions, hidden: &[String], scratch: &mut Scratch) -> String {
    let doc = Html::parse_fragment(html);
    let mut lines = Lines::new(&mut scratch.buffers, html.len() / 2);
    Walk::new(opts, hidden, &mut lines).run(&doc, &mut scratch.frames);
    lines.finish()
}

/// contentType "text": used as is, normalised the same way as HTML text (whitespace collapsed
/// within a line, control and invisible characters removed, blank lines, NFC). Entities are
/// not decoded: in a text body `&amp;` is what the author typed.
pub fn plain_to_text(text: &str) -> String {
    with_scratch(|scratch| {
        let mut lines = Lines::new(&mut scratch.buffers, text.len());
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                lines.hard_break();
            }
            // A lone `\r` (old Mac line ends) breaks a line too; `\r\n` breaks it once.
            for (j, part) in line
                .strip_suffix('\r')
                .unwrap_or(line)
                .split('\r')
                .enumerate()
            {
                if j > 0 {
                    lines.hard_break();
                }
                lines.text(part);
            }
        }
        lines.finish()
    })
}

/// Buffers kept per thread so that a message costs one new `String`, plus what the parser
/// allocates for its tree.
#[derive(Default)]
struct Scratch {
    /// The input with dead weight removed (see `prepare`).
    input: String,
    /// The element stack `prepare` models.
    open: prepare::OpenElements,
    buffers: Buffers,
    frames: Frames,
    /// The fast path's events and text (see `simple`).
    simple: simple::Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch(f: impl FnOnce(&mut Scratch) -> String) -> String {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let out = f(&mut scratch);
            scratch.buffers.trim();
            scratch.simple.trim();
            if scratch.input.capacity() > 1 << 20 {
                scratch.input = String::new();
            }
            if scratch.frames.capacity() > 4096 || scratch.open.capacity() > 4096 {
                scratch.frames = Frames::new();
                scratch.open = prepare::OpenElements::new();
            }
            out
        }
        // Only reachable if `f` itself re-entered; never the case, but not worth a panic.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// NFC, skipping the copy when the quick check already says the text is normalised.
fn nfc(text: String) -> String {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text
    } else {
        text.nfc().collect()
    }
}
