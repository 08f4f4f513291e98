//! The output side of the conversion: turns a stream of text runs and structural events
//! (block boundary, `<br>`, table cell, list item, removed mention) into finished lines.
//!
//! It owns every rule about spacing, so the tree walk never has to look at characters:
//! whitespace collapsed within a line, line-edge spaces trimmed, at most one blank line in a
//! row, none at the start or end, list prefixes, and table cells kept on their row.

use super::chars::{classify, is_stable_starter, Class};
use super::tidy::{close_holes, Hole, HoleKind};

/// Buffers reused from one message to the next; only the finished text is allocated anew.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    line: String,
    holes: Vec<Hole>,
    tidy: String,
    lists: Vec<List>,
}

impl Buffers {
    /// A 2 MB message should not pin 2 MB per thread for the rest of the run.
    pub(super) fn trim(&mut self) {
        const KEEP: usize = 64 * 1024;
        for s in [&mut self.line, &mut self.tidy] {
            if s.capacity() > KEEP {
                s.clear();
                s.shrink_to(KEEP);
            }
        }
        if self.holes.capacity() > KEEP {
            self.holes = Vec::new();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct List {
    ordered: bool,
    /// Number of the next `<li>` of an ordered list.
    next: u32,
    /// The marker of the current item, until its first line is printed.
    marker: Option<u32>,
}

pub(super) struct Lines<'b> {
    out: String,
    buf: &'b mut Buffers,
    /// Whitespace seen since the last printed character of the line.
    pending_space: bool,
    /// The line exists even if it ends up empty (a `<br>`, or a `&nbsp;`).
    has_box: bool,
    /// The line started inside code: its leading spaces are indentation, not noise.
    verbatim_start: bool,
    /// A blank line is owed before the next printed line.
    pending_blank: bool,
    /// Inside a table cell, line breaks become spaces so the row stays one line.
    cell_depth: usize,
    /// Drop the newline right after the start of a code block, as `<pre>` does.
    skip_newline: bool,
    /// Line length where the last kept mention ended, to keep two adjacent ones apart.
    mention_end: Option<usize>,
    /// A character came by that NFC might change (see `is_stable_starter`).
    check_nfc: bool,
}

impl<'b> Lines<'b> {
    pub(super) fn new(buf: &'b mut Buffers, capacity: usize) -> Self {
        buf.line.clear();
        buf.holes.clear();
        buf.lists.clear();
        Lines {
            out: String::with_capacity(capacity),
            buf,
            pending_space: false,
            has_box: false,
            verbatim_start: false,
            pending_blank: false,
            cell_depth: 0,
            skip_newline: false,
            mention_end: None,
            check_nfc: false,
        }
    }

    /// Ordinary text: whitespace runs collapse to one space.
    pub(super) fn text(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // Runs of printable ASCII, most of any message, go in as one slice.
            let run = bytes[i..]
                .iter()
                .take_while(|b| matches!(b, b'!'..=b'~'))
                .count();
            if run > 0 {
                self.push_str(&s[i..i + run]);
                i += run;
                continue;
            }
            let Some(c) = s[i..].chars().next() else {
                break;
            };
            i += c.len_utf8();
            match classify(c) {
                Class::Keep => self.push_char(c),
                Class::Space => self.pending_space = true,
                Class::HardSpace => {
                    self.pending_space = true;
                    self.has_box = true;
                }
                Class::Drop => {}
            }
        }
        self.skip_newline = false;
    }

    /// Code: spaces and tabs kept as written, every newline ends a line.
    pub(super) fn verbatim(&mut self, s: &str) {
        for c in s.chars() {
            if std::mem::take(&mut self.skip_newline) && c == '\n' {
                continue;
            }
            match (c, classify(c)) {
                ('\n', _) => self.hard_break(),
                ('\r', _) => {}
                (' ' | '\t', _) => self.push_verbatim(c),
                (_, Class::Space | Class::HardSpace) => self.push_verbatim(' '),
                (_, Class::Keep) => self.push_char(c),
                (_, Class::Drop) => {}
            }
        }
    }

    pub(super) fn start_verbatim(&mut self) {
        self.block_boundary();
        self.skip_newline = true;
    }

    fn push_char(&mut self, c: char) {
        self.check_nfc |= !is_stable_starter(c);
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    fn push_str(&mut self, s: &str) {
        let line = &mut self.buf.line;
        if self.pending_space && !line.is_empty() && !line.ends_with('\t') {
            line.push(' ');
        }
        self.pending_space = false;
        line.push_str(s);
    }

    fn push_verbatim(&mut self, c: char) {
        if self.cell_depth > 0 {
            self.pending_space = true;
            return;
        }
        if self.buf.line.is_empty() {
            self.verbatim_start = true;
        }
        self.pending_space = false;
        self.buf.line.push(c);
    }

    /// End of a block: ends the line if it has anything in it.
    pub(super) fn block_boundary(&mut self) {
        if self.cell_depth > 0 {
            self.pending_space = true;
        } else {
            self.end_line(false);
        }
    }

    /// `<br>` or a newline in code: ends the line even when it is empty.
    pub(super) fn hard_break(&mut self) {
        if self.cell_depth > 0 {
            self.pending_space = true;
        } else {
            self.end_line(true);
        }
    }

    /// Something dropped here (a mention, an emoji, an image): remembered so the words and
    /// punctuation around it can be joined properly when the line ends (see `tidy`).
    pub(super) fn hole(&mut self, kind: HoleKind) {
        self.buf.holes.push(Hole {
            at: self.buf.line.len(),
            kind,
        });
    }

    /// Two kept mentions with nothing between them are two names (`<at>Megan</at><at>Alex
    /// </at>` reads `Megan Alex`); a name split over tags comes with its spaces already.
    pub(super) fn start_kept_mention(&mut self) {
        if self.mention_end == Some(self.buf.line.len()) {
            self.pending_space = true;
        }
    }

    pub(super) fn end_kept_mention(&mut self) {
        self.mention_end = Some(self.buf.line.len());
    }

    /// Start of a table cell that is not the first of its row.
    pub(super) fn cell_separator(&mut self) {
        self.pending_space = false;
        self.buf.line.push('\t');
    }

    pub(super) fn enter_cell(&mut self) {
        self.cell_depth += 1;
    }

    pub(super) fn leave_cell(&mut self) {
        self.cell_depth = self.cell_depth.saturating_sub(1);
    }

    pub(super) fn open_list(&mut self, ordered: bool, start: u32) {
        self.block_boundary();
        self.buf.lists.push(List {
            ordered,
            next: start,
            marker: None,
        });
    }

    pub(super) fn close_list(&mut self) {
        self.block_boundary();
        self.buf.lists.pop();
    }

    /// `<li>`, with its `value` attribute when it has one.
    pub(super) fn open_item(&mut self, value: Option<u32>) {
        self.block_boundary();
        if let Some(list) = self.buf.lists.last_mut() {
            let n = value.unwrap_or(list.next);
            list.marker = Some(n);
            list.next = n.saturating_add(1);
        }
    }

    fn end_line(&mut self, forced: bool) {
        let had_holes = !self.buf.holes.is_empty();
        if had_holes {
            close_holes(&mut self.buf.line, &self.buf.holes, &mut self.buf.tidy);
        }
        let line = &self.buf.line;
        let mut text = line.trim_end_matches([' ', '\t']);
        if !self.verbatim_start {
            text = text.trim_start_matches(' ');
        }
        if !text.is_empty() {
            self.print(text.len(), line.len() - line.trim_start_matches(' ').len());
        } else if (forced || self.has_box) && !had_holes && !self.out.is_empty() {
            self.pending_blank = true;
        }
        self.buf.line.clear();
        self.buf.holes.clear();
        self.pending_space = false;
        self.has_box = false;
        self.verbatim_start = false;
        self.mention_end = None;
    }

    /// Prints the current line, `len` bytes after `lead` (trimmed) spaces, with its prefix.
    fn print(&mut self, len: usize, lead: usize) {
        if !self.out.is_empty() {
            self.out.push('\n');
            if std::mem::take(&mut self.pending_blank) {
                self.out.push('\n');
            }
        }
        self.print_prefix();
        let start = if self.verbatim_start { 0 } else { lead };
        self.out.push_str(&self.buf.line[start..start + len]);
    }

    /// `- ` / `3. ` on an item's first line, two spaces of indent per nesting level, and
    /// continuation lines of an item aligned under its text.
    fn print_prefix(&mut self) {
        let depth = self.buf.lists.len();
        let Some(list) = self.buf.lists.last_mut() else {
            return;
        };
        let marker = list.marker.take();
        let ordered = list.ordered;
        // Outer items whose first line never came (a list that starts with a nested list)
        // keep no marker for later lines.
        for outer in &mut self.buf.lists {
            outer.marker = None;
        }
        for _ in 1..depth {
            self.out.push_str("  ");
        }
        match marker {
            Some(n) if ordered => {
                self.out.push_str(itoa(n, &mut [0; 10]));
                self.out.push_str(". ");
            }
            Some(_) => self.out.push_str("- "),
            None => self.out.push_str("  "),
        }
    }

    /// The text, trimmed and NFC-normalised.
    pub(super) fn finish(mut self) -> String {
        self.end_line(false);
        if self.check_nfc {
            super::nfc(self.out)
        } else {
            self.out
        }
    }
}

/// Decimal digits of `n` without going through `fmt`.
fn itoa(mut n: u32, digits: &mut [u8; 10]) -> &str {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[i..]).unwrap_or("0")
}
