//! Flattening of absurdly deep nesting before the parse.
//!
//! html5ever looks for an open `<p>` through the whole stack of open elements on each
//! block-level start tag, so 10 000 nested `<div>`s cost 10⁸ steps (a quarter of a second,
//! seconds for nested lists) and a 2 MB body of them would stall the run. No Teams client
//! nests anywhere near [`MAX_DEPTH`], so past it we rewrite the input: a start tag that
//! would open an element deeper than that becomes a `<br>` if it is a block (its content
//! still gets a line of its own) and nothing otherwise; its end tag likewise.
//!
//! The scan is a rough tokenizer (tags, attribute quotes, comments, raw-text elements,
//! implied ends of `p`/`li`/cells) that runs only when the input has more tags than the cap.
//! Where it misjudges real markup, all that changes is where a line breaks.

use std::borrow::Cow;

/// Deepest element nesting passed to the parser.
pub(super) const MAX_DEPTH: usize = 256;

/// `html`, or a copy with the elements past [`MAX_DEPTH`] flattened.
pub(super) fn cap_nesting(html: &str) -> Cow<'_, str> {
    if memchr_count(html.as_bytes(), b'<') <= MAX_DEPTH {
        return Cow::Borrowed(html);
    }
    let edits = Scanner::default().run(html.as_bytes());
    if edits.is_empty() {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    for (range, block) in edits {
        out.push_str(&html[at..range.0]);
        if block {
            out.push_str("<br>");
        }
        at = range.1;
    }
    out.push_str(&html[at..]);
    Cow::Owned(out)
}

fn memchr_count(bytes: &[u8], needle: u8) -> usize {
    bytes.iter().filter(|&&b| b == needle).count()
}

/// A tag to rewrite: its byte range, and whether it becomes a `<br>`.
type Edit = ((usize, usize), bool);

#[derive(Default)]
struct Scanner<'a> {
    /// Names of the open elements as the parser will see them (roughly).
    open: Vec<&'a [u8]>,
    /// Open `<svg>`/`<math>` elements: inside them `<x/>` closes itself.
    foreign: usize,
    edits: Vec<Edit>,
}

impl<'a> Scanner<'a> {
    fn run(mut self, b: &'a [u8]) -> Vec<Edit> {
        let mut i = 0;
        while let Some(lt) = find(b, i, b"<") {
            i = self.tag(b, lt);
        }
        self.edits
    }

    /// Handles the markup starting at `b[lt] == '<'`; returns where scanning goes on.
    fn tag(&mut self, b: &'a [u8], lt: usize) -> usize {
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            return find(b, lt + 4, b"-->").map_or(b.len(), |e| e + 3);
        }
        let end_tag = rest.get(1) == Some(&b'/');
        let name_start = lt + 1 + usize::from(end_tag);
        if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // `<!doctype>`, `<?pi>`, a bare `<`: text or a bogus comment, no nesting.
            return if matches!(rest.get(1), Some(b'!' | b'?')) {
                find(b, lt, b">").map_or(b.len(), |e| e + 1)
            } else {
                lt + 1
            };
        }
        let name_end = name_start
            + b[name_start..]
                .iter()
                .position(|c| c.is_ascii_whitespace() || matches!(c, b'/' | b'>'))
                .unwrap_or(b.len() - name_start);
        let name = &b[name_start..name_end];
        let close = tag_end(b, name_end);
        let self_closing = close >= 2 && b[close - 2] == b'/';
        if end_tag {
            self.end(name, (lt, close));
            close
        } else {
            self.start(name, (lt, close), self_closing);
            raw_text_end(b, name, close)
        }
    }

    fn start(&mut self, name: &'a [u8], range: (usize, usize), self_closing: bool) {
        if is_void(name) || (self_closing && self.foreign > 0) {
            return;
        }
        if let Some(top) = self.open.last() {
            if implied_end(top, name) {
                self.pop();
            }
        }
        if self.open.len() >= MAX_DEPTH {
            self.edits.push((range, is_block(name)));
        }
        if is_foreign(name) {
            self.foreign += 1;
        }
        self.open.push(name);
    }

    fn end(&mut self, name: &[u8], range: (usize, usize)) {
        // Only the top few open elements are searched, to stay linear on soup; an end tag
        // not found there is left for the parser to ignore.
        let window = self.open.len().saturating_sub(8);
        let Some(at) = (window..self.open.len())
            .rev()
            .find(|&i| self.open[i].eq_ignore_ascii_case(name))
        else {
            return;
        };
        if at >= MAX_DEPTH {
            self.edits.push((range, is_block(name)));
        }
        if is_formatting(name) {
            // The adoption agency closes a misnested `</b>` without closing the blocks
            // opened inside it (`<b><div>x</b>` leaves the `<div>` open).
            self.open.remove(at);
            return;
        }
        while self.open.len() > at {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(name) = self.open.pop() {
            if is_foreign(name) {
                self.foreign -= 1;
            }
        }
    }
}

