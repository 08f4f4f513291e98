//! The input as the parser gets it: the same markup with dead weight taken out.
//!
//! - **Attributes the walk never reads.** Teams bodies are mostly attributes: hosted-content
//!   `src` URLs, `style`, `itemid`, `href` plus a `title` that repeats it. html5ever reads
//!   them one character at a time and interns every name, so dropping all but [`KEPT`] before
//!   the parse roughly doubles throughput. Links keep their text, not their target, anyway.
//! - **Nesting past [`MAX_DEPTH`].** html5ever looks for an open `<p>` through the whole
//!   stack of open elements on every block start tag, so 10 000 nested `<div>`s cost 10⁸
//!   steps (seconds for nested lists). No Teams client nests anywhere near the cap; a start
//!   tag past it becomes a `<br>` if it is a block (its content still gets its own line) and
//!   nothing otherwise, and its end tag likewise.
//!
//! Tags are found by the HTML tokenizer's own rules for tag names and attributes (spec
//! §13.2.5.6–.40), so a tag ends exactly where html5ever ends it and a kept attribute is
//! copied byte for byte. Comments, raw-text elements (`<script>`, `<style>`, `<xmp>`, …) and
//! `<plaintext>` are copied untouched. Where this scan could still differ from the parser
//! (script escapes, CDATA in SVG), the content is dropped by the walk in any case. The
//! depth model (implied ends of `p`, `li`, cells) is approximate: where it misjudges, all
//! that changes is where a line breaks in absurdly deep input.

/// Deepest element nesting passed to the parser.
pub(super) const MAX_DEPTH: usize = 256;

/// The attributes `walk` reads.
const KEPT: [&[u8]; 4] = [b"itemtype", b"alt", b"start", b"value"];

/// The element stack `prepare` models: each open element's name and what it is.
pub(super) type OpenElements = Vec<(Name, u16)>;

/// Writes the prepared form of `html` into `out`; `open` is scratch for the element stack.
pub(super) fn prepare(html: &str, out: &mut String, open: &mut OpenElements) {
    out.clear();
    out.reserve(html.len());
    open.clear();
    Prepare {
        src: html,
        out,
        copied: 0,
        open,
        foreign: 0,
        depth_only: false,
        attrs: [(0, 0); KEPT.len()],
    }
    .run();
}

struct Prepare<'a, 'o> {
    src: &'a str,
    out: &'o mut String,
    /// Input up to here is in `out` (or was deliberately left out).
    copied: usize,
    /// The open elements, as the parser will see them (roughly).
    open: &'o mut OpenElements,
    /// Open `<svg>`/`<math>` elements: inside them `<x/>` closes itself.
    foreign: usize,
    /// Only depth is still capped: after `<svg>`, `<math>` or `<select>` the parser's tree
    /// builder may tokenize differently from this scan (no raw text inside foreign content,
    /// start tags ignored in a select), so attributes and `&nbsp;` are left alone. Teams
    /// sends none of them.
    depth_only: bool,
    /// Kept attributes of the current tag (byte ranges), at most one per kept name.
    attrs: [(usize, usize); KEPT.len()],
}

/// A tag as the tokenizer reads it.
struct Tag {
    name: (usize, usize),
    packed: Name,
    /// Flags of the name (see `kind`).
    kind: u16,
    end: usize,
    self_closing: bool,
    /// Whether any attribute is dropped (else the tag is copied as it is).
    dropped: bool,
    kept: usize,
}

impl Prepare<'_, '_> {
    fn run(mut self) {
        let mut i = 0;
        while let Some(offset) = self.src[i..].find('<') {
            self.text(i, i + offset);
            i = self.markup(i + offset);
        }
        self.text(i, self.src.len());
        self.out.push_str(&self.src[self.copied..]);
    }

