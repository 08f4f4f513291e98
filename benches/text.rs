//! Throughput of `html_to_text` on Teams-like bodies: 6 000 messages generated
//! deterministically from the shapes seen in real Graph bodies (mentions split over several
//! `<at>`, Teams lists with `<span>` wrappers, copy-paste tables with `<p>` cells, quoted
//! replies, code blocks, emoji, hosted-content images, the real bodies themselves), 200 B to
//! 5 KB each. Single thread; prints MB/s and µs per message, and the parse alone for
//! comparison.
//!
//! `cargo bench --bench text`

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use teams_connector::transform::text::{html_to_text, TextOptions};

const MESSAGES: usize = 6_000;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "budget",
    "review",
    "the",
    "and",
    "for",
    "Q3",
    "forecast",
    "deployment",
    "pipeline",
    "we",
    "should",
    "Kubernetes",
    "latency",
    "customer",
    "contract",
    "migration",
    "is",
    "ready",
    "to",
    "with",
    "on",
    "Friday",
    "roadmap",
    "incident",
    "postmortem",
    "API",
    "schema",
    "ingest",
    "プロジェクト",
    "予算",
    "бюджет",
    "отчёт",
    "समीक्षा",
    "الميزانية",
    "über",
    "café",
];
const NAMES: &[&str] = &[
    "Megan",
    "Alex Wilber",
    "Miguel de la Cruz",
    "Lee Gu",
    "王小明",
];

fn words(rng: &mut Rng, out: &mut String, n: usize) {
    for i in 0..n {
        if i > 0 {
            out.push_str(if rng.below(12) == 0 { "&nbsp;" } else { " " });
        }
        let word = rng.pick(WORDS);
        match rng.below(20) {
            0 => write!(out, "<b>{word}</b>"),
            1 => write!(out, "<i>{word}</i>"),
            2 => write!(out, "<a href=\"https://contoso.sharepoint.com/sites/x/{word}\" title=\"https://contoso.sharepoint.com/sites/x/{word}\">{word}</a>"),
            3 => write!(out, "<code>{word}()</code>"),
            _ => write!(out, "{word}"),
        }
        .unwrap();
    }
}

fn mention(rng: &mut Rng, out: &mut String) {
    for (i, part) in rng.pick(NAMES).split(' ').enumerate() {
        if i > 0 {
            out.push_str("&nbsp;");
        }
        write!(out, "<at id=\"{}\">{part}</at>", rng.below(9)).unwrap();
    }
}

fn paragraph(rng: &mut Rng, out: &mut String) {
    out.push_str(if rng.below(2) == 0 { "<p>" } else { "<div>" });
    if rng.below(3) == 0 {
        mention(rng, out);
        out.push_str(if rng.below(2) == 0 { ", " } else { "&nbsp;" });
    }
    let n = 4 + rng.below(30);
    words(rng, out, n);
    if rng.below(4) == 0 {
        out.push_str(" <emoji id=\"1f44d_thumbsup\" alt=\"👍\" title=\"Thumbs up\"></emoji>");
    }
    out.push_str(if out.ends_with("</emoji>") || rng.below(2) == 0 {
        "</p>"
    } else {
        "</div>"
    });
}

fn list(rng: &mut Rng, out: &mut String) {
    let ordered = rng.below(2) == 0;
    out.push_str(if ordered { "<ol>\n" } else { "<ul>\n" });
    for _ in 0..2 + rng.below(5) {
        out.push_str("<li><span style=\"font-size:inherit\">");
        let n = 2 + rng.below(8);
        words(rng, out, n);
        out.push_str("</span></li>");
    }
    out.push_str(if ordered { "</ol>\n" } else { "</ul>\n" });
}

