//! Removes the display names of excluded people from a document's text (DESIGN.md: "no
//! name in the text"), wherever they stand: a kept mention, a name typed without `@`, a
//! name an older client wrote as plain text. A name matches as whole words, without
//! regard to case, with any run of spaces between its words. Only the lines a name was
//! cut from are touched: their spacing and the punctuation left behind are tidied, and
//! such a line that is left empty goes (table tabs, code and indentation elsewhere stay).
//!
//! Mentions of excluded people are dropped by the HTML walk already, whatever their text
//! (a shortened `@Megan` included); this pass catches the rest.

/// Where a name was cut: control characters never survive the text conversion, so this
/// one cannot be part of a message.
const CUT: char = '\u{0}';

/// `text` without any of `names`; `None` when none occurs (the common case: no copy).
pub fn remove_names(text: &str, names: &[String]) -> Option<String> {
    let mut out: Option<String> = None;
    for name in names {
        let words: Vec<Vec<char>> = name
            .split_whitespace()
            .map(|w| w.chars().flat_map(char::to_lowercase).collect())
            .collect();
        if words.is_empty() {
            continue;
        }
        let current = out.as_deref().unwrap_or(text);
        if let Some(cut) = cut_all(current, &words) {
            out = Some(cut);
        }
    }
    out.map(|t| tidy(&t))
}

/// Removes every whole-word occurrence of `words`; `None` when there is none.
fn cut_all(text: &str, words: &[Vec<char>]) -> Option<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut kept = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    let mut found = false;
    while i < chars.len() {
        let boundary_before = i == 0 || !chars[i - 1].1.is_alphanumeric();
        if let Some(end) = boundary_before
            .then(|| match_at(&chars, i, words))
            .flatten()
        {
            kept.push_str(&text[copied..chars[i].0]);
            kept.push(CUT);
            copied = chars.get(end).map_or(text.len(), |c| c.0);
            i = end;
            found = true;
            continue;
        }
        i += 1;
    }
    found.then(|| {
        kept.push_str(&text[copied..]);
        kept
    })
}

/// The index after the name if it starts at `i` and ends at a word boundary.
fn match_at(chars: &[(usize, char)], mut i: usize, words: &[Vec<char>]) -> Option<usize> {
    for (n, word) in words.iter().enumerate() {
        if n > 0 {
            let start = i;
            while chars.get(i).is_some_and(|c| c.1.is_whitespace()) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        let mut w = 0;
        while w < word.len() {
            let (_, c) = *chars.get(i)?;
            // A character may lower-case to several (İ → i̇): compare them all.
            for got in c.to_lowercase() {
                if word.get(w) != Some(&got) {
                    return None;
                }
                w += 1;
            }
            i += 1;
        }
    }
    let boundary_after = chars.get(i).is_none_or(|c| !c.1.is_alphanumeric());
    boundary_after.then_some(i)
}

/// Tidies the lines holding a cut; a line left with nothing of its own goes, and no
/// blank line is left first, last or twice in a row.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        if !line.contains(CUT) {
            lines.push(line.to_string());
            continue;
        }
        let tidied = tidy_line(line);
        if !tidied.trim().is_empty() {
            lines.push(tidied);
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    for l in lines {
        let blank = l.trim().is_empty();
        if blank && out.last().is_none_or(|p| p.trim().is_empty()) {
            continue;
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// One line with cuts: its indentation kept, spaces around the cuts collapsed, no space
/// before `,.;:!?`, and a separator that followed a cut name dropped when nothing of the
/// sentence precedes it (`- Megan: done` → `- done`; `Ask Megan, she knows` keeps it).
fn tidy_line(line: &str) -> String {
    let body = line.trim_start_matches(' ');
    let indent = &line[..line.len() - body.len()];
    let mut l = String::with_capacity(body.len());
    let mut rest = body.chars().peekable();
    while let Some(c) = rest.next() {
        if c != CUT {
            l.push(c);
            continue;
        }
        while rest.peek().is_some_and(|c| *c == ' ') {
            rest.next();
        }
        let before = l.trim_end().chars().last();
        let dangling = before.is_none_or(|b| ",;:(-".contains(b));
        if dangling && rest.peek().is_some_and(|c| ",;:".contains(*c)) {
            rest.next();
        }
        l.push(' ');
    }
    while l.contains("  ") {
        l = l.replace("  ", " ");
    }
    for p in [",", ".", ";", ":", "!", "?"] {
        l = l.replace(&format!(" {p}"), p);
    }
    let l = l.trim_start_matches([',', ';', ':', ' ']).trim_end();
    if l.chars().all(|c| !c.is_alphanumeric()) {
        return String::new();
    }
    format!("{indent}{l}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn whole_names_go_in_any_case_and_spacing() {
        let n = names(&["Megan Bowen"]);
        assert_eq!(
            remove_names("Ask megan  BOWEN, she knows.", &n).as_deref(),
            Some("Ask, she knows.")
        );
        assert_eq!(
            remove_names("Megan Bowen\nThe budget is final.", &n).as_deref(),
            Some("The budget is final.")
        );
        assert_eq!(
            remove_names("Thanks Megan\u{a0}Bowen!", &n).as_deref(),
            Some("Thanks!")
        );
    }

    #[test]
    fn parts_of_words_and_other_names_stay() {
        let n = names(&["Megan Bowen"]);
        assert_eq!(remove_names("Megan Bowens and Megan", &n), None);
        assert_eq!(remove_names("XMegan Bowen", &n), None);
        assert_eq!(remove_names("no names here", &n), None);
    }

    #[test]
    fn lines_without_a_name_keep_their_layout() {
        let n = names(&["Megan Bowen"]);
        assert_eq!(
            remove_names("a\tb  c\n  - Megan Bowen: done\n    code  here", &n).as_deref(),
            Some("a\tb  c\n  - done\n    code  here")
        );
    }

    #[test]
    fn several_names_and_non_ascii_case() {
        let n = names(&["Miguel de la Cruz", "Ödön Ürgé"]);
        assert_eq!(
            remove_names("miguel de la cruz and ÖDÖN ÜRGÉ agreed.\n\nDone", &n).as_deref(),
            Some("and agreed.\n\nDone")
        );
    }
}
