//! How the HTML tokenizer delimits markup, for the scan in `prepare`: tags with their
//! attributes (spec §13.2.5.6–.40, so a tag ends exactly where html5ever ends it),
//! comments, raw-text elements, and element names with what the scan needs to know of them.

/// A tag as the tokenizer reads it.
pub(super) struct Tag {
    pub(super) name: (usize, usize),
    pub(super) packed: Name,
    /// Flags of the name (see `kind`).
    pub(super) kind: u16,
    pub(super) end: usize,
    pub(super) self_closing: bool,
    /// Whether any attribute is dropped (else the tag is copied as it is).
    pub(super) dropped: bool,
    pub(super) kept: usize,
}

/// Reads a tag whose name starts at `start`, by the tokenizer's states from tag name to the
/// closing `>` (`end` is past the input if the input ends inside the tag). Each attribute's
/// name range and end go to `attribute`, which says whether it is kept.
pub(super) fn read(
    src: &str,
    start: usize,
    mut attribute: impl FnMut((usize, usize), usize) -> bool,
) -> Tag {
    let b = src.as_bytes();
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
            i = value_end(src, skip(b, i + 1, is_space));
            i
        } else {
            name_end
        };
        if attribute((attr_start, name_end), attr_end.min(b.len())) {
            tag.kept += 1;
        } else {
            tag.dropped = true;
        }
        if attr_end > b.len() {
            return tag;
        }
    }
}

/// Past a comment (`<!--…-->`), or a doctype / CDATA / bogus comment (`<!…>`).
pub(super) fn comment_end(src: &str, lt: usize) -> usize {
    let b = src.as_bytes();
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
    while let Some(offset) = src[i..].find("--") {
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
pub(super) fn raw_text_end(src: &str, tag: &Tag) -> usize {
    let b = src.as_bytes();
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
    while let Some(offset) = src[i..].find("</") {
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
pub(super) fn bogus_end(b: &[u8], lt: usize) -> usize {
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
pub(super) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0C')
}

/// An element name compared without case: up to 15 bytes and the length, packed in one
/// integer. Case is folded by setting bit 5 of every byte, which lowercases ASCII letters and
/// leaves digits alone; a few odd bytes fold onto others (`\x11` onto `1`), and names longer
/// than 15 bytes compare by their start. Both only blur the scan's rough depth model, or make
/// it copy something untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Name(pub(super) u128);

impl Name {
    pub(super) const fn new(bytes: &[u8]) -> Self {
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
pub(super) const VOID: u16 = 1;
/// Starts a line in the text output (see `walk`): a flattened one becomes a `<br>`.
pub(super) const BLOCK: u16 = 1 << 1;
pub(super) const FORMATTING: u16 = 1 << 2;
pub(super) const FOREIGN: u16 = 1 << 3;
pub(super) const SELECT: u16 = 1 << 4;
/// Raw text or RCDATA: no markup inside until its end tag (`noscript` too: scraper parses
/// with scripting enabled).
pub(super) const RAW: u16 = 1 << 5;
pub(super) const PLAINTEXT: u16 = 1 << 6;
pub(super) const P: u16 = 1 << 7;
pub(super) const LI: u16 = 1 << 8;
pub(super) const DD_DT: u16 = 1 << 9;
pub(super) const CELL: u16 = 1 << 10;
pub(super) const OPTION: u16 = 1 << 11;
pub(super) const TR: u16 = 1 << 12;

/// Flags of an element name, case-insensitively (on the folded bytes of its packed form).
pub(super) fn kind(name: Name) -> u16 {
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
