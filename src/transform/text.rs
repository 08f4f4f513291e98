//! Teams HTML → text (interim; replaced by the full stripper).
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    pub keep_mention_names: bool,
}
pub fn html_to_text(html: &str, _opts: &TextOptions) -> String {
    let doc = scraper::Html::parse_fragment(html);
    plain_to_text(&doc.root_element().text().collect::<Vec<_>>().join(" "))
}
pub fn plain_to_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
