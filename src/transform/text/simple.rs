//! The markup most messages are made of, converted without the HTML parser.
//!
//! Most Teams bodies are paragraphs and `<div>`s of text with a few mentions, `&nbsp;` and
//! bold or italic words. For those, building html5ever's tree costs several times what the
//! rest of a message does, and the tree is exactly the tags as written. So a body is first
//! read against a strict subset where that holds; only what falls outside it goes through
//! the parser (`prepare` → parse → `walk`). Inside the subset this module drives `Lines`
//! with the calls `walk` makes for the same tree, so the result is the same text (a
//! property test compares the two paths on generated markup).
//!
//! The subset, where anything else sends the body to the parser:
//! - Tags, lowercase: `p`, `div` and `blockquote` (blocks), `br` (`<br>` or `<br/>`), `b`,
//!   `i`, `u`, `s`, `em`, `strong`, `span` (inline), `at` (a mention, with text only
//!   inside). Attributes are allowed, except `itemtype` (it changes what an element is)
//!   other than a quoted reply's on a `blockquote` (dropped whole, as the walk drops it).
//!   Only when mention names are dropped (`TextOptions::keep_mention_names` off).
//! - Nesting as written: every end tag closes the element opened last, everything opened
//!   is closed, no block opens inside a `p` (the parser would close the `p` first), at
//!   most [`MAX_DEPTH`] deep.
//! - Text without `\r`, NUL or a `<` that starts no tag of the subset, whose `&` begin one
//!   of `&nbsp;`, `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`, `&apos;`.

use super::lines::Lines;
use super::tags;
use super::tidy::HoleKind;

/// Deeper nesting goes to the parser (whose caps `prepare` applies).
const MAX_DEPTH: usize = 32;

/// What `walk` would do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// A text node: a range of the decoded text.
    Text(usize, usize),
    /// A block starts or ends.
    Block,
    /// `<br>`.
    Break,
    /// A dropped mention.
    Mention,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    P,
    Div,
    Quote,
    /// A quoted reply (`<blockquote itemtype=".../Reply">`): dropped whole, so what it
    /// produced is cut back to these lengths of the events and the text when it closes.
    Reply(usize, usize),
    Inline(&'static str),
}

/// Reusable buffers of the fast path.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    events: Vec<Event>,
    text: String,
    open: Vec<Element>,
}

impl Scratch {
    pub(super) fn trim(&mut self) {
        if self.text.capacity() > 64 * 1024 || self.events.capacity() > 4096 {
            *self = Scratch::default();
        }
    }
}

/// Drives `lines` as `walk` would for what [`read`] accepted.
pub(super) fn replay(scratch: &Scratch, lines: &mut Lines) {
    for event in &scratch.events {
        match *event {
            Event::Text(from, to) => lines.text(&scratch.text[from..to]),
            Event::Block => lines.block_boundary(),
            Event::Break => lines.hard_break(),
            Event::Mention => lines.hole(HoleKind::Mention),
        }
    }
}

/// Reads `html` into `scratch`; `false` as soon as it leaves the subset.
pub(super) fn read(html: &str, scratch: &mut Scratch) -> bool {
    let Scratch { events, text, open } = scratch;
    events.clear();
    text.clear();
    open.clear();
    let b = html.as_bytes();
    let mut i = 0;
    // Where the current text node began in `text`.
    let mut node = 0;
    while i < b.len() {
        let Some(offset) = b[i..]
            .iter()
            .position(|&c| matches!(c, b'<' | b'&' | b'\r' | b'\0'))
        else {
            text.push_str(&html[i..]);
            break;
        };
        text.push_str(&html[i..i + offset]);
        i += offset;
        match b[i] {
            b'&' => {
                let Some((decoded, len)) = entity(&b[i..]) else {
                    return false;
                };
                text.push(decoded);
                i += len;
            }
            b'<' => {
                if text.len() > node {
                    events.push(Event::Text(node, text.len()));
                }
                let Some(next) = tag(html, i, events, text, open) else {
                    return false;
                };
                i = next;
                // A dropped reply takes its text back.
                node = text.len();
            }
            _ => return false,
        }
    }
    if text.len() > node {
        events.push(Event::Text(node, text.len()));
    }
    open.is_empty()
}

