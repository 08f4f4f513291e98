//! The input as the parser gets it: the same markup with dead weight taken out.
//!
//! - **Attributes the walk never reads.** Teams bodies are mostly attributes: hosted-content
//!   `src` URLs, `style`, `href` plus a `title` that repeats it. html5ever reads
//!   them one character at a time and interns every name, so dropping all but [`KEPT`] before
//!   the parse roughly doubles throughput. Links keep their text, not their target, anyway.
//! - **Nesting past [`MAX_DEPTH`].** html5ever looks for an open `<p>` through the whole
//!   stack of open elements on every block start tag, so 10 000 nested `<div>`s cost 10⁸
//!   steps (seconds for nested lists). No Teams client nests anywhere near the cap; a start
//!   tag past it becomes a `<br>` if it is a block (its content still gets its own line) and
//!   nothing otherwise, and its end tag likewise.
//!
//! Tags are found by the HTML tokenizer's own rules for tag names and attributes (see
//! `tags`), so a tag ends exactly where html5ever ends it and a kept attribute is copied
//! byte for byte. Comments, raw-text elements (`<script>`, `<style>`, `<xmp>`, …) and
//! `<plaintext>` are copied untouched. Where this scan could still differ from the parser
//! (script escapes, CDATA in SVG), the content is dropped by the walk in any case. The
//! depth model (implied ends of `p`, `li`, cells) is approximate: where it misjudges, all
//! that changes is where a line breaks in absurdly deep input.

use super::tags::{
    self, bogus_end, Name, Tag, BLOCK, CELL, DD_DT, FOREIGN, FORMATTING, LI, OPTION, P, SELECT, TR,
    VOID,
};

/// Deepest element nesting passed to the parser.
pub(super) const MAX_DEPTH: usize = 256;

/// The attributes `walk` reads.
const KEPT: [&[u8]; 6] = [b"itemtype", b"alt", b"start", b"value", b"id", b"itemid"];

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

    /// Reads the tag whose name starts at `start`, noting its kept attributes in `attrs`.
    fn tag(&mut self, start: usize) -> Tag {
        let (src, attrs) = (self.src, &mut self.attrs);
        let mut kept = 0;
        tags::read(src, start, |name, end| {
            let name_bytes = &src.as_bytes()[name.0..name.1];
            let keep =
                kept < attrs.len() && KEPT.iter().any(|k| name_bytes.eq_ignore_ascii_case(k));
            if keep {
                attrs[kept] = (name.0, end);
                kept += 1;
            }
            keep
        })
    }

    fn bytes(&self) -> &[u8] {
        self.src.as_bytes()
    }

    /// Handles the markup at `lt` (a `<`); returns where scanning goes on.
    fn markup(&mut self, lt: usize) -> usize {
        let b = self.bytes();
        match (b.get(lt + 1), b.get(lt + 2)) {
            (Some(b'!'), _) => tags::comment_end(self.src, lt),
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
                tags::raw_text_end(self.src, &tag)
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
        with_scratch(|scratch| convert(html, opts, &[], scratch))
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
