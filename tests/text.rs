//! Teams HTML → text: the fixture pairs under `fixtures/html/`, a snapshot of the real Graph
//! bodies, robustness (arbitrary input, deep nesting, large bodies) and the guarantee that
//! quoted replies and scripts never reach the ingest.
//!
//! Fixture pairs: `NAME.html` (or `NAME.text`, read with `plain_to_text`) next to `NAME.txt`,
//! the expected output written by hand; `mention-keep-*` fixtures run with
//! `keep_mention_names`. The `.txt` may end with one newline (editors add it), the output
//! never does.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use teams_connector::transform::text::{html_to_text, plain_to_text, TextOptions};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/html")
}

/// Every input fixture (`.html` / `.text`) under `fixtures/html`, sorted.
fn fixture_inputs() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![fixture_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read fixture dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(ext(&path), "html" | "text") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn ext(path: &Path) -> &str {
    path.extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// The conversion a fixture asks for, by its extension and name.
fn convert(input: &Path) -> String {
    let source = fs::read_to_string(input).expect("read fixture");
    if ext(input) == "text" {
        return plain_to_text(&source);
    }
    let name = input.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let opts = TextOptions {
        keep_mention_names: name.starts_with("mention-keep-"),
    };
    html_to_text(&source, &opts)
}

fn expected(input: &Path) -> String {
    let path = input.with_extension("txt");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: missing expected output: {e}", path.display()));
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

/// Tabs shown as `⇥` and line ends as `⏎`, so the diff shows what whitespace differs.
fn visible(line: &str) -> String {
    line.replace('\t', "⇥") + "⏎"
}

/// A line diff (longest common subsequence; fixtures are small).
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) =
        (expected.split('\n').collect(), actual.split('\n').collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            writeln!(out, "    {}", visible(a[i])).unwrap();
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            writeln!(out, "  + {}", visible(b[j])).unwrap();
            j += 1;
        } else {
            writeln!(out, "  - {}", visible(a[i])).unwrap();
            i += 1;
        }
    }
    out
}

#[test]
fn fixtures_match_expected_text() {
    let inputs = fixture_inputs();
    assert!(inputs.len() >= 67, "only {} fixtures found", inputs.len());
    let mut report = String::new();
    let mut failed = 0;
    for input in &inputs {
        let (want, got) = (expected(input), convert(input));
        if want != got {
            failed += 1;
            let name = input.strip_prefix(fixture_dir()).unwrap_or(input);
            writeln!(report, "--- {} (- expected, + actual)", name.display()).unwrap();
            report.push_str(&diff(&want, &got));
        }
    }
    assert!(
        failed == 0,
        "{failed} of {} fixtures differ:\n{report}",
        inputs.len()
    );
}

#[test]
fn real_graph_bodies_snapshot() {
    let bodies: Vec<serde_json::Value> = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/graph/message-bodies.json"),
        )
        .expect("read message-bodies.json"),
    )
    .expect("parse message-bodies.json");
    let mut listing =
        String::from("# index: html_to_text output (⇥ = tab, continuation lines indented)\n");
    for (i, body) in bodies.iter().enumerate() {
        let html = body["html"].as_str().expect("html string");
        let text = html_to_text(html, &TextOptions::default());
        let shown = if text.is_empty() {
            "(empty)".to_owned()
        } else {
            text.replace('\t', "⇥").replace('\n', "\n    ")
        };
        writeln!(listing, "{i:02}: {shown}").unwrap();
    }
    insta::assert_snapshot!("real_bodies", listing);
}

/// What must hold of any output, whatever the input.
fn assert_well_formed(out: &str) {
    assert!(
        !out.starts_with('\n') && !out.ends_with('\n'),
        "edge newline: {out:?}"
    );
    assert!(!out.contains("\n\n\n"), "two blank lines: {out:?}");
    for line in out.split('\n') {
        assert!(!line.ends_with([' ', '\t']), "trailing space: {line:?}");
    }
    for c in out.chars() {
        let invisible = matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        assert!(
            !invisible && (!c.is_control() || c == '\n' || c == '\t'),
            "{c:?} in {out:?}"
        );
    }
    assert!(unicode_normalization::is_nfc(out), "not NFC: {out:?}");
}

/// Pieces of Teams-like markup, well-formed or not, for tag-soup inputs.
fn soup_piece() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "<div>",
        "</div>",
        "<p>",
        "</p>",
        "<br>",
        "<hr>",
        "<span>",
        "</span>",
        "<b>",
        "</b>",
        "<at id=\"0\">",
        "</at>",
        "<ul>",
        "<ol start=\"4294967295\">",
        "</ul>",
        "</ol>",
        "<li>",
        "<li value=\"99999999999\">",
        "</li>",
        "<table>",
        "<tr>",
        "<td>",
        "<th>",
        "</td>",
        "</tr>",
        "</table>",
        "<pre>",
        "</pre>",
        "<code>",
        "</code>",
        "<codeblock>",
        "</codeblock>",
        "<blockquote itemtype=\"http://schema.skype.com/Reply\">",
        "<blockquote>",
        "</blockquote>",
        "<emoji alt=\"x\">",
        "</emoji>",
        "<img src=x>",
        "<attachment id=\"1\">",
        "</attachment>",
        "<systemEventMessage/>",
        "<script>",
        "</script>",
        "<style>",
        "<template>",
        "<!--",
        "-->",
        "&nbsp;",
        "&amp;",
        "&#x200B;",
        "&#0;",
        "&#xD800;",
        "&",
        "<",
        ">",
        "\"",
        "'s",
        ", ",
        ",",
        " ",
        "\n",
        "\t",
        "\r",
        "\u{FEFF}",
        "\u{202E}",
        "\u{00A0}",
        "e\u{301}",
        "한",
        "ب",
        "(",
        ")",
        "Q3",
        "budget",
        "<svg><text>",
        "</svg>",
        "<math>",
        "<select><option>",
        "<textarea>",
    ]);
    prop_oneof![4 => fixed.prop_map(str::to_owned), 1 => any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        assert_well_formed(&html_to_text(&s, &TextOptions::default()));
        assert_well_formed(&html_to_text(&s, &TextOptions { keep_mention_names: true }));
        assert_well_formed(&plain_to_text(&s));
    }

    #[test]
    fn tag_soup_never_panics(pieces in prop::collection::vec(soup_piece(), 0..80)) {
        let html = pieces.concat();
        assert_well_formed(&html_to_text(&html, &TextOptions::default()));
        assert_well_formed(&html_to_text(&html, &TextOptions { keep_mention_names: true }));
    }

    #[test]
    fn plain_text_is_idempotent(s in any::<String>()) {
        let once = plain_to_text(&s);
        prop_assert_eq!(plain_to_text(&once), once.clone());
    }
}