/// Index just past the `>` closing a tag whose name ends at `i`, minding quoted values.
fn tag_end(b: &[u8], mut i: usize) -> usize {
    let mut quote = None;
    while i < b.len() {
        match (quote, b[i]) {
            (None, b'>') => return i + 1,
            (None, q @ (b'"' | b'\'')) => quote = Some(q),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// Where markup resumes after a start tag: past the end tag of a raw-text element.
fn raw_text_end(b: &[u8], name: &[u8], from: usize) -> usize {
    const RAW: [&[u8]; 8] = [
        b"script",
        b"style",
        b"textarea",
        b"title",
        b"xmp",
        b"iframe",
        b"noembed",
        b"noframes",
    ];
    if name.eq_ignore_ascii_case(b"plaintext") {
        return b.len();
    }
    if !RAW.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return from;
    }
    let mut i = from;
    while let Some(lt) = find(b, i, b"</") {
        let candidate = &b[lt + 2..];
        if candidate.len() >= name.len() && candidate[..name.len()].eq_ignore_ascii_case(name) {
            return lt;
        }
        i = lt + 2;
    }
    b.len()
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn is_one_of(name: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn is_void(name: &[u8]) -> bool {
    is_one_of(
        name,
        &[
            b"br", b"img", b"hr", b"input", b"meta", b"link", b"wbr", b"area", b"base", b"col",
            b"embed", b"param", b"source", b"track", b"keygen", b"image",
        ],
    )
}

fn is_formatting(name: &[u8]) -> bool {
    is_one_of(
        name,
        &[
            b"a", b"b", b"big", b"code", b"em", b"font", b"i", b"nobr", b"s", b"small", b"strike",
            b"strong", b"tt", b"u",
        ],
    )
}

fn is_foreign(name: &[u8]) -> bool {
    is_one_of(name, &[b"svg", b"math"])
}

/// Start tags that close the open element on top (the common implied ends).
fn implied_end(top: &[u8], name: &[u8]) -> bool {
    let same = |family: &[&[u8]]| is_one_of(top, family) && is_one_of(name, family);
    (top.eq_ignore_ascii_case(b"p") && is_block(name))
        || same(&[b"li"])
        || same(&[b"dd", b"dt"])
        || same(&[b"td", b"th"])
        || same(&[b"option"])
        || same(&[b"tr"])
}

/// Elements that start a line in the text output (see `walk`), so a flattened one becomes
/// a `<br>`.
fn is_block(name: &[u8]) -> bool {
    is_one_of(
        name,
        &[
            b"p",
            b"div",
            b"li",
            b"ul",
            b"ol",
            b"tr",
            b"table",
            b"blockquote",
            b"pre",
            b"h1",
            b"h2",
            b"h3",
            b"h4",
            b"h5",
            b"h6",
            b"section",
            b"article",
            b"header",
            b"footer",
            b"dl",
            b"dt",
            b"dd",
            b"codeblock",
            b"td",
            b"th",
            b"tbody",
            b"thead",
            b"form",
        ],
    )
}