    /// Text between tags (never raw text or comments, which `markup` steps over).
    fn text(&mut self, from: usize, to: usize) {
        if self.depth_only {
            return;
        }
        const NBSP: &[u8] = b"&nbsp;";
        // A `&` first (memchr), then the name: cheaper than a substring search per segment.
        let mut at = from;
        while let Some(offset) = self.src[at..to].find('&') {
            let amp = at + offset;
            at = amp + 1;
            if self.src.as_bytes()[amp..to].starts_with(NBSP) {
                self.out.push_str(&self.src[self.copied..amp]);
                self.out.push('\u{A0}');
                self.copied = amp + NBSP.len();
                at = self.copied;
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        self.src.as_bytes()
    }

    /// Handles the markup at `lt` (a `<`); returns where scanning goes on.
    fn markup(&mut self, lt: usize) -> usize {
        let b = self.bytes();
        match (b.get(lt + 1), b.get(lt + 2)) {
            (Some(b'!'), _) => self.comment_end(lt),
            (Some(b'?'), _) => bogus_end(b, lt),
            (Some(b'/'), Some(c)) if c.is_ascii_alphabetic() => {
                let tag = self.tag(lt + 2);
                if tag.end <= self.src.len() {
                    self.end_tag(lt, &tag);
                }
                tag.end.min(self.src.len())
            }
            (Some(b'/'), _) => bogus_end(b, lt),
            (Some(c), _) if c.is_ascii_alphabetic() => {
                let tag = self.tag(lt + 1);
                self.start_tag(lt, &tag);
                self.raw_text_end(&tag)
            }
            _ => lt + 1,
        }
    }

    fn start_tag(&mut self, lt: usize, tag: &Tag) {
        if tag.end > self.src.len() {
            return; // Cut off by the end of input: the parser drops it; so do we, as is.
        }
        let kind = tag.kind;
        if kind & VOID != 0 || (tag.self_closing && self.foreign > 0) {
            return self.rewrite(lt, tag);
        }
        if let Some(&(_, top)) = self.open.last() {
            if implied_end(top, kind) {
                self.pop();
            }
        }
        if kind & FOREIGN != 0 {
            self.foreign += 1;
        }
        self.depth_only |= kind & (FOREIGN | SELECT) != 0;
        self.open.push((tag.packed, kind));
        if self.open.len() > MAX_DEPTH {
            self.flatten(lt, tag.end, kind & BLOCK != 0);
        } else {
            self.rewrite(lt, tag);
        }
    }

    fn end_tag(&mut self, lt: usize, tag: &Tag) {
        let (name, kind) = (tag.packed, tag.kind);
        // Only the top few open elements are searched, to stay linear on tag soup; an end
        // tag not found there is left for the parser to ignore.
        let window = self.open.len().saturating_sub(8);
        let Some(at) = (window..self.open.len())
            .rev()
            .find(|&i| self.open[i].0 == name)
        else {
            return;
        };
        if at >= MAX_DEPTH {
            self.flatten(lt, tag.end, kind & BLOCK != 0);
        }
        if kind & FORMATTING != 0 {
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
        if let Some((_, kind)) = self.open.pop() {
            if kind & FOREIGN != 0 {
                self.foreign -= 1;
            }
        }
    }

    /// Replaces the tag at `lt..end` by a `<br>` (a flattened block) or by nothing.
    fn flatten(&mut self, lt: usize, end: usize, block: bool) {
        self.out.push_str(&self.src[self.copied..lt]);
        if block {
            self.out.push_str("<br>");
        }
        self.copied = end;
    }

    /// Writes a start tag with only its kept attributes, if it had others.
    fn rewrite(&mut self, lt: usize, tag: &Tag) {
        if !tag.dropped || self.depth_only {
            return;
        }
        let src = self.src;
        self.out.push_str(&src[self.copied..lt]);
        self.out.push('<');
        self.out.push_str(&src[tag.name.0..tag.name.1]);
        for &(start, end) in &self.attrs[..tag.kept] {
            self.out.push(' ');
            self.out.push_str(&src[start..end]);
        }
        // The space keeps an unquoted value from taking the `/` in.
        self.out
            .push_str(if tag.self_closing { " />" } else { ">" });
        self.copied = tag.end;
    }

    /// Reads a tag whose name starts at `start`, by the tokenizer's states from tag name to
    /// the closing `>`. `end` is past the input if the input ends inside the tag.
    fn tag(&mut self, start: usize) -> Tag {
        let b = self.src.as_bytes();
        let name_end = skip(b, start, |c| !is_space(c) && c != b'/' && c != b'>');
        let packed = Name::new(&b[start..name_end]);
        let mut tag = Tag {
            name: (start, name_end),
            packed,
            kind: kind(packed),
            end: usize::MAX,
            self_closing: false,
            dropped: false,
            kept: 0,
        };
        let mut i = name_end;
        loop {
            // Before attribute name.
            i = skip(b, i, is_space);
            match b.get(i) {
                None => return tag,
                Some(b'>') => {
                    tag.end = i + 1;
                    return tag;
                }
                Some(b'/') => {
                    if b.get(i + 1) == Some(&b'>') {
                        tag.end = i + 2;
                        tag.self_closing = true;
                        return tag;
                    }
                    i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let attr_start = i;
            // Attribute name: its first character may be `=` (a parse error, kept as name).
            let name_end = skip(b, i + 1, |c| {
                !is_space(c) && !matches!(c, b'/' | b'>' | b'=')
            });
            i = skip(b, name_end, is_space);
            let attr_end = if b.get(i) == Some(&b'=') {
                i = value_end(self.src, skip(b, i + 1, is_space));
                i
            } else {
                name_end
            };
            self.attribute(&mut tag, (attr_start, name_end), attr_end.min(b.len()));
            if attr_end > b.len() {
                return tag;
            }
        }
    }

    fn attribute(&mut self, tag: &mut Tag, name: (usize, usize), end: usize) {
        let name_bytes = &self.src.as_bytes()[name.0..name.1];
        let kept = KEPT.iter().any(|k| name_bytes.eq_ignore_ascii_case(k));
        if kept && tag.kept < self.attrs.len() {
            self.attrs[tag.kept] = (name.0, end);
            tag.kept += 1;
        } else {
            tag.dropped = true;
        }
    }

    /// Past a comment (`<!--…-->`), or a doctype / CDATA / bogus comment (`<!…>`).
    fn comment_end(&self, lt: usize) -> usize {
        let b = self.bytes();
        if !b[lt..].starts_with(b"<!--") {
            return bogus_end(b, lt);
        }
        let body = lt + 4;
        // `<!-->` and `<!--->` are complete (empty) comments.
        for close in [&b">"[..], b"->"] {
            if b[body..].starts_with(close) {
                return body + close.len();
            }
        }
        let mut i = body;
        while let Some(offset) = self.src[i..].find("--") {
            let dashes = i + offset + 2;
            if b[dashes..].starts_with(b">") {
                return dashes + 1;
            }
            if b[dashes..].starts_with(b"!>") {
                return dashes + 2;
            }
            i = dashes - 1;
        }
        b.len()
    }

    /// Where markup resumes after a start tag: at the end tag of a raw-text element.
    fn raw_text_end(&self, tag: &Tag) -> usize {
        let b = self.bytes();
        let from = tag.end.min(b.len());
        let name = &b[tag.name.0..tag.name.1];
        let kind = tag.kind;
        if kind & PLAINTEXT != 0 {
            return b.len();
        }
        // Inside SVG/MathML these are ordinary elements, unless a tag broke out of foreign
        // content first; copying them untouched is right in both cases.
        if kind & RAW == 0 {
            return from;
        }
        let mut i = from;
        while let Some(offset) = self.src[i..].find("</") {
            let lt = i + offset;
            let after = lt + 2 + name.len();
            let candidate = &b[lt + 2..after.min(b.len())];
            if candidate.eq_ignore_ascii_case(name)
                && b.get(after)
                    .is_none_or(|&c| is_space(c) || c == b'/' || c == b'>')
            {
                return lt;
            }
            i = lt + 2;
        }
        b.len()
    }
}

/// Past an attribute value starting at `i` (quoted, or unquoted up to a space or `>`).
fn value_end(src: &str, i: usize) -> usize {
    let b = src.as_bytes();
    match b.get(i) {
        // URLs run to hundreds of bytes: `find` goes through `memchr`.
        Some(&q @ (b'"' | b'\'')) => src[i + 1..]
            .find(char::from(q))
            .map_or(usize::MAX, |p| i + p + 2),
        _ => skip(b, i, |c| !is_space(c) && c != b'>'),
    }
}

/// Past a bogus comment, which ends at the first `>`.
fn bogus_end(b: &[u8], lt: usize) -> usize {
    b[lt..]
        .iter()
        .position(|&c| c == b'>')
        .map_or(b.len(), |p| lt + p + 1)
}

fn skip(b: &[u8], i: usize, keep_going: impl Fn(u8) -> bool) -> usize {
    let start = i.min(b.len());
    start
        + b[start..]
            .iter()
            .position(|&c| !keep_going(c))
            .unwrap_or(b.len() - start)
}

/// The tokenizer's whitespace (`\r` is a newline by then).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0C')
}

/// An element name compared without case: up to 15 bytes and the length, packed in one
/// integer. Case is folded by setting bit 5 of every byte, which lowercases ASCII letters and
/// leaves digits alone; a few odd bytes fold onto others (`\x11` onto `1`), and names longer
/// than 15 bytes compare by their start. Both only blur the scan's rough depth model, or make
/// it copy something untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Name(u128);

impl Name {
    const fn new(bytes: &[u8]) -> Self {
        let len = if bytes.len() < 15 { bytes.len() } else { 15 };
        let mut packed = [0u8; 16];
        packed[0] = if bytes.len() < 255 {
            bytes.len() as u8
        } else {
            255
        };
        let mut i = 0;
        while i < len {
            packed[i + 1] = bytes[i] | 0x20;
            i += 1;
        }
        Name(u128::from_le_bytes(packed))
    }
}

// What an element is to the scan, as bit flags.
const VOID: u16 = 1;
/// Starts a line in the text output (see `walk`): a flattened one becomes a `<br>`.
const BLOCK: u16 = 1 << 1;
const FORMATTING: u16 = 1 << 2;
const FOREIGN: u16 = 1 << 3;
const SELECT: u16 = 1 << 4;
/// Raw text or RCDATA: no markup inside until its end tag (`noscript` too: scraper parses
/// with scripting enabled).
const RAW: u16 = 1 << 5;
const PLAINTEXT: u16 = 1 << 6;
const P: u16 = 1 << 7;
const LI: u16 = 1 << 8;
const DD_DT: u16 = 1 << 9;
const CELL: u16 = 1 << 10;
const OPTION: u16 = 1 << 11;
const TR: u16 = 1 << 12;

/// Flags of an element name, case-insensitively (on the folded bytes of its packed form).
fn kind(name: Name) -> u16 {
    let packed = name.0.to_le_bytes();
    let Some(lower) = packed.get(1..=usize::from(packed[0])) else {
        return 0;
    };
    match lower {
        b"br" | b"img" | b"hr" | b"input" | b"meta" | b"link" | b"wbr" | b"area" | b"base"
        | b"col" | b"embed" | b"param" | b"source" | b"track" | b"keygen" | b"image" => VOID,
        b"p" => BLOCK | P,
        b"li" => BLOCK | LI,
        b"dd" | b"dt" => BLOCK | DD_DT,
        b"td" | b"th" => BLOCK | CELL,
        b"tr" => BLOCK | TR,
        b"div" | b"ul" | b"ol" | b"table" | b"blockquote" | b"pre" | b"h1" | b"h2" | b"h3"
        | b"h4" | b"h5" | b"h6" | b"section" | b"article" | b"header" | b"footer" | b"dl"
        | b"codeblock" | b"tbody" | b"thead" | b"form" => BLOCK,
        b"a" | b"b" | b"big" | b"code" | b"em" | b"font" | b"i" | b"nobr" | b"s" | b"small"
        | b"strike" | b"strong" | b"tt" | b"u" => FORMATTING,
        b"svg" | b"math" => FOREIGN,
        b"select" => SELECT,
        b"option" => OPTION,
        b"script" | b"style" | b"textarea" | b"title" | b"xmp" | b"iframe" | b"noembed"
        | b"noframes" | b"noscript" => RAW,
        b"plaintext" => PLAINTEXT,
        _ => 0,
    }
}

/// Start tags that close the open element on top (the common implied ends).
fn implied_end(top: u16, kind: u16) -> bool {
    (top & P != 0 && kind & BLOCK != 0)
        || [LI, DD_DT, CELL, OPTION, TR]
            .iter()
            .any(|family| top & kind & family != 0)
}

#[cfg(test)]
mod tests {
    //! `prepare` must not change what the text says: on input shallower than the cap, the
    //! text of the prepared input equals the text of the original, whatever the markup.

    use proptest::prelude::*;

    use super::super::{convert, html_to_text, with_scratch, TextOptions};

    fn unprepared(html: &str, opts: &TextOptions) -> String {
        with_scratch(|scratch| convert(html, opts, scratch))
    }

    /// Markup aimed at the tokenizer's corners: attribute quoting, kept and dropped
    /// attributes, comments, raw text, self-closing, input ending inside a tag.
    fn piece() -> impl Strategy<Value = String> {
        let fixed = prop::sample::select(vec![
            "<p>",
            "</p>",
            "<div class=x>",
            "</div>",
            "<img src=\"a.png\" alt=\"pic\">",
            "<emoji alt=\"x\" title=t>",
            "<emoji ALT='y'/>",
            "</emoji>",
            "x",
            "y",
            "pic",
            "<at id=0>",
            "</at>",
            "<span itemscope itemtype=\"http://schema.skype.com/Mention\">",
            "<blockquote itemtype=\"http://schema.skype.com/Reply\" itemid=1>",
            "</blockquote>",
            "<ol start=3 type=a>",
            "<ol start=\"2\"/>",
            "</ol>",
            "<li value=9>",
            "<li value>",
            "<a href=http://x/?a=1&b=2 title='t>t'>",
            "</a>",
            "<a href=\"x\"title=\"y\">",
            "<b =x>",
            "<b a=b=c>",
            "<b a = \"1\" / >",
            "<b a/b>",
            "<b\"q=1>",
            "<i a='>'",
            "<u a=\"",
            "<p alt=1 alt=2>",
            "<p/>",
            "<br/>",
            "<br a=1/>",
            "<svg><g/></svg>",
            "<math>",
            "<!---->",
            "<!-->",
            "<!--->",
            "<!-- a --!> b -->",
            "<!-- <b title=1> -->",
            "<!",
            "<!x>",
            "<?pi x=1>",
            "</>",
            "</ x>",
            "</b a=1>",
            "</div class=\"z\">",
            "<script>a<b c=1></script>",
            "<script>",
            "</script >",
            "<style>p{}</style>",
            "<xmp><b x=1>k</xmp>",
            "<textarea>t<b x>",
            "<title>x</title>",
            "<noembed><i q=1>n</noembed>",
            "<plaintext><b x=1>",
            "<![CDATA[<b x=1>]]>",
            "<pre x=1>\n a</pre>",
            "<code c=1>",
            "</code>",
            "<table border=1><tr><td a=1>",
            "</td>",
            "&amp;",
            "&nbsp;",
            "&",
            "<",
            ">",
            "=",
            "\"",
            "'",
            "/",
            " ",
            "\n",
            "\t",
            "é",
            "ب",
            "<IMG SRC=1 ALT=2>",
            "<P STYLE=x>",
            "<x-y a=1>",
            "<at\tid=1\n>",
            "<select>",
            "<noscript><b x=1>",
            "</noscript>",
            "<option o=1>",
            "<template t=1>",
            "</template>",
        ]);
        prop_oneof![6 => fixed.prop_map(str::to_owned), 1 => "[<>=\"' /a-z!-]{0,12}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn prepared_input_reads_the_same(pieces in prop::collection::vec(piece(), 0..40)) {
            let html = pieces.concat();
            for keep in [false, true] {
                let opts = TextOptions { keep_mention_names: keep };
                prop_assert_eq!(html_to_text(&html, &opts), unprepared(&html, &opts), "{:?}", html);
            }
        }
    }

    /// Inputs where foreign content once made the scan and the parser disagree on what is
    /// raw text (a tag breaking out of `<math>` re-enables `<xmp>` and `<plaintext>`).
    #[test]
    fn foreign_content_regressions() {
        let mention = "<span itemscope itemtype=\"http://schema.skype.com/Mention\">";
        let cases = [
            "<math><xmp><b x=1>k</xmp><xmp><b x=1>k</xmp>".to_owned(),
            format!("<math><script><xmp><b x=1>k</xmp><plaintext><b x=1><script>a<b c=1></script>{mention}"),
            "<math><script><b =x><plaintext><b x=1></script >&nbsp;".to_owned(),
        ];
        for html in &cases {
            let opts = TextOptions::default();
            assert_eq!(
                html_to_text(html, &opts),
                unprepared(html, &opts),
                "{html:?}"
            );
        }
    }

    #[test]
    fn fixtures_read_the_same() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/html");
        for dir in [dir.to_owned(), format!("{dir}/bodies")] {
            for entry in std::fs::read_dir(dir).expect("fixture dir") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "html") {
                    let html = std::fs::read_to_string(&path).expect("fixture");
                    let opts = TextOptions::default();
                    assert_eq!(
                        html_to_text(&html, &opts),
                        unprepared(&html, &opts),
                        "{path:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn attributes_go_except_the_kept_ones() {
        let mut out = String::new();
        let html =
            "<img src=\"https://x/$value\" ALT=\"a b\" style=\"w\"><p class=x>t</p><ol start=2>";
        super::prepare(html, &mut out, &mut Vec::new());
        assert_eq!(out, "<img ALT=\"a b\"><p>t</p><ol start=2>");
    }
}
