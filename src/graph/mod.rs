//! A typed Microsoft Graph client: the models the crawl reads ([`models`]), the endpoint
//! URLs it calls, and [`Graph::get`] which adds auth, limits, retries and error mapping.

mod client;
pub mod models;
mod places;
pub mod time;

pub use client::{describe_json_error, Graph, GraphError, RawPage};

use std::collections::HashSet;

use url::Url;

/// Graph's page-size ceiling for channel messages (list and delta).
pub const MESSAGE_PAGE: u32 = 50;

/// Builds the endpoint URLs under `{graph_url}/v1.0/`.
#[derive(Debug, Clone)]
pub struct Endpoints {
    base: Url,
}

impl Endpoints {
    pub fn new(graph_url: &Url) -> Self {
        let mut base = graph_url.clone();
        let path = format!("{}/v1.0/", base.path().trim_end_matches('/'));
        base.set_path(&path);
        Endpoints { base }
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url.into()
    }

    /// The users list. With opt-outs configured, `displayName` (their names leave the
    /// text) and `proxyAddresses` (former mails; null under `User.ReadBasic.All`) too.
    pub fn users(&self, opt_outs: bool) -> String {
        let select = if opt_outs {
            "id,mail,userPrincipalName,displayName,proxyAddresses"
        } else {
            "id,mail,userPrincipalName"
        };
        self.url("users", &[("$select", select), ("$top", "999")])
    }

    /// The teams the signed-in user is associated with: joined ones and the hosts of the
    /// shared channels it is a member of.
    pub fn associated_teams(&self) -> String {
        self.url("me/teamwork/associatedTeams", &[])
    }

    pub fn me(&self) -> String {
        self.url("me", &[])
    }

    /// Every team of the tenant, for app-only tokens (which have no `/me`).
    pub fn all_teams(&self) -> String {
        self.url("teams", &[])
    }

    pub fn joined_teams(&self) -> String {
        self.url("me/joinedTeams", &[])
    }

    pub fn team(&self, team: &str) -> String {
        self.url(
            &format!("teams/{}", segment(team)),
            &[("$select", "id,displayName,visibility,isArchived")],
        )
    }

    pub fn channels(&self, team: &str) -> String {
        self.url(
            &format!("teams/{}/channels", segment(team)),
            &[("$select", "id,displayName,membershipType")],
        )
    }

    /// The first delta request of a channel: root posts modified after `since`, replies
    /// expanded, full pages.
    pub fn delta(&self, team: &str, channel: &str, since: &str, replies: bool) -> String {
        let top = MESSAGE_PAGE.to_string();
        let filter = format!("lastModifiedDateTime gt {since}");
        let mut q = vec![("$top", top.as_str()), ("$filter", filter.as_str())];
        if replies {
            q.push(("$expand", "replies"));
        }
        self.url(
            &format!(
                "teams/{}/channels/{}/messages/delta",
                segment(team),
                segment(channel)
            ),
            &q,
        )
    }

    /// The replies of one root, newest first (paged here when Graph's inline replies stop
    /// short without a nextLink).
    pub fn replies(&self, team: &str, channel: &str, root: &str) -> String {
        let top = MESSAGE_PAGE.to_string();
        self.url(
            &format!(
                "teams/{}/channels/{}/messages/{}/replies",
                segment(team),
                segment(channel),
                segment(root)
            ),
            &[("$top", top.as_str())],
        )
    }

    /// The message list, newest first, replies expanded: the reply sweep reads it.
    pub fn messages(&self, team: &str, channel: &str) -> String {
        let top = MESSAGE_PAGE.to_string();
        self.url(
            &format!(
                "teams/{}/channels/{}/messages",
                segment(team),
                segment(channel)
            ),
            &[("$top", top.as_str()), ("$expand", "replies")],
        )
    }

    /// True when `link` points at the configured Graph host: continuation links elsewhere
    /// are refused, so a tampered response cannot send our token to another host.
    pub fn owns(&self, link: &str) -> bool {
        match Url::parse(link) {
            Ok(u) => {
                u.scheme() == self.base.scheme()
                    && u.host_str() == self.base.host_str()
                    && u.port_or_known_default() == self.base.port_or_known_default()
            }
            Err(_) => false,
        }
    }
}

/// The continuation links of one paging loop (issue 12 item 16): each must point at the
/// Graph host, and a nextLink must not come back, or a hostile or broken answer would loop
/// forever. Links are remembered as hashes: a round can have thousands of pages.
pub struct Links {
    seen: HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
}

impl Links {
    /// A loop that starts at `first`.
    pub fn starting_at(first: &str) -> Links {
        let mut links = Links {
            seen: HashSet::new(),
            hasher: Default::default(),
        };
        links.seen.insert(links.hash(first));
        links
    }

    fn hash(&self, link: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(link)
    }

    /// `link` (an `@odata.nextLink`, `what` names it) if it may be followed.
    pub fn next(
        &mut self,
        endpoints: &Endpoints,
        link: String,
        what: &str,
    ) -> Result<String, GraphError> {
        let link = Self::checked(endpoints, link, what)?;
        if !self.seen.insert(self.hash(&link)) {
            return Err(GraphError::Refused(format!(
                "Graph returned an {what} this paging already followed; stopping instead of looping (the next run tries again)"
            )));
        }
        Ok(link)
    }

    /// `link` (an `@odata.deltaLink`) if it points at the Graph host. Checked before it is
    /// stored: a cursor pointing elsewhere would send our token there next run and fail the
    /// channel forever.
    pub fn checked(endpoints: &Endpoints, link: String, what: &str) -> Result<String, GraphError> {
        if endpoints.owns(&link) {
            return Ok(link);
        }
        Err(GraphError::Refused(format!(
            "refusing to follow a link to another host than [microsoft] graph_url (an {what})"
        )))
    }
}

/// A path segment with the characters ids contain (`19:…@thread.tacv2`) left readable and
/// the rest escaped.
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace("%3A", ":")
        .replace("%40", "@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_url_carries_top_filter_and_expand() {
        let e = Endpoints::new(&Url::parse("https://graph.microsoft.com").unwrap());
        let u = e.delta(
            "t1",
            "19:abc@thread.tacv2",
            "2024-01-01T00:00:00.000Z",
            true,
        );
        assert!(u.starts_with("https://graph.microsoft.com/v1.0/teams/t1/channels/19:abc@thread.tacv2/messages/delta?"), "{u}");
        assert!(
            u.contains("%24top=50")
                && u.contains("%24expand=replies")
                && u.contains("lastModifiedDateTime+gt+2024"),
            "{u}"
        );
    }

    #[test]
    fn refuses_links_to_other_hosts() {
        let e = Endpoints::new(&Url::parse("http://127.0.0.1:8080").unwrap());
        assert!(e.owns("http://127.0.0.1:8080/v1.0/users?$skiptoken=x"));
        assert!(!e.owns("http://127.0.0.1:9090/v1.0/users"));
        assert!(!e.owns("https://evil.example/v1.0/users"));
        assert!(!e.owns("not a url"));
    }
}