/// The tag at `lt`: its events, and where the input goes on; `None` outside the subset.
fn tag(
    html: &str,
    lt: usize,
    events: &mut Vec<Event>,
    text: &mut String,
    open: &mut Vec<Element>,
) -> Option<usize> {
    let b = html.as_bytes();
    if b.get(lt + 1) == Some(&b'/') {
        let name_end = lt + 2 + b[lt + 2..].iter().position(|&c| c == b'>')?;
        let closed = element(&b[lt + 2..name_end])?;
        match (open.pop()?, closed) {
            (Element::Reply(e, t), Element::Quote) => {
                events.truncate(e);
                text.truncate(t);
            }
            (el @ (Element::P | Element::Div | Element::Quote), _) if el == closed => {
                events.push(Event::Block);
            }
            (el, _) if el == closed => {}
            _ => return None,
        }
        return Some(name_end + 1);
    }
    if !b.get(lt + 1).is_some_and(u8::is_ascii_lowercase) {
        return None;
    }
    // The itemtype attribute's value, and how many there are.
    let (mut itemtypes, mut itemtype) = (0, None);
    let read = tags::read(html, lt + 1, |(from, to), end| {
        if b[from..to].eq_ignore_ascii_case(b"itemtype") {
            itemtypes += 1;
            itemtype = value(html, to, end);
        }
        true
    });
    if read.end > b.len() {
        return None;
    }
    let name = &b[read.name.0..read.name.1];
    if name == b"br" && itemtypes == 0 {
        events.push(Event::Break);
        return Some(read.end);
    }
    let mut el = element(name)?;
    if read.self_closing || open.len() >= MAX_DEPTH {
        return None;
    }
    if itemtypes > 0 {
        // Only a quoted reply: other item types (mentions, emoji) are the walk's.
        if el != Element::Quote || itemtypes > 1 || !itemtype.is_some_and(is_reply) {
            return None;
        }
        el = Element::Reply(events.len(), text.len());
    }
    match el {
        Element::P | Element::Div | Element::Quote | Element::Reply(..) => {
            if open.contains(&Element::P) {
                return None;
            }
            if !matches!(el, Element::Reply(..)) {
                events.push(Event::Block);
            }
        }
        Element::Inline("at") => {
            // Text only inside, and nothing of it printed.
            let close = read.end + html[read.end..].find('<')?;
            if !b[close..].starts_with(b"</at>") {
                return None;
            }
            events.push(Event::Mention);
            return Some(close + "</at>".len());
        }
        Element::Inline(_) => {}
    }
    open.push(el);
    Some(read.end)
}

/// An attribute's value from the end of its name to the end of the attribute, if it holds
/// no character reference (the parser would decode it).
fn value(html: &str, name_end: usize, end: usize) -> Option<&str> {
    let v = html[name_end..end].trim_start_matches(|c: char| c.is_ascii_whitespace());
    let v = v
        .strip_prefix('=')?
        .trim_start_matches(|c: char| c.is_ascii_whitespace());
    let v = match v.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => v[1..].strip_suffix(char::from(q))?,
        _ => v,
    };
    (!v.contains('&')).then_some(v)
}

/// The walk's rule for a quoted reply's item type.
fn is_reply(itemtype: &str) -> bool {
    itemtype
        .rsplit_once("schema.skype.com/")
        .is_some_and(|(_, n)| n.trim_end_matches('/').eq_ignore_ascii_case("Reply"))
}

fn element(name: &[u8]) -> Option<Element> {
    Some(match name {
        b"p" => Element::P,
        b"div" => Element::Div,
        b"blockquote" => Element::Quote,
        b"b" => Element::Inline("b"),
        b"i" => Element::Inline("i"),
        b"u" => Element::Inline("u"),
        b"s" => Element::Inline("s"),
        b"em" => Element::Inline("em"),
        b"strong" => Element::Inline("strong"),
        b"span" => Element::Inline("span"),
        b"at" => Element::Inline("at"),
        _ => return None,
    })
}

