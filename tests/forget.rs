//! Erasure after an objection (issue 14): `forget --person` deletes exactly the documents
//! that person wrote — compared with the tenant's ground truth — sends the documents that
//! mention them again without them, touches nothing else, resumes after `kill -9`, counts
//! without sending on `--dry-run`, and leaves no trace of whom it was for.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use graph_emulator::{Expected, Person, TenantSpec};
use serde_json::Value;

use crate::util::Harness;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 33,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 30,
        max_replies: 3,
        users: 12,
        ..TenantSpec::default()
    }
}

/// A member who wrote the most forwarded messages.
fn author(h: &Harness) -> Person {
    let truth = h.emu.truth();
    h.emu
        .people()
        .into_iter()
        .filter(|p| !p.guest && p.mail.is_some() && p.display_name != "Knowledge Connector")
        .max_by_key(|p| {
            truth
                .iter()
                .filter(|t| !t.team_private)
                .filter(|t| matches!(&t.expected, Expected::Forward { author, .. } if Some(author) == p.mail.as_ref()))
                .count()
        })
        .unwrap()
}

/// Ids of the documents `mail` wrote that a first run forwarded (ground truth).
fn written_by(h: &Harness, mail: &str) -> BTreeSet<String> {
    h.expected(false)
        .into_iter()
        .filter(|(_, t)| matches!(&t.expected, Expected::Forward { author, .. } if author == mail))
        .map(|(id, _)| id)
        .collect()
}

/// Ids of the documents that mention `mail` (and were not written by them).
fn mentioning(h: &Harness, mail: &str) -> BTreeSet<String> {
    h.expected(false)
        .into_iter()
        .filter(|(_, t)| matches!(&t.expected, Expected::Forward { author, mentions, .. } if author != mail && mentions.iter().any(|m| m == mail)))
        .map(|(id, _)| id)
        .collect()
}

/// The documents of the batches the sink received from the `from`-th on, by op.
fn sent_since(h: &Harness, from: usize) -> (BTreeSet<String>, Vec<Value>) {
    let docs: Vec<Value> = h.sink.batches()[from..]
        .iter()
        .filter(|b| (200..300).contains(&b.status))
        .flat_map(|b| b.documents.clone())
        .collect();
    let deletes = docs
        .iter()
        .filter(|d| d["op"] == "delete")
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let upserts = docs.into_iter().filter(|d| d["op"] == "upsert").collect();
    (deletes, upserts)
}

