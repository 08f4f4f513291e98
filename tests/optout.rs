//! People who opted out (issue 14): their messages are skipped (`opted_out`), they leave
//! other documents' mentions, and their names leave the text even with
//! `keep_mention_names = true` — matched through the directory by mail, UPN or object id,
//! guests by the address they were invited with, renamed people by a former mail. The
//! opt-out file is read again by every run; a missing one is exit 78. None of it is
//! named in the logs or the state dir.

use graph_emulator::{Expected, Person, TenantSpec, TruthMessage};
use serde_json::Value;

use crate::util::{Harness, Run};

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 21,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 25,
        max_replies: 3,
        users: 15,
        ..TenantSpec::default()
    }
}

/// Messages of the public teams a correct connector forwards.
fn forwards(h: &Harness) -> Vec<(TruthMessage, String, Vec<String>, Option<String>)> {
    h.emu
        .truth()
        .into_iter()
        .filter(|t| !t.team_private)
        .filter_map(|t| match t.expected.clone() {
            Expected::Forward {
                author,
                mentions,
                marker,
            } => Some((t, author, mentions, marker)),
            Expected::Skip(_) => None,
        })
        .collect()
}

/// A member with a mail who wrote forwarded messages and is mentioned in others'.
fn busy_member(h: &Harness) -> Person {
    let all = forwards(h);
    h.emu
        .people()
        .into_iter()
        .filter(|p| !p.guest && p.display_name != "Knowledge Connector")
        .filter(|p| p.mail.is_some())
        .max_by_key(|p| {
            let mail = p.mail.as_deref().unwrap();
            let wrote = all.iter().filter(|f| f.1 == mail).count();
            let named = all
                .iter()
                .filter(|f| f.1 != mail && f.2.iter().any(|m| m == mail))
                .count();
            wrote.min(named)
        })
        .unwrap()
}

fn guest(h: &Harness) -> Person {
    h.emu.people().into_iter().find(|p| p.guest).unwrap()
}

/// `jo.doe_outlook.com#EXT#@…` → `jo.doe@outlook.com`.
fn invited_address(g: &Person) -> String {
    let (invited, _) = g.upn.split_once("#EXT#").unwrap();
    let (local, domain) = invited.rsplit_once('_').unwrap();
    format!("{local}@{domain}")
}

fn write_opt_outs(h: &mut Harness, lines: &str) {
    let path = h.dir.path().join("opt-out.txt");
    std::fs::write(&path, lines).unwrap();
    h.set(
        "privacy",
        &format!("exclude_people_file = {:?}", path.display().to_string()),
    );
}

