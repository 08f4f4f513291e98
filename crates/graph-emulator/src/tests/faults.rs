//! Injected throttling, expired delta tokens and the `Prefer` header.

use serde_json::Value;

use super::*;

fn system_event_root(emu: &Emulator) -> TruthMessage {
    emu.truth()
        .into_iter()
        .find(|t| t.expected == Expected::Skip(SkipKind::SystemEvent))
        .expect("the default tenant has system events")
}

#[tokio::test]
async fn throttled_requests_carry_retry_after() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    emu.throttle_next(2, 429, Some(2.128));
    let me = format!("{}/v1.0/me", emu.url());
    for _ in 0..2 {
        let resp = http.get(&me).bearer_auth(&access).send().await.unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "2.128");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
    }
    assert_eq!(get(&http, &access, &me).await.0, 200);
    assert_eq!(emu.stats().throttled, 2);
}

#[tokio::test]
async fn expired_delta_tokens_are_rejected() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let t = &emu.truth()[0];
    let url = format!(
        "{}/v1.0/teams/{}/channels/{}/messages/delta",
        emu.url(),
        t.team_id,
        t.channel_id
    );
    let (_, link, _) = delta_round(&http, &access, &url).await;
    assert_eq!(get(&http, &access, &link).await.0, 200);
    emu.expire_delta_tokens();
    let (status, body) = get(&http, &access, &link).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DeltaToken"));
}

#[tokio::test]
async fn system_events_need_the_prefer_header_to_show_their_type() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let t = system_event_root(&emu);
    let url = format!(
        "{}/v1.0/teams/{}/channels/{}/messages/{}",
        emu.url(),
        t.team_id,
        t.channel_id,
        t.message_id
    );
    let (_, with) = get(&http, &access, &url).await;
    assert_eq!(with["messageType"], "systemEventMessage");
    assert!(with["from"].is_null());
    assert_eq!(with["body"]["content"], "<systemEventMessage/>");
    let without: Value = http
        .get(&url)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(without["messageType"], "unknownFutureValue");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let me = format!("{}/v1.0/me", emu.url());
    assert_eq!(get(&http, &access, &me).await.0, 200);
    emu.clone().shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(http.get(&me).bearer_auth(&access).send().await.is_err());
}