#[test]
fn ten_thousand_nested_elements() {
    const N: usize = 10_000;
    let opts = TextOptions::default();
    let nest = |open: &str, close: &str, inner: &str| {
        format!("{}{inner}{}", open.repeat(N), close.repeat(N))
    };

    assert_eq!(
        html_to_text(&nest("<div>", "</div>", "deep"), &opts),
        "deep"
    );
    assert_eq!(
        html_to_text(&nest("<span>", "</span>", "deep"), &opts),
        "deep"
    );
    assert_eq!(
        html_to_text(&nest("<div>", "", "deep"), &opts),
        "deep",
        "unclosed"
    );
    assert_eq!(
        html_to_text(&nest("<blockquote>", "</blockquote>", "deep"), &opts),
        "deep"
    );
    let reply = "<blockquote itemtype=\"http://schema.skype.com/Reply\">";
    assert_eq!(
        html_to_text(
            &format!("{}<p>mine</p>", nest(reply, "</blockquote>", "quoted")),
            &opts
        ),
        "mine"
    );
    // Nesting past the parser's depth cap is flattened, so the indent stops growing there.
    let ul = html_to_text(&nest("<ul><li>", "</li></ul>", "x"), &opts);
    let indent = ul.len() - ul.trim_start().len();
    assert_eq!(ul.trim_start(), "- x");
    assert!(indent > 100 && indent < 2 * N, "indent {indent}");
    let misnested = html_to_text(&"<b><div>x</b>".repeat(N), &opts);
    assert_eq!(misnested.lines().count(), N);
    let lines = html_to_text(&"<div>a<div>b".repeat(N / 2), &opts);
    assert_eq!(lines.lines().count(), N);
}

#[test]
fn two_megabyte_body() {
    let mut html = String::new();
    let mut want = String::new();
    let mut i = 0;
    while html.len() < 2 << 20 {
        write!(
            html,
            "<p>Line {i}: see the <b>bud</b>get for Q3&nbsp;<at id=\"{i}\">Megan</at></p>"
        )
        .unwrap();
        if i > 0 {
            want.push('\n');
        }
        write!(want, "Line {i}: see the budget for Q3").unwrap();
        i += 1;
    }
    assert_eq!(html_to_text(&html, &TextOptions::default()), want);

    let word = "budget ";
    let one_line = word.repeat((2 << 20) / word.len());
    assert_eq!(
        html_to_text(&one_line, &TextOptions::default()),
        one_line.trim_end()
    );
    let code = format!("<pre>{}</pre>", "  x = 1;\n".repeat((2 << 20) / 9));
    assert_eq!(
        html_to_text(&code, &TextOptions::default()).lines().count(),
        (2 << 20) / 9
    );
}

#[test]
fn quoted_replies_and_scripts_never_reach_the_output() {
    let reply = r#"<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" itemid="1">"#;
    let bodies = [
        format!("{reply}<strong>Amy</strong><p>SECRET</p></blockquote><p>mine</p>"),
        format!("<div>{reply}<p>SECRET <at id=\"0\">SECRET</at></p><ul><li>SECRET</li></ul></blockquote>mine</div>"),
        format!("{reply}<table><tr><td>SECRET</td></tr></table>SECRET</blockquote>mine"),
        format!("{reply}{reply}SECRET</blockquote>SECRET</blockquote>mine"),
        format!("{reply}<p>SECRET"),
        r#"<BLOCKQUOTE ITEMTYPE="http://schema.skype.com/Reply">SECRET</BLOCKQUOTE>mine"#.to_owned(),
        r#"<div itemtype="https://schema.skype.com/Reply">SECRET</div>mine"#.to_owned(),
        "<script>SECRET</script>mine<script>document.write('SECRET')".to_owned(),
        "<SCRIPT type=\"text/javascript\">var SECRET = '</p>';</SCRIPT><p>mine</p>".to_owned(),
        "<style>p::after { content: 'SECRET' }</style>mine".to_owned(),
        "<template><p>SECRET</p></template>mine".to_owned(),
        "<head><title>SECRET</title></head>mine".to_owned(),
        "<!-- SECRET -->mine<!-- SECRET".to_owned(),
        "mine<noscript>SECRET</noscript>".to_owned(),
    ];
    for keep in [false, true] {
        let opts = TextOptions {
            keep_mention_names: keep,
        };
        for body in &bodies {
            let out = html_to_text(body, &opts);
            assert!(!out.contains("SECRET"), "{body:?} → {out:?}");
            assert!(
                out.contains("mine") || body.ends_with("SECRET"),
                "{body:?} → {out:?}"
            );
        }
    }
}
