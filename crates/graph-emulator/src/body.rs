//! Assembly of generated HTML bodies: `<at>` mentions leading the sentence (a person's
//! multi-word name split over several tags, like Teams writes it), an optional quoted reply
//! before it, an optional first line, or a plain-text body.

use serde_json::Value;

use crate::directory::People;
use crate::parts;

pub(crate) fn mention_user_ids(mentions: &[Value]) -> impl Iterator<Item = &str> {
    mentions
        .iter()
        .filter_map(|m| m["mentioned"]["user"]["id"].as_str())
}

/// Assembles a generated body: mentions lead the sentence, an optional quote precedes it.
#[derive(Default)]
pub(crate) struct BodyBuilder {
    pub text: bool,
    pub lead: String,
    pub mentions: Vec<Value>,
    pub quote: Option<String>,
    pub second_line: Option<String>,
}

impl BodyBuilder {
    pub(crate) fn mention_user(&mut self, people: &People, user: usize, text: Option<&str>) {
        let u = &people.users[user];
        let id = self.mentions.len();
        let text = text.unwrap_or(&u.display_name);
        self.lead
            .push_str(&format!("<at id=\"{id}\">{text}</at>&nbsp;"));
        self.mentions.push(parts::user_mention(id, text, u));
    }

    /// One person, one `<at>` tag per word of the name, joined by `&nbsp;` like Teams does.
    pub(crate) fn mention_split(&mut self, people: &People, user: usize) {
        let words: Vec<String> = people.users[user]
            .display_name
            .split(' ')
            .map(str::to_owned)
            .collect();
        for (i, w) in words.iter().enumerate() {
            let id = self.mentions.len();
            self.lead.push_str(&format!("<at id=\"{id}\">{w}</at>"));
            self.lead
                .push_str(if i + 1 == words.len() { " " } else { "&nbsp;" });
            self.mentions
                .push(parts::user_mention(id, w, &people.users[user]));
        }
    }

    pub(crate) fn render(&self, sentence: &str, divs: bool) -> (&'static str, String) {
        if self.text {
            return ("text", sentence.to_owned());
        }
        let quote = self.quote.as_deref().unwrap_or("");
        let body = match &self.second_line {
            Some(line) => format!("<p>{line}</p>\n<p>{}{sentence}</p>", self.lead),
            None if divs && quote.is_empty() => {
                format!("<div><div>{}{sentence}</div></div>", self.lead)
            }
            None => format!("{quote}<p>{}{sentence}</p>", self.lead),
        };
        ("html", body)
    }
}