fn table(rng: &mut Rng, out: &mut String) {
    out.push_str("<p>&nbsp;</p>\n<table itemprop=\"copy-paste-table\">\n<tbody>\n");
    let cols = 2 + rng.below(3);
    for _ in 0..2 + rng.below(4) {
        out.push_str("<tr>\n");
        for _ in 0..cols {
            out.push_str("<td>\n<p>");
            let n = 1 + rng.below(3);
            words(rng, out, n);
            out.push_str("</p>\n</td>\n");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n<p>&nbsp;</p>\n");
}

fn quote(rng: &mut Rng, out: &mut String) {
    write!(out, "<blockquote itemscope=\"\" itemtype=\"http://schema.skype.com/Reply\" itemid=\"16{:011}\"><strong itemprop=\"mri\" itemid=\"8:orgid:0de69e5e-2da8-4cf2-821f-5e6585b2c65b\">{}</strong><span itemprop=\"time\" itemid=\"1600457867820\"></span><p itemprop=\"preview\">", rng.below(1 << 30), rng.pick(NAMES)).unwrap();
    let n = 5 + rng.below(15);
    words(rng, out, n);
    out.push_str("</p></blockquote>");
}

fn code(rng: &mut Rng, out: &mut String) {
    out.push_str("<codeblock class=\"rust\"><code>");
    for i in 0..2 + rng.below(6) {
        if i > 0 {
            out.push_str("<br>");
        }
        write!(
            out,
            "    let {} = {}(&amp;x);",
            rng.pick(WORDS),
            rng.pick(WORDS)
        )
        .unwrap();
    }
    out.push_str("</code></codeblock>");
}

fn image(rng: &mut Rng, out: &mut String) {
    write!(out, "<div><span><img height=\"145\" src=\"https://graph.microsoft.com/v1.0/teams/fbe2bf47-16c8-47cf-b4a5-4b9b187c508b/channels/19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2/messages/16169633{:05}/hostedContents/aWQ9eF8wLXd1cy1kMS02YmI3Nzk3ZGU2MmRjODdjODA4YmQ1ZmI0OWM4NjI2ZCx0eXBlPTEsdXJsPWh0dHBz/$value\" width=\"131\" style=\"vertical-align:bottom; width:131px; height:145px\"></span><div>&nbsp;</div></div>", rng.below(99_999)).unwrap();
}

fn real_bodies() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/graph/message-bodies.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read bodies"))
            .expect("parse bodies");
    let bodies = json.as_array().expect("array");
    bodies
        .iter()
        .map(|b| b["html"].as_str().expect("html").to_owned())
        .collect()
}

fn generate() -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let real = real_bodies();
    (0..MESSAGES)
        .map(|_| {
            // Mostly short messages, as in real channels, with a tail up to 5 KB.
            let spread = 1 + rng.below(4_800);
            let target = 200 + rng.below(spread);
            let mut html = String::with_capacity(target + 512);
            html.push_str("<div>");
            if rng.below(5) == 0 {
                quote(&mut rng, &mut html);
            }
            while html.len() < target {
                match rng.below(14) {
                    0..=5 => paragraph(&mut rng, &mut html),
                    6 | 7 => list(&mut rng, &mut html),
                    8 => table(&mut rng, &mut html),
                    9 => code(&mut rng, &mut html),
                    10 => image(&mut rng, &mut html),
                    _ => html.push_str(&real[rng.below(real.len())]),
                }
            }
            html.push_str("</div>");
            html
        })
        .collect()
}

/// CPU time of this thread: unlike wall time, it does not count the time other processes
/// on a shared machine take the core away.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` over all bodies until at least `min` has passed; returns (wall, CPU) per pass.
fn measure(bodies: &[String], min: Duration, mut f: impl FnMut(&str)) -> (Duration, Duration) {
    let (start, cpu_start) = (Instant::now(), thread_cpu_time());
    let mut passes = 0u32;
    while passes == 0 || start.elapsed() < min {
        for body in bodies {
            f(body);
        }
        passes += 1;
    }
    (
        start.elapsed() / passes,
        (thread_cpu_time() - cpu_start) / passes,
    )
}

fn report(label: &str, bytes: usize, count: usize, (wall, cpu): (Duration, Duration)) {
    let rate = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
    println!(
        "{label:<14} wall {:>6.1} MB/s {:>7.2} µs/message | cpu {:>6.1} MB/s {:>7.2} µs/message",
        rate(wall),
        per_message(wall),
        rate(cpu),
        per_message(cpu)
    );
}

fn main() {
    // `cargo test --benches` runs this with `--test`: one pass each. Any other argument
    // picks the measurements whose label contains it, as libtest filters do.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--test");
    let filter = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    let bodies = generate();
    let bytes: usize = bodies.iter().map(String::len).sum();
    let (min, max) = bodies.iter().fold((usize::MAX, 0), |(lo, hi), b| {
        (lo.min(b.len()), hi.max(b.len()))
    });
    println!(
        "{} messages, {:.2} MB, {min}–{max} B each",
        bodies.len(),
        bytes as f64 / 1e6
    );
    let opts = TextOptions::default();
    let out_bytes: usize = bodies.iter().map(|b| html_to_text(b, &opts).len()).sum();
    println!("output {:.2} MB of text", out_bytes as f64 / 1e6);
    let min_time = Duration::from_secs(if quick { 0 } else { 3 });
    let run = |label: &str, f: &mut dyn FnMut(&str)| {
        if label.contains(filter.as_str()) {
            report(label, bytes, bodies.len(), measure(&bodies, min_time, f));
        }
    };
    run("html_to_text", &mut |b| {
        black_box(html_to_text(black_box(b), &opts));
    });
    run("parse alone", &mut |b| {
        black_box(scraper::Html::parse_fragment(black_box(b)));
    });
}