fn status_json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_deletes_exactly_that_persons_documents_and_nothing_else() {
    let mut h = Harness::new(spec()).await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let p = author(&h);
    let mail = p.mail.clone().unwrap();
    let (wrote, named) = (written_by(&h, &mail), mentioning(&h, &mail));
    assert!(
        wrote.len() >= 3 && !named.is_empty(),
        "{} / {}",
        wrote.len(),
        named.len()
    );
    let before = h.received();

    // The procedure: the person into the opt-out list, then forget.
    h.set("privacy", &format!("exclude_people = [{:?}]", p.id));
    let batches = h.sink.batches().len();
    let forget = h.run(&["forget", "--person", &mail]).await;
    assert_eq!(forget.code, 0, "{}", forget.stderr);
    let (deletes, upserts) = sent_since(&h, batches);
    assert_eq!(
        deletes, wrote,
        "the deletes are exactly the person's documents"
    );
    let resent: BTreeSet<String> = upserts
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        resent.is_subset(&named),
        "only documents that mention the person are sent again"
    );
    for d in &upserts {
        assert!(
            !d.to_string().contains(&mail),
            "a re-sent document still names the person"
        );
        let old = &before[d["id"].as_str().unwrap()];
        assert_eq!(
            (&d["author"], &d["created_at"]),
            (&old["author"], &old["created_at"])
        );
    }
    assert!(
        forget
            .stdout
            .contains(&format!("sent {} delete(s)", wrote.len())),
        "{}",
        forget.stdout
    );
    assert!(
        forget.stdout.contains("the erasure is complete"),
        "{}",
        forget.stdout
    );
    // The ingest: nothing by the person, no mention of them, everyone else's still there.
    let after = h.received();
    for (id, doc) in &before {
        let now = &after[id];
        if wrote.contains(id) {
            assert_eq!(now["op"], "delete");
        } else {
            assert_eq!(now["op"], "upsert", "{id} was deleted but is not theirs");
            assert!(!now["mentions"].to_string().contains(&mail));
            assert_eq!(now["author"], doc["author"]);
        }
    }
    // A finished erasure leaves nothing behind; a later run forwards nothing of theirs.
    let status = h.run(&["status", "--json"]).await;
    assert!(
        status_json(&status.stdout)["forget"].is_null(),
        "{}",
        status.stdout
    );
    let again = h.run(&["run"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    h.assert_private(&[&run, &forget, &again]);
    h.assert_private_people(&[&forget, &again, &status], &[p]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_counts_without_sending_or_storing() {
    let h = Harness::new(spec()).await;
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let p = author(&h);
    let wrote = written_by(&h, p.mail.as_deref().unwrap());
    let batches = h.sink.batches().len();
    let dry = h.run(&["forget", "--person", &p.upn, "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(h.sink.batches().len(), batches, "a dry run sends nothing");
    assert!(
        dry.stdout.contains(&format!(
            "dry run: {} document(s) of this person would be deleted",
            wrote.len()
        )),
        "{}",
        dry.stdout
    );
    let status = h.run(&["status", "--json"]).await;
    assert!(status_json(&status.stdout)["forget"].is_null());
    // --since narrows it to what was created since.
    let created: Vec<_> = h
        .expected(false)
        .into_iter()
        .filter(|(id, _)| wrote.contains(id))
        .map(|(_, t)| t.created)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let since = created[created.len() / 2];
    let newer = created.iter().filter(|c| **c >= since).count();
    let arg = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let narrow = h
        .run(&["forget", "--person", &p.id, "--since", &arg, "--dry-run"])
        .await;
    assert_eq!(narrow.code, 0, "{}", narrow.stderr);
    assert!(
        narrow
            .stdout
            .contains(&format!("dry run: {newer} document(s)")),
        "{newer}: {}",
        narrow.stdout
    );
    h.assert_private_people(&[&dry, &narrow, &status], &[p]);
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_not_in_the_directory_is_a_usage_error() {
    let h = Harness::new(spec()).await;
    let r = h
        .run(&["forget", "--person", "nobody.here@contoso.example"])
        .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    let e = crate::util::final_error(&r.stderr);
    assert!(e.contains("object id"), "{e}");
    assert!(
        !r.stderr.contains("nobody.here"),
        "the person is not repeated"
    );
    let bad = h.run(&["forget", "--person", "Megan Bowen"]).await;
    assert_eq!(bad.code, 64, "{}", bad.stderr);
}

/// One busy channel: many message-list pages, so a kill lands in the middle.
fn busy() -> TenantSpec {
    TenantSpec {
        seed: 34,
        teams: 1,
        channels_per_team: 1,
        messages_per_channel: 400,
        max_replies: 1,
        users: 6,
        ..TenantSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_forget_resumes_where_it_stopped() {
    let mut h = Harness::new(busy()).await;
    h.set("ingest", "batch_size = 5");
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let p = author(&h);
    let mail = p.mail.clone().unwrap();
    let wrote = written_by(&h, &mail);
    h.set("privacy", &format!("exclude_people = [{mail:?}]"));
    h.emu.set_latency(Duration::from_millis(40));
    let batches = h.sink.batches().len();
    let mut child = h
        .command(&["forget", "--person", &mail])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the first deletes arrived, well before the last page.
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.sink.batches().len() == batches && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let (first_part, _) = sent_since(&h, batches);
    assert!(
        !first_part.is_empty() && first_part.len() < wrote.len(),
        "{} of {}",
        first_part.len(),
        wrote.len()
    );
    let status = h.run(&["status", "--json"]).await;
    let v = status_json(&status.stdout);
    assert!(v["forget"].is_object(), "{}", status.stdout);
    // Another erasure is refused while this one is unfinished.
    let other = h
        .emu
        .people()
        .into_iter()
        .find(|x| {
            x.mail.is_some() && !x.guest && x.id != p.id && x.display_name != "Knowledge Connector"
        })
        .unwrap();
    let refused = h.run(&["forget", "--person", &other.id]).await;
    assert_eq!(refused.code, 64, "{}", refused.stderr);
    // The same command again resumes: it reads fewer pages than the whole channel.
    h.emu.set_latency(Duration::ZERO);
    let messages_before = h.emu.stats().by_route.get("messages").copied().unwrap_or(0);
    let resumed = h.run(&["forget", "--person", &p.id]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let pages = h.emu.stats().by_route["messages"] - messages_before;
    assert!(
        pages < 400 / 50,
        "the rerun read {pages} pages: it started over"
    );
    let (deletes, _) = sent_since(&h, batches);
    assert_eq!(
        deletes, wrote,
        "every document of theirs, and only those, got a delete"
    );
    let done = h.run(&["status", "--json"]).await;
    assert!(
        status_json(&done.stdout)["forget"].is_null(),
        "{}",
        done.stdout
    );
    h.assert_private_people(&[&status, &refused, &resumed, &done], &[p]);
}
