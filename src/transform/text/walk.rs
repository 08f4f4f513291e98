//! The walk over the parsed tree: decides for each element what it is in a Teams message
//! (a block, a list, a table cell, code, a mention, something to drop) and drives `Lines`.
//!
//! The walk is iterative over an explicit stack of open elements: a message is untrusted
//! input, and `<div>` nested ten thousand deep must not overflow the thread's stack.

use ego_tree::{NodeId, NodeRef};
use scraper::node::Element;
use scraper::{Html, Node};

use super::lines::Lines;
use super::tidy::HoleKind;
use super::TextOptions;

/// What an element does to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing of it is printed, nor of anything inside.
    Skip,
    /// A mention dropped with its name (see `tidy` for the punctuation around it).
    Mention,
    /// A mention whose name is kept.
    KeptMention,
    /// Emoji, images, attachment placeholders: nothing printed, but a word boundary.
    Object,
    /// An `<emoji>` element: an object, except that text inside it (which only an unclosed
    /// `<emoji/>` produces, HTML having no self-closing custom tags) is the author's.
    Emoji,
    /// Prints its content inline.
    Inline,
    /// `<code>`: inline unless it spans lines (then it is a code block).
    Code,
    Block,
    /// `<pre>`, `<codeblock>`: text kept as written.
    Verbatim,
    Break,
    List {
        ordered: bool,
    },
    Item,
    Row,
    Cell,
}

/// What to do when an open element closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    Nothing,
    Block,
    Verbatim,
    /// A `<code>` that turned out to be a code block.
    CodeBlock,
    InlineCode,
    List,
    Row,
    Cell,
    KeptMention,
}

/// Stack frames, reused between messages.
pub(super) type Frames = Vec<(NodeId, Close)>;

pub(super) struct Walk<'o, 'l, 'b> {
    opts: &'o TextOptions,
    /// `<at id>`s (or mention `itemid`s) always dropped: opted-out people.
    hidden: &'o [String],
    lines: &'l mut Lines<'b>,
    /// Depth of code blocks we are in: text is verbatim while > 0.
    verbatim: usize,
    /// Depth of `<code>` elements, so a nested one is not rescanned for line breaks.
    code: usize,
    /// Cells seen so far in each open table row.
    rows: Vec<u32>,
}

impl<'o, 'l, 'b> Walk<'o, 'l, 'b> {
    pub(super) fn new(
        opts: &'o TextOptions,
        hidden: &'o [String],
        lines: &'l mut Lines<'b>,
    ) -> Self {
        Walk {
            opts,
            hidden,
            lines,
            verbatim: 0,
            code: 0,
            rows: Vec::new(),
        }
    }

    pub(super) fn run(&mut self, html: &Html, stack: &mut Frames) {
        stack.clear();
        let mut next = html.tree.root().first_child();
        loop {
            if let Some(node) = next {
                next = match self.open(node) {
                    Some((close, Some(child))) => {
                        stack.push((node.id(), close));
                        Some(child)
                    }
                    Some((close, None)) => {
                        self.close(close);
                        node.next_sibling()
                    }
                    None => node.next_sibling(),
                };
                continue;
            }
            let Some((id, close)) = stack.pop() else {
                break;
            };
            self.close(close);
            next = html.tree.get(id).and_then(|n| n.next_sibling());
        }
    }

    /// Handles the start of `node`; returns how to close it and the child to descend into,
    /// or `None` to go on with the next sibling.
    fn open<'t>(&mut self, node: NodeRef<'t, Node>) -> Option<(Close, Option<NodeRef<'t, Node>>)> {
        match node.value() {
            Node::Text(text) => {
                if self.verbatim > 0 {
                    self.lines.verbatim(text);
                } else {
                    self.lines.text(text);
                }
                None
            }
            Node::Element(el) => {
                let kind = match kind(el, self.opts) {
                    Kind::KeptMention if self.is_hidden(el) => Kind::Mention,
                    k => k,
                };
                let close = self.open_element(kind, el, node)?;
                Some((close, first_child(kind, el, node)))
            }
            Node::Document | Node::Fragment => Some((Close::Nothing, node.first_child())),
            Node::Comment(_) | Node::Doctype(_) | Node::ProcessingInstruction(_) => None,
        }
    }

    /// A mention of someone who opted out: `<at id>` or an older client's `itemid`.
    fn is_hidden(&self, el: &Element) -> bool {
        !self.hidden.is_empty()
            && [attr(el, "id"), attr(el, "itemid")]
                .into_iter()
                .flatten()
                .any(|id| self.hidden.iter().any(|h| h == id.trim()))
    }

    fn open_element(&mut self, kind: Kind, el: &Element, node: NodeRef<'_, Node>) -> Option<Close> {
        Some(match kind {
            Kind::Skip => return None,
            Kind::Mention => {
                self.lines.hole(HoleKind::Mention);
                return None;
            }
            Kind::Object | Kind::Emoji => {
                self.lines.hole(HoleKind::Object);
                Close::Nothing
            }
            Kind::Inline => Close::Nothing,
            Kind::KeptMention => {
                self.lines.start_kept_mention();
                Close::KeptMention
            }
            Kind::Code => return Some(self.open_code(node)),
            Kind::Block => {
                self.lines.block_boundary();
                Close::Block
            }
            Kind::Verbatim => {
                self.start_verbatim();
                Close::Verbatim
            }
            Kind::Break => {
                self.lines.hard_break();
                return None;
            }
            Kind::List { ordered } => {
                self.lines
                    .open_list(ordered, number_attr(el, "start").unwrap_or(1));
                Close::List
            }
            Kind::Item => {
                self.lines.open_item(number_attr(el, "value"));
                Close::Block
            }
            Kind::Row => {
                self.lines.block_boundary();
                self.rows.push(0);
                Close::Row
            }
            Kind::Cell => {
                self.open_cell();
                Close::Cell
            }
        })
    }

    /// `<code>` is a code block when it spans lines outside one already; checked once for
    /// the outermost `<code>`, so nested ones cost nothing more.
    fn open_code(&mut self, node: NodeRef<'_, Node>) -> Close {
        let block = self.verbatim == 0 && self.code == 0 && spans_lines(node);
        self.code += 1;
        if block {
            self.start_verbatim();
            Close::CodeBlock
        } else {
            Close::InlineCode
        }
    }

    fn start_verbatim(&mut self) {
        self.verbatim += 1;
        self.lines.start_verbatim();
    }

    fn open_cell(&mut self) {
        if let Some(cells) = self.rows.last_mut() {
            if *cells > 0 {
                self.lines.cell_separator();
            }
            *cells += 1;
        }
        self.lines.enter_cell();
    }

    fn close(&mut self, close: Close) {
        match close {
            Close::Nothing => {}
            Close::Block => self.lines.block_boundary(),
            Close::Verbatim => {
                self.verbatim = self.verbatim.saturating_sub(1);
                self.lines.block_boundary();
            }
            Close::CodeBlock => {
                self.code = self.code.saturating_sub(1);
                self.close(Close::Verbatim);
            }
            Close::InlineCode => self.code = self.code.saturating_sub(1),
            Close::List => self.lines.close_list(),
            Close::Row => {
                self.rows.pop();
                self.lines.block_boundary();
            }
            Close::Cell => self.lines.leave_cell(),
            Close::KeptMention => self.lines.end_kept_mention(),
        }
    }
}

