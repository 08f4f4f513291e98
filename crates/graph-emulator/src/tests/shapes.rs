//! The benchmark's tenant shapes: one long channel among short ones, giant pages (every
//! root with Graph's 1 000 inline replies), a directory of 200 000 users.

use serde_json::Value;

use super::*;

async fn start_skewed(spec: TenantSpec, skew: Skew) -> (Emulator, reqwest::Client, String) {
    let opts = EmulatorOptions {
        skew,
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(spec, opts, local()).await.unwrap();
    let http = reqwest::Client::new();
    let (access, _) = grant(&emu, &http, &emu.initial_refresh_token())
        .await
        .unwrap();
    (emu, http, access)
}

#[tokio::test]
async fn the_long_channel_is_the_first_channel_of_the_first_team() {
    let spec = TenantSpec {
        teams: 2,
        channels_per_team: 3,
        messages_per_channel: 2,
        max_replies: 0,
        ..TenantSpec::default()
    };
    let skew = Skew {
        long_channel: Some(120),
        ..Skew::default()
    };
    let (emu, http, access) = start_skewed(spec, skew).await;
    let truth = emu.truth();
    let roots = |channel: &str| truth.iter().filter(|t| t.channel_id == channel).count();
    let teams = get(
        &http,
        &access,
        &format!("{}/v1.0/me/joinedTeams", emu.url()),
    )
    .await
    .1;
    let first_team = teams["value"][0]["id"].as_str().unwrap().to_owned();
    let chans = format!("{}/v1.0/teams/{first_team}/channels", emu.url());
    let chans = get(&http, &access, &chans).await.1;
    let ids: Vec<&str> = chans["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(roots(ids[0]), 120, "Graph lists the long channel first");
    assert_eq!(roots(ids[1]), 2);
    assert_eq!(truth.len(), 120 + 5 * 2);
}

#[tokio::test]
async fn giant_pages_carry_every_root_with_a_thousand_replies_inline() {
    let spec = TenantSpec {
        teams: 1,
        channels_per_team: 1,
        messages_per_channel: 8,
        max_replies: 1000,
        ..TenantSpec::default()
    };
    let skew = Skew {
        exact_replies: true,
        ..Skew::default()
    };
    let (emu, http, access) = start_skewed(spec, skew).await;
    let t = &emu.truth()[0];
    let url = format!(
        "{}/v1.0/teams/{}/channels/{}/messages?$top=50&$expand=replies",
        emu.url(),
        t.team_id,
        t.channel_id
    );
    let resp = http.get(url).bearer_auth(&access).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    // Eight roots keep the test light; the benchmark's 50 make a page over 20 MB.
    assert!(
        bytes.len() / 8 * 50 > 20 << 20,
        "8 roots in {} bytes",
        bytes.len()
    );
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    let roots = page["value"].as_array().unwrap();
    assert_eq!(roots.len(), 8);
    for root in roots {
        assert_eq!(root["replies"].as_array().unwrap().len(), 1000);
        assert!(root.get("replies@odata.nextLink").is_none(), "all inline");
    }
}

#[tokio::test]
async fn a_directory_of_200_000_users_pages_through_in_999s() {
    let (emu, http, access) = start(TenantSpec {
        teams: 1,
        channels_per_team: 1,
        messages_per_channel: 1,
        users: 200_000,
        ..TenantSpec::default()
    })
    .await;
    let mut url = format!(
        "{}/v1.0/users?$select=id,mail,userPrincipalName&$top=999",
        emu.url()
    );
    let (mut pages, mut ids) = (0, std::collections::HashSet::new());
    loop {
        let (status, page) = get(&http, &access, &url).await;
        assert_eq!(status, 200);
        pages += 1;
        for u in page["value"].as_array().unwrap() {
            ids.insert(u["id"].as_str().unwrap().to_owned());
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    // The technical user and two room accounts besides the people.
    assert_eq!(ids.len(), 200_003);
    assert_eq!(pages, 201);
}
