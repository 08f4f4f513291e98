//! Token endpoint and Graph bearer-token checks.

use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn refresh_tokens_rotate_and_spent_ones_are_rejected() {
    let emu = Emulator::start(TenantSpec::default(), EmulatorOptions::default(), local())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let seed = emu.initial_refresh_token();
    let (_, second) = grant(&emu, &http, &seed).await.unwrap();
    assert_ne!(second, seed);
    let err = grant(&emu, &http, &seed).await.unwrap_err();
    assert_eq!(err["error"], "invalid_grant");
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS70008:"));
    assert!(grant(&emu, &http, &second).await.is_ok());
    assert_eq!(
        grant(&emu, &http, "nonsense").await.unwrap_err()["error"],
        "invalid_grant"
    );
    let stats = emu.stats();
    assert_eq!(
        (stats.token_grants, stats.spent_refresh_token_reuse),
        (2, 1)
    );
    assert_eq!(stats.by_route["token"], 4);

    let token_url = format!("{}/{}/oauth2/v2.0/token", emu.url(), emu.tenant_id());
    let bad_client = http
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "x"),
            ("refresh_token", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad_client.json::<Value>().await.unwrap()["error_codes"],
        json!([700016])
    );
    let wrong_tenant = http
        .post(format!(
            "{}/other.onmicrosoft.com/oauth2/v2.0/token",
            emu.url()
        ))
        .form(&[("client_id", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_tenant.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let grant_type = http
        .post(&token_url)
        .form(&[("grant_type", "implicit"), ("client_id", &emu.client_id())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        grant_type.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn lax_rotation_accepts_spent_tokens() {
    let opts = EmulatorOptions {
        strict_rotation: false,
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(TenantSpec::default(), opts, local())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let seed = emu.initial_refresh_token();
    grant(&emu, &http, &seed).await.unwrap();
    grant(&emu, &http, &seed).await.unwrap();
    assert_eq!(emu.stats().spent_refresh_token_reuse, 0);
}

#[tokio::test]
async fn graph_needs_a_valid_bearer_token() {
    let opts = EmulatorOptions {
        access_token_lifetime: std::time::Duration::from_millis(50),
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(TenantSpec::default(), opts, local())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let me = format!("{}/v1.0/me", emu.url());
    let (status, body) = get(&http, "made-up", &me).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    let (access, _) = grant(&emu, &http, &emu.initial_refresh_token())
        .await
        .unwrap();
    let (status, body) = get(&http, &access, &me).await;
    assert_eq!(status, 200);
    assert_eq!(body["mail"], emu.technical_user_mail());
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    assert_eq!(get(&http, &access, &me).await.0, 401);
    assert_eq!(emu.stats().unauthorized, 2);
}