/// The character of an entity of the subset at the start of `b`, and its length.
fn entity(b: &[u8]) -> Option<(char, usize)> {
    const ENTITIES: [(&[u8], char); 7] = [
        (b"&nbsp;", '\u{a0}'),
        (b"&amp;", '&'),
        (b"&lt;", '<'),
        (b"&gt;", '>'),
        (b"&quot;", '"'),
        (b"&#39;", '\''),
        (b"&apos;", '\''),
    ];
    ENTITIES
        .iter()
        .find(|(name, _)| b.starts_with(name))
        .map(|(name, c)| (*c, name.len()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::lines::{Buffers, Lines};
    use super::super::{convert, prepare, with_scratch, TextOptions};
    use super::{read, replay, Scratch};

    /// The parser's path, whatever the input.
    fn parsed(html: &str) -> String {
        with_scratch(|scratch| {
            let mut input = String::new();
            prepare::prepare(html, &mut input, &mut scratch.open);
            convert(&input, &TextOptions::default(), &[], scratch)
        })
    }

    /// The fast path, if the input is in its subset.
    fn fast(html: &str) -> Option<String> {
        let mut scratch = Scratch::default();
        if !read(html, &mut scratch) {
            return None;
        }
        let mut buffers = Buffers::default();
        let mut lines = Lines::new(&mut buffers, html.len() / 2);
        replay(&scratch, &mut lines);
        Some(lines.finish())
    }

    fn text() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "word",
            "Hello,",
            " ",
            "  ",
            "\n",
            "\t",
            "x.",
            "&nbsp;",
            "&amp;",
            "&lt;",
            "&gt;",
            "&quot;",
            "&#39;",
            "&apos;",
            "é",
            "e\u{301}",
            "\u{200b}",
            "\u{a0}",
            ",",
            "!",
            ">",
            "\u{1f600}",
            "\u{202e}",
            "\u{7}",
            "1.",
            "-",
        ])
        .prop_map(str::to_owned)
    }

    /// Markup of the subset: blocks hold anything, paragraphs and inline elements only
    /// inline content.
    fn inline() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => text(),
            1 => Just("<br>".to_owned()),
            1 => Just("<br/>".to_owned()),
            1 => Just("<at id=\"0\">Megan</at>".to_owned()),
            1 => Just("<at id=\"1\">Alex Wilber</at>".to_owned()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            (
                prop::sample::select(vec!["b", "i", "u", "s", "em", "strong", "span"]),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(tag, kids)| format!("<{tag}>{}</{tag}>", kids.concat()))
        })
    }

    fn markup() -> impl Strategy<Value = String> {
        let paragraph =
            prop::collection::vec(inline(), 0..4).prop_map(|k| format!("<p>{}</p>", k.concat()));
        let reply = prop::collection::vec(inline(), 0..3).prop_map(|k| {
            format!(
                "<blockquote itemscope=\"\" itemtype=\"http://schema.skype.com/Reply\" itemid=\"1\">\n<strong itemprop=\"mri\">Megan</strong><span itemprop=\"time\">1</span>\n<p itemprop=\"preview\">{}</p>\n</blockquote>",
                k.concat()
            )
        });
        let leaf = prop_oneof![4 => inline(), 4 => paragraph, 1 => reply];
        leaf.prop_recursive(4, 32, 4, |inner| {
            (
                prop::sample::select(vec!["div", "blockquote"]),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(tag, k)| format!("<{tag}>{}</{tag}>", k.concat()))
        })
    }

    /// Anything near the subset: tags outside it, broken nesting, other entities.
    fn soup() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            3 => text(),
            3 => prop::sample::select(vec![
                "<p>", "</p>", "<div>", "</div>", "<br>", "<b>", "</b>", "<span>", "</span>",
                "<at id=\"0\">Megan</at>", "<P>", "<p/>", "</br>", "<blockquote>",
                "</blockquote>", "&amp", "&foo;", "<", "\r\n", "\0", "<!-- c -->",
                "<span itemtype=\"http://schema.skype.com/Mention\">", "<at>x<b>y</b></at>",
                "<li>", "<pre>", "</p >", "<p class=\"a>b\">", "<at id=x>", "</at>",
                "<blockquote itemtype=\"http://schema.skype.com/Reply\">", "</blockquote>",
                "<blockquote itemtype='http://schema.skype.com/reply/'>", "<blockquote>",
                "<blockquote itemtype=\"http://schema.skype.com/Emoji\">",
                "<blockquote itemtype=http://schema.skype.com/Reply itemtype=x>",
                "<div itemtype=\"http://schema.skype.com/Reply\">",
                "<blockquote itemtype=\"&#104;ttp://schema.skype.com/Reply\">",
            ])
            .prop_map(str::to_owned),
        ];
        prop::collection::vec(token, 0..16).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_subset_reads_as_the_parser_reads_it(html in markup()) {
            let fast = fast(&html);
            prop_assert!(fast.is_some(), "not read by the fast path: {html:?}");
            prop_assert_eq!(fast.unwrap(), parsed(&html), "{:?}", html);
        }

        #[test]
        fn near_the_subset_the_fast_path_agrees_or_declines(html in soup()) {
            if let Some(fast) = fast(&html) {
                prop_assert_eq!(fast, parsed(&html), "{:?}", html);
            }
        }
    }

    #[test]
    fn the_fixtures_read_the_same_on_either_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/html");
        let mut fast_read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "html") {
                let html = std::fs::read_to_string(&path).unwrap();
                if let Some(fast) = fast(&html) {
                    fast_read += 1;
                    assert_eq!(fast, parsed(&html), "{}", path.display());
                }
            }
        }
        assert!(fast_read >= 5, "only {fast_read} fixtures in the subset");
    }
}
