//! Users, teams and channels.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

#[tokio::test]
async fn users_page_with_select() {
    let (emu, http, access) = start(TenantSpec {
        users: 23,
        ..TenantSpec::default()
    })
    .await;
    let mut url = format!(
        "{}/v1.0/users?$select=id,mail,userPrincipalName&$top=7",
        emu.url()
    );
    let mut users = Vec::new();
    loop {
        let (status, page) = get(&http, &access, &url).await;
        assert_eq!(status, 200);
        assert!(page["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#users(id,mail,userPrincipalName)"));
        users.extend(page["value"].as_array().unwrap().iter().cloned());
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(users.len(), 1 + 23 + 2);
    assert!(users.iter().all(|u| u.as_object().unwrap().len() == 3));
    let guests: Vec<&Value> = users
        .iter()
        .filter(|u| u["userPrincipalName"].as_str().unwrap().contains("#EXT#"))
        .collect();
    assert!(!guests.is_empty() && guests.iter().all(|g| g["mail"].is_null()));
    assert_eq!(
        get(
            &http,
            &access,
            &format!("{}/v1.0/users?$top=1000", emu.url())
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn teams_and_channels() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let (_, joined) = get(
        &http,
        &access,
        &format!("{}/v1.0/me/joinedTeams", emu.url()),
    )
    .await;
    let teams = joined["value"].as_array().unwrap();
    assert_eq!(teams.len(), 3);
    assert!(teams.iter().all(|t| t["visibility"].is_null()));
    let mut visibilities = BTreeSet::new();
    let mut private_channels = 0;
    for t in teams {
        let id = t["id"].as_str().unwrap();
        let (_, team) = get(&http, &access, &format!("{}/v1.0/teams/{id}", emu.url())).await;
        visibilities.insert(team["visibility"].as_str().unwrap().to_owned());
        let (_, chans) = get(
            &http,
            &access,
            &format!(
                "{}/v1.0/teams/{id}/channels?$filter=membershipType eq 'private'",
                emu.url()
            ),
        )
        .await;
        private_channels += chans["value"].as_array().unwrap().len();
    }
    assert_eq!(visibilities.len(), 2);
    assert!(private_channels >= 1);
    let (status, body) = get(
        &http,
        &access,
        &format!(
            "{}/v1.0/teams/00000000-0000-0000-0000-000000000000",
            emu.url()
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["innerError"]["code"].as_str()),
        (404, Some("ItemNotFound"))
    );
}