/// The ingest holds nothing of `mails` and no `names`, and everything else as the tenant
/// has it (mentions without the excluded).
fn assert_left_out(h: &Harness, mails: &[&str], names: &[&str]) {
    let held = h.received();
    for d in held.values().filter(|d| d["op"] == "upsert") {
        let author = d["author"].as_str().unwrap();
        assert!(
            !mails.contains(&author),
            "a document by an opted-out person"
        );
        let mentions: Vec<&str> = d["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            mentions.iter().all(|m| !mails.contains(m)),
            "a mention of an opted-out person"
        );
        let content = d["content"].as_str().unwrap().to_lowercase();
        for n in names {
            assert!(
                !content.contains(&n.to_lowercase()),
                "the name {n:?} is in {content:?}"
            );
        }
    }
    for (t, author, mentions, marker) in forwards(h) {
        let doc = held.get(&h.doc_id(&t));
        if mails.contains(&author.as_str()) {
            assert!(
                doc.is_none_or(|d| d["op"] == "delete"),
                "an opted-out author's message was sent"
            );
            continue;
        }
        let d = doc.unwrap_or_else(|| panic!("missing {}/{}", t.channel_id, t.message_id));
        let want: Vec<&str> = mentions
            .iter()
            .map(String::as_str)
            .filter(|m| !mails.contains(m))
            .collect();
        let got: Vec<&str> = d["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(got, want, "{}", t.message_id);
        if let Some(m) = marker {
            assert!(d["content"].as_str().unwrap().contains(&m));
        }
    }
}

fn skipped(run: &Run, why: &str) -> u64 {
    let s: Value = serde_json::from_str(run.summary()["skipped"].as_str().unwrap()).unwrap();
    s[why].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opted_out_member_and_guest_vanish_from_documents_mentions_and_text() {
    let mut h = Harness::new(spec()).await;
    h.set("crawl", "keep_mention_names = true");
    let p = busy_member(&h);
    let g = guest(&h);
    let m = h
        .emu
        .people()
        .into_iter()
        .find(|x| {
            !x.guest && x.mail.is_some() && x.id != p.id && x.display_name != "Knowledge Connector"
        })
        .unwrap();
    let c = h
        .emu
        .channels()
        .into_iter()
        .find(|c| !c.team_private)
        .unwrap();
    // A message that names both, so both names are surely in a body.
    let post = h
        .emu
        .post_as(&c.team_id, &c.channel_id, &m.id, &[&g.id, &p.id, &m.id])
        .unwrap();
    write_opt_outs(
        &mut h,
        &format!(
            "# objections (HR)\n\n{}   # by UPN\n{}\n",
            p.upn,
            invited_address(&g)
        ),
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mail = p.mail.as_deref().unwrap();
    assert_left_out(&h, &[mail], &[&p.display_name, &g.display_name]);
    let wrote = forwards(&h).iter().filter(|f| f.1 == mail).count() as u64;
    assert!(
        wrote > 0 && skipped(&run, "opted_out") >= wrote,
        "{}",
        run.summary()
    );
    // The posted message stays, without either name, mentioning only the one left.
    let held = h.received();
    let doc = held
        .values()
        .find(|d| {
            d["id"]
                == h.doc_id(
                    &h.emu
                        .truth()
                        .into_iter()
                        .find(|t| {
                            t.message_id == post.message_id && t.channel_id == post.channel_id
                        })
                        .unwrap(),
                )
                .as_str()
        })
        .unwrap();
    assert_eq!(
        doc["mentions"],
        serde_json::json!([m.mail.clone().unwrap()])
    );
    let text = doc["content"].as_str().unwrap();
    assert!(
        text.contains(&m.display_name) && text.contains("please review"),
        "{text}"
    );
    h.assert_private(&[&run]);
    h.assert_private_people(&[&run], &[p, g]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_person_stays_out_when_the_former_mail_is_listed() {
    let mut h = Harness::new(spec()).await;
    let p = busy_member(&h);
    let old = p.mail.clone().unwrap();
    let m = h
        .emu
        .people()
        .into_iter()
        .find(|x| {
            !x.guest && x.mail.is_some() && x.id != p.id && x.display_name != "Knowledge Connector"
        })
        .unwrap();
    h.emu.grant_full_profiles(true);
    write_opt_outs(&mut h, &format!("{old}\n"));
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_left_out(&h, &[&old], &[&p.display_name]);
    // The mail changes; the HR file still names the old one.
    let new = "renamed.after.marriage@contoso.example";
    h.emu.change_mail(&p.id, new);
    let c = h
        .emu
        .channels()
        .into_iter()
        .find(|c| !c.team_private)
        .unwrap();
    h.emu
        .post_as(&c.team_id, &c.channel_id, &p.id, &[&m.id])
        .unwrap();
    h.emu
        .post_as(&c.team_id, &c.channel_id, &m.id, &[&p.id])
        .unwrap();
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(skipped(&second, "opted_out") >= 1, "{}", second.summary());
    assert_left_out(&h, &[&old, new], &[&p.display_name]);
    assert!(h
        .sink
        .documents()
        .iter()
        .all(|d| !d.to_string().contains(new)));
    let mut renamed = p.clone();
    renamed.mail = Some(new.into());
    h.assert_private_people(&[&first, &second], &[p, renamed]);
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_that_match_no_one_are_counted_and_object_ids_still_apply() {
    let mut h = Harness::new(spec()).await;
    let p = busy_member(&h);
    // Without full profiles a former mail is not readable: the entry matches no one and
    // the run says so, by count. The object id needs no directory at all.
    write_opt_outs(
        &mut h,
        &format!("gone.person@contoso.example\n{}\n", p.id.to_uppercase()),
    );
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_left_out(&h, &[p.mail.as_deref().unwrap()], &[&p.display_name]);
    let warned = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("match no one"))
        })
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert_eq!(warned["entries"], 1, "{warned}");
    assert!(!run.stderr.contains("gone.person"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_opt_out_file_is_read_every_run_and_a_missing_one_is_78() {
    let mut h = Harness::new(spec()).await;
    let p = busy_member(&h);
    write_opt_outs(&mut h, "# nobody yet\n");
    let first = h.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(skipped(&first, "opted_out"), 0);
    // HR adds the person; the config is untouched.
    std::fs::write(
        h.dir.path().join("opt-out.txt"),
        format!("{}\n", p.mail.clone().unwrap()),
    )
    .unwrap();
    let c = h
        .emu
        .channels()
        .into_iter()
        .find(|c| !c.team_private)
        .unwrap();
    let key = h
        .emu
        .post_as(&c.team_id, &c.channel_id, &p.id, &[])
        .unwrap();
    let second = h.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(skipped(&second, "opted_out"), 1, "{}", second.summary());
    let t = h
        .emu
        .truth()
        .into_iter()
        .find(|t| t.message_id == key.message_id && t.channel_id == key.channel_id)
        .unwrap();
    assert!(!h.received().contains_key(&h.doc_id(&t)));
    // The file goes missing: exit 78 before anything is asked of Graph.
    std::fs::remove_file(h.dir.path().join("opt-out.txt")).unwrap();
    let before = h.emu.stats().requests;
    let third = h.run(&["run"]).await;
    assert_eq!(third.code, 78, "{}", third.stderr);
    assert_eq!(h.emu.stats().requests, before);
    let e = crate::util::final_error(&third.stderr);
    assert!(
        e.contains("exclude_people_file") && e.contains("opt-out.txt"),
        "{e}"
    );
    let check = h.run(&["config", "check"]).await;
    assert_eq!(check.code, 78, "{}", check.stderr);
    h.assert_private_people(&[&first, &second, &third, &check], &[p]);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_shows_how_many_entries_never_which() {
    let mut h = Harness::new(spec()).await;
    let p = busy_member(&h);
    h.set(
        "privacy",
        &format!("exclude_people = [{:?}]", p.mail.clone().unwrap()),
    );
    // The same person twice more, by object id and (in another case) by mail.
    let shouted = p.mail.clone().unwrap().to_uppercase();
    write_opt_outs(&mut h, &format!("{}\n{shouted}\n", p.id));
    let r = h.run(&["config", "check"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("# [privacy] exclude_people: 1 entries (not shown)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("readable; 2 entries in all"),
        "{}",
        r.stdout
    );
    let doctor = h.run(&["doctor"]).await;
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);
    assert!(
        doctor
            .stdout
            .contains("2 opt-out entries resolve to 1 people"),
        "{}",
        doctor.stdout
    );
    h.assert_private_people(&[&r, &doctor], &[p]);
}
