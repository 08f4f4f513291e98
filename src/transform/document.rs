//! The ingest wire document (DESIGN.md, "Ingest contract") and its stable id.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Upsert,
    Delete,
}

/// One document; a `delete` carries only its id.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: String,
    pub op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl Document {
    pub fn upsert(
        id: String,
        author: String,
        mentions: Vec<String>,
        created_at: String,
        content: String,
    ) -> Self {
        Document {
            id,
            op: Op::Upsert,
            author: Some(author),
            mentions: Some(mentions),
            created_at: Some(created_at),
            content: Some(content),
        }
    }

    pub fn delete(id: String) -> Self {
        Document {
            id,
            op: Op::Delete,
            author: None,
            mentions: None,
            created_at: None,
            content: None,
        }
    }
}

/// The stable opaque id: the first 128 bits of SHA-256 over tenant, team, channel, thread
/// and message id (NUL-separated, tenant lower-cased). The same message always gets the
/// same id; the tenant is part of it so two tenants feeding one ingest never collide.
pub fn document_id(tenant: &str, team: &str, channel: &str, thread: &str, message: &str) -> String {
    let tenant = tenant.to_ascii_lowercase();
    crate::digest::short([tenant.as_str(), team, channel, thread, message].map(str::as_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_change() {
        // Ingests hold documents under these ids: a change would duplicate every message.
        assert_eq!(
            document_id(
                "Contoso.onmicrosoft.com",
                "t1",
                "19:c@thread.tacv2",
                "1",
                "2"
            ),
            "edc797f04941f3108329a872b8b655af"
        );
    }

    #[test]
    fn ids_are_stable_and_distinguish_every_part() {
        let a = document_id("Contoso", "t", "c", "1", "2");
        assert_eq!(a, document_id("contoso", "t", "c", "1", "2"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, document_id("contoso", "t", "c", "12", ""));
        assert_ne!(a, document_id("contoso", "t2", "c", "1", "2"));
    }

    #[test]
    fn delete_documents_carry_only_id_and_op() {
        let json = serde_json::to_string(&Document::delete("x".into())).unwrap();
        assert_eq!(json, r#"{"id":"x","op":"delete"}"#);
    }
}
