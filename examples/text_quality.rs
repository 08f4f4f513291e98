//! Quality of the HTML → text conversion against the hand-written expectations in
//! `fixtures/html/`: token F1 (multiset of whitespace-separated tokens) and line-bigram F1
//! (adjacent token pairs within a line, so a wrongly split or joined line costs bigrams),
//! per fixture and in total (micro-averaged over all tokens).
//!
//! `cargo run --release --example text_quality`

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use teams_connector::transform::text::{html_to_text, plain_to_text, TextOptions};

/// Matched, predicted and expected counts of one measure.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    common: usize,
    predicted: usize,
    expected: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.common += other.common;
        self.predicted += other.predicted;
        self.expected += other.expected;
    }

    fn f1(&self) -> f64 {
        if self.predicted == 0 && self.expected == 0 {
            return 1.0;
        }
        2.0 * self.common as f64 / (self.predicted + self.expected) as f64
    }
}

fn multiset<'a>(
    items: impl Iterator<Item = (&'a str, &'a str)>,
) -> HashMap<(&'a str, &'a str), usize> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

fn compare<'a>(
    predicted: impl Iterator<Item = (&'a str, &'a str)>,
    expected: impl Iterator<Item = (&'a str, &'a str)>,
) -> Counts {
    let (p, e) = (multiset(predicted), multiset(expected));
    let common = p
        .iter()
        .map(|(k, n)| (*n).min(*e.get(k).unwrap_or(&0)))
        .sum();
    Counts {
        common,
        predicted: p.values().sum(),
        expected: e.values().sum(),
    }
}

fn tokens(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_whitespace().map(|t| (t, ""))
}

fn bigrams(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().flat_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        (1..words.len())
            .map(move |i| (words[i - 1], words[i]))
            .collect::<Vec<_>>()
    })
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for path in fs::read_dir(&dir)
            .expect("read fixture dir")
            .map(|e| e.expect("entry").path())
        {
            match path.extension().and_then(|e| e.to_str()) {
                _ if path.is_dir() => dirs.push(path),
                Some("html" | "text") => found.push(path),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

fn convert(path: &Path) -> String {
    let source = fs::read_to_string(path).expect("read fixture");
    if path.extension().is_some_and(|e| e == "text") {
        return plain_to_text(&source);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let opts = TextOptions {
        keep_mention_names: name.starts_with("mention-keep-"),
    };
    html_to_text(&source, &opts)
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/html");
    let (mut token_total, mut bigram_total) = (Counts::default(), Counts::default());
    println!("{:<40} {:>8} {:>9}", "fixture", "token F1", "bigram F1");
    for path in inputs(&dir) {
        let got = convert(&path);
        let want = fs::read_to_string(path.with_extension("txt")).expect("expected .txt");
        let token = compare(tokens(&got), tokens(&want));
        let bigram = compare(bigrams(&got), bigrams(&want));
        token_total.add(token);
        bigram_total.add(bigram);
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        println!("{name:<40} {:>8.3} {:>9.3}", token.f1(), bigram.f1());
    }
    println!(
        "{:<40} {:>8.4} {:>9.4}   ({} expected tokens, {} expected bigrams)",
        "TOTAL (micro)",
        token_total.f1(),
        bigram_total.f1(),
        token_total.expected,
        bigram_total.expected
    );
}
