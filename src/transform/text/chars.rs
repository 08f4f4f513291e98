//! Character classes shared by the HTML and plain-text paths: what is whitespace, what is
//! invisible and removed, and which punctuation a removed mention may leave dangling.

/// How one input character reaches the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Printed as is.
    Keep,
    /// Collapsible whitespace (ASCII whitespace and line breaks in HTML text).
    Space,
    /// Whitespace a browser would not collapse away (`&nbsp;`, U+3000, …): printed as a space
    /// like any other, but it makes an otherwise empty line exist (`<p>&nbsp;</p>` is the way
    /// Teams writes a blank line).
    HardSpace,
    /// Removed: control, zero-width and bidi characters.
    Drop,
}

pub(super) fn classify(c: char) -> Class {
    // ASCII is the bulk of every message: decide it without the Unicode tables.
    if c.is_ascii() {
        return match c {
            ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C' => Class::Space,
            '\x00'..='\x1F' | '\x7F' => Class::Drop,
            _ => Class::Keep,
        };
    }
    if is_invisible(c) {
        Class::Drop
    } else if c.is_whitespace() {
        Class::HardSpace
    } else if c.is_control() {
        Class::Drop
    } else {
        Class::Keep
    }
}

/// Zero-width and bidi formatting characters. They carry no words, but they split tokens for
/// the topic extractor (`Q3\u{200B}budget` must read as `Q3budget`, not as two odd tokens),
/// and Teams clients insert them around right-to-left text and pasted content. The soft
/// hyphen is here for the same reason: it is invisible unless a line wraps.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{061C}'
            | '\u{00AD}'
    )
}

/// Punctuation that separates a mention from the sentence (`Ah, @A, I saw`): dropped together
/// with a removed mention when it would otherwise dangle. CJK and Arabic forms included.
pub(super) fn is_separator(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '，' | '、' | '；' | '：' | '،' | '؛')
}

/// Punctuation that attaches to the word before it, so no space goes in front of it.
pub(super) fn is_closing(c: char) -> bool {
    is_separator(c)
        || matches!(
            c,
            '.' | '!'
                | '?'
                | ')'
                | ']'
                | '}'
                | '…'
                | '。'
                | '！'
                | '？'
                | '）'
                | '」'
                | '』'
                | '】'
                | '؟'
                | '।'
        )
}

/// Punctuation that attaches to the word after it, so no space goes behind it.
pub(super) fn is_opening(c: char) -> bool {
    matches!(c, '(' | '[' | '{' | '（' | '「' | '『' | '【')
}

/// The closing bracket matching an opening one, to drop `()` left empty by a mention.
pub(super) fn closer_of(c: char) -> Option<char> {
    Some(match c {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        '（' => '）',
        '「' => '」',
        '『' => '』',
        '【' => '】',
        _ => return None,
    })
}

/// Characters that NFC leaves alone whatever surrounds them: starters (combining class 0)
/// that nothing composes with (below U+0300, Cyrillic letters, kana, CJK ideographs, Hangul
/// syllables). Text made only of these needs no normalisation check, which is most text.
pub(super) fn is_stable_starter(c: char) -> bool {
    matches!(c,
        '\0'..='\u{2FF}'
        | '\u{400}'..='\u{482}'
        | '\u{48A}'..='\u{52F}'
        | '\u{3041}'..='\u{3096}'
        | '\u{30A1}'..='\u{30FA}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7A3}'
    )
}
