//! Tests of the emulator and the sink against their real sockets on 127.0.0.1:0, and the
//! helpers they share (sign-in, GET with a token, following a delta round).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_json::Value;

use super::*;

mod changes;
mod directory;
mod faults;
mod identity;
mod limits;
mod messages;
mod quirks;
mod reach;
mod shapes;
mod sink;

pub(super) fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub(super) async fn start(spec: TenantSpec) -> (Emulator, reqwest::Client, String) {
    let emu = Emulator::start(spec, EmulatorOptions::default(), local())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (access, _) = grant(&emu, &http, &emu.initial_refresh_token())
        .await
        .unwrap();
    (emu, http, access)
}

/// A refresh grant: Ok((access, refresh)) or Err(error body).
pub(super) async fn grant(
    emu: &Emulator,
    http: &reqwest::Client,
    refresh: &str,
) -> Result<(String, String), Value> {
    let url = format!("{}/{}/oauth2/v2.0/token", emu.url(), emu.tenant_id());
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &emu.client_id()),
        ("refresh_token", refresh),
        (
            "scope",
            "offline_access https://graph.microsoft.com/.default",
        ),
    ];
    let resp = http.post(url).form(&form).send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    if status.is_success() {
        Ok((
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        ))
    } else {
        assert_eq!(status, 400);
        Err(body)
    }
}

pub(super) async fn get(http: &reqwest::Client, access: &str, url: &str) -> (u16, Value) {
    let resp = http
        .get(url)
        .bearer_auth(access)
        .header("Prefer", "include-unknown-enum-members")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Follows nextLinks to the deltaLink; returns the items and the deltaLink.
pub(super) async fn delta_round(
    http: &reqwest::Client,
    access: &str,
    first: &str,
) -> (Vec<Value>, String, usize) {
    let (mut url, mut items, mut empty_pages) = (first.to_owned(), Vec::new(), 0);
    loop {
        let (status, page) = get(http, access, &url).await;
        assert_eq!(status, 200, "{page}");
        let value = page["value"].as_array().unwrap();
        empty_pages += usize::from(value.is_empty() && page.get("@odata.nextLink").is_some());
        items.extend(value.iter().cloned());
        if let Some(next) = page["@odata.nextLink"].as_str() {
            url = next.to_owned();
        } else {
            return (
                items,
                page["@odata.deltaLink"].as_str().unwrap().to_owned(),
                empty_pages,
            );
        }
    }
}

pub(super) fn channels_of(truth: &[TruthMessage]) -> BTreeSet<(String, String)> {
    truth
        .iter()
        .map(|t| (t.team_id.clone(), t.channel_id.clone()))
        .collect()
}