/// The first child to walk into: an `<emoji>` whose text repeats its `alt` skips that text.
fn first_child<'t>(kind: Kind, el: &Element, node: NodeRef<'t, Node>) -> Option<NodeRef<'t, Node>> {
    let first = node.first_child()?;
    if kind != Kind::Emoji {
        return Some(first);
    }
    let alt = attr(el, "alt").unwrap_or("").trim();
    match first.value() {
        Node::Text(t) if !alt.is_empty() && t.trim() == alt => first.next_sibling(),
        _ => Some(first),
    }
}

fn kind(el: &Element, opts: &TextOptions) -> Kind {
    if let Some(itemtype) = attr(el, "itemtype") {
        if let Some(kind) = itemtype_kind(itemtype, opts) {
            return kind;
        }
    }
    match el.name() {
        "at" => mention(opts),
        "emoji" | "customemoji" => Kind::Emoji,
        "img" | "attachment" | "image" | "picture" | "video" | "audio" | "input" => Kind::Object,
        "code" => Kind::Code,
        "pre" | "codeblock" | "listing" | "xmp" | "plaintext" => Kind::Verbatim,
        "br" => Kind::Break,
        "ul" | "menu" | "dir" => Kind::List { ordered: false },
        "ol" => Kind::List { ordered: true },
        "li" => Kind::Item,
        "tr" => Kind::Row,
        "td" | "th" => Kind::Cell,
        "script" | "style" | "template" | "head" | "title" | "noscript" | "iframe" | "object"
        | "embed" | "svg" | "math" | "select" | "datalist" | "textarea" | "rp" => Kind::Skip,
        name if is_block(name) => Kind::Block,
        _ => Kind::Inline,
    }
}

/// Teams marks quoted replies, mentions and emoji with schema.skype.com item types, whatever
/// the element (`<blockquote>` for replies, `<span>` for mentions in older clients, `<img>`
/// for emoji).
fn itemtype_kind(itemtype: &str, opts: &TextOptions) -> Option<Kind> {
    let (_, name) = itemtype.rsplit_once("schema.skype.com/")?;
    match name.trim_end_matches('/') {
        n if n.eq_ignore_ascii_case("Reply") => Some(Kind::Skip),
        n if n.eq_ignore_ascii_case("Mention") => Some(mention(opts)),
        n if n.eq_ignore_ascii_case("Emoji") => Some(Kind::Emoji),
        _ => None,
    }
}

fn mention(opts: &TextOptions) -> Kind {
    if opts.keep_mention_names {
        Kind::KeptMention
    } else {
        Kind::Mention
    }
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "blockquote"
            | "table"
            | "thead"
            | "tbody"
            | "tfoot"
            | "caption"
            | "hr"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "address"
            | "article"
            | "aside"
            | "center"
            | "details"
            | "dialog"
            | "dd"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "header"
            | "hgroup"
            | "legend"
            | "main"
            | "nav"
            | "section"
            | "summary"
            | "body"
            | "option"
            | "optgroup"
    )
}

/// Whether a `<code>` element's text spans lines (a newline or a `<br>` inside).
fn spans_lines(node: NodeRef<'_, Node>) -> bool {
    node.descendants().any(|d| match d.value() {
        Node::Text(t) => t.contains('\n'),
        Node::Element(e) => e.name() == "br",
        _ => false,
    })
}

/// Attribute lookup by name without interning the name (`Element::attr` creates an atom).
fn attr<'e>(el: &'e Element, name: &str) -> Option<&'e str> {
    el.attrs().find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn number_attr(el: &Element, name: &str) -> Option<u32> {
    attr(el, name)?.trim().parse().ok()
}
