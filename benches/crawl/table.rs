//! The benchmark's one table: a row per measured run, printed as aligned text (and as a
//! Markdown table, ready for the README).

use std::time::Duration;

use crate::ceiling::Minimum;
use crate::measure::Rss;

pub struct Row {
    pub shape: String,
    pub run: &'static str,
    pub code: Option<i32>,
    pub documents: u64,
    /// Graph requests the emulator answered, 429s included.
    pub requests: u64,
    pub minimum: Option<Minimum>,
    pub achieved: Duration,
    pub throttled: u64,
    pub violations: u64,
    /// Of the violations, those after a 429 without Retry-After.
    pub violations_bare: u64,
    pub rss: Rss,
    pub cpu: Duration,
}

const HEADER: [&str; 12] = [
    "shape",
    "run",
    "exit",
    "documents",
    "requests",
    "minimum",
    "achieved",
    "% of ceiling",
    "429s",
    "RA violations",
    "peak RSS",
    "µs CPU/doc",
];

impl Row {
    fn cells(&self) -> [String; 12] {
        let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let minimum = match &self.minimum {
            Some(m) => format!("{} ({})", secs(m.time), m.bound_by),
            None => "—".to_owned(),
        };
        let share = self.minimum.as_ref().map_or("—".to_owned(), |m| {
            format!(
                "{:.0} %",
                100.0 * m.time.as_secs_f64() / self.achieved.as_secs_f64()
            )
        });
        let violations = match self.violations_bare {
            0 => self.violations.to_string(),
            bare => format!("{} ({bare} bare)", self.violations),
        };
        let mb = |b: u64| format!("{:.1} MB", b as f64 / (1 << 20) as f64);
        let rss = match self.rss {
            Rss::Own(b) => mb(b),
            Rss::Polled(b) => format!("{}†", mb(b)),
            Rss::Unknown => "—".to_owned(),
        };
        let cpu_per_doc = match self.documents {
            0 => "—".to_owned(),
            n => format!("{:.1}", self.cpu.as_secs_f64() * 1e6 / n as f64),
        };
        [
            self.shape.clone(),
            self.run.to_owned(),
            self.code.map_or("killed".to_owned(), |c| c.to_string()),
            self.documents.to_string(),
            self.requests.to_string(),
            minimum,
            secs(self.achieved),
            share,
            self.throttled.to_string(),
            violations,
            rss,
            cpu_per_doc,
        ]
    }
}

impl Row {
    /// One line while the benchmark runs.
    pub fn progress(&self) -> String {
        let c = self.cells();
        format!(
            "{}: exit {}, {} documents, {} requests in {} (minimum {}: {} of the ceiling), {} 429s, {} violations",
            c[1], c[2], c[3], c[4], c[6], c[5], c[7], c[8], c[9]
        )
    }
}

/// The rows as aligned columns.
pub fn print(rows: &[Row]) {
    let cells: Vec<[String; 12]> = rows.iter().map(Row::cells).collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([HEADER[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..12).map(width).collect();
    let line = |c: &[&str]| {
        let padded: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&HEADER);
    for c in &cells {
        line(&c.each_ref().map(String::as_str));
    }
}

/// The rows as a Markdown table.
pub fn print_markdown(rows: &[Row]) {
    println!("| {} |", HEADER.join(" | "));
    println!("|{}", "---|".repeat(HEADER.len()));
    for r in rows {
        println!("| {} |", r.cells().join(" | "));
    }
}
