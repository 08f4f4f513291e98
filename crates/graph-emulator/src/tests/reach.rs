//! Shared channels, associated teams, mail changes and messages posted as someone.

use super::*;

#[tokio::test]
async fn an_associated_team_shows_only_its_shared_channels() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let channels = emu.channels();
    let host = &channels[0];
    let hidden = channels
        .iter()
        .find(|c| c.team_id == host.team_id && c.channel_id != host.channel_id)
        .unwrap();
    emu.share_channel(&host.channel_id);
    emu.associate_team(&host.team_id, Some("9d2c3a7e-0000-4000-8000-00000000f00d"));
    let base = emu.url();
    let (_, joined) = get(&http, &access, &format!("{base}/v1.0/me/joinedTeams")).await;
    let ids = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!ids(&joined).contains(&host.team_id));
    let (status, assoc) = get(
        &http,
        &access,
        &format!("{base}/v1.0/me/teamwork/associatedTeams"),
    )
    .await;
    assert_eq!(status, 200);
    let entry = assoc["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == host.team_id.as_str())
        .unwrap();
    assert_eq!(entry["tenantId"], "9d2c3a7e-0000-4000-8000-00000000f00d");
    assert_eq!(ids(&assoc).len(), ids(&joined).len() + 1);
    let url = format!("{base}/v1.0/teams/{}/channels", host.team_id);
    let (_, list) = get(&http, &access, &url).await;
    let list = list["value"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["membershipType"], "shared");
    let messages = |c: &str| format!("{base}/v1.0/teams/{}/channels/{c}/messages", host.team_id);
    assert_eq!(
        get(&http, &access, &messages(&host.channel_id)).await.0,
        200
    );
    assert_eq!(
        get(&http, &access, &messages(&hidden.channel_id)).await.0,
        403
    );
    assert!(emu.channel_requests(&hidden.channel_id) >= 1);
    assert!(emu
        .truth()
        .iter()
        .all(|t| t.channel_id != hidden.channel_id));
    assert!(emu.truth().iter().any(|t| t.channel_id == host.channel_id));
}

#[tokio::test]
async fn a_changed_mail_stays_among_the_proxy_addresses_when_full_profiles_are_granted() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let person = emu
        .people()
        .into_iter()
        .find(|p| p.mail.is_some() && !p.guest && p.display_name != "Knowledge Connector")
        .unwrap();
    let old = person.mail.clone().unwrap();
    emu.change_mail(&person.id, "renamed.person@contoso.com");
    let url = format!(
        "{}/v1.0/users?$select=id,mail,proxyAddresses&$top=999",
        emu.url()
    );
    let find = |v: &Value| {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == person.id.as_str())
            .unwrap()
            .clone()
    };
    let (_, page) = get(&http, &access, &url).await;
    assert_eq!(find(&page)["mail"], "renamed.person@contoso.com");
    assert!(
        find(&page)["proxyAddresses"].is_null(),
        "basic profiles carry no proxy addresses"
    );
    emu.grant_full_profiles(true);
    let (_, page) = get(&http, &access, &url).await;
    let proxies = find(&page)["proxyAddresses"].clone();
    assert_eq!(
        proxies,
        serde_json::json!(["SMTP:renamed.person@contoso.com", format!("smtp:{old}")])
    );
    assert!(emu.sensitive_strings().contains(&old));
}

#[tokio::test]
async fn a_post_as_someone_names_them_and_their_mentions() {
    let (emu, http, access) = start(TenantSpec::default()).await;
    let people = emu.people();
    let author = people
        .iter()
        .find(|p| p.mail.is_some() && !p.guest && p.display_name != "Knowledge Connector")
        .unwrap();
    let guest = people.iter().find(|p| p.guest).unwrap();
    let c = &emu.channels()[0];
    let key = emu
        .post_as(
            &c.team_id,
            &c.channel_id,
            &author.id,
            &[&guest.id, &author.id],
        )
        .unwrap();
    let url = format!(
        "{}/v1.0/teams/{}/channels/{}/messages/{}",
        emu.url(),
        c.team_id,
        c.channel_id,
        key.message_id
    );
    let (status, msg) = get(&http, &access, &url).await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["from"]["user"]["id"], author.id.as_str());
    assert_eq!(msg["mentions"].as_array().unwrap().len(), 2);
    assert!(msg["body"]["content"]
        .as_str()
        .unwrap()
        .contains(&guest.display_name));
    let truth = emu
        .truth()
        .into_iter()
        .find(|t| t.message_id == key.message_id && t.channel_id == key.channel_id)
        .unwrap();
    match truth.expected {
        Expected::Forward {
            author: a,
            mentions,
            ..
        } => {
            assert_eq!(Some(a), author.mail.clone());
            assert_eq!(mentions, vec![author.mail.clone().unwrap()]);
        }
        other => panic!("{other:?}"),
    }
}
