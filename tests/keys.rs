//! Every key names what makes it unique (issue 10). A Teams message id is its creation time
//! in milliseconds and is unique only within its thread; a channel id only within its
//! team. Each test here builds the collision a narrower key would fall for.

use graph_emulator::{Change, EmulatorOptions, MessageKey, TenantSpec};

use crate::util::{assert_converged, Harness};

fn tenant() -> TenantSpec {
    TenantSpec {
        seed: 23,
        teams: 2,
        channels_per_team: 2,
        messages_per_channel: 10,
        max_replies: 2,
        users: 15,
        history_days: 10,
    }
}

/// Two threads of one crawled channel whose roots are forwarded (thread keys).
fn two_threads(h: &Harness) -> Vec<MessageKey> {
    let expected = h.expected(false);
    let mut roots: Vec<MessageKey> = expected
        .values()
        .filter(|t| t.thread_id == t.message_id)
        .map(|t| MessageKey {
            team_id: t.team_id.clone(),
            channel_id: t.channel_id.clone(),
            thread_id: t.thread_id.clone(),
            message_id: t.message_id.clone(),
        })
        .collect();
    roots.sort();
    let first = roots[0].clone();
    let pair: Vec<MessageKey> = roots
        .into_iter()
        .filter(|k| k.team_id == first.team_id && k.channel_id == first.channel_id)
        .take(2)
        .collect();
    assert_eq!(pair.len(), 2, "the channel has two forwarded roots");
    pair
}

async fn same_id_in_two_threads(edit_one_root: bool) {
    let opts = EmulatorOptions {
        reply_bumps_root: false,
        ..EmulatorOptions::default()
    };
    let mut h = Harness::with_options(tenant(), opts).await;
    h.set("crawl", "reply_window = \"30d\"");
    assert_eq!(h.run(&["run"]).await.code, 0);
    let threads = two_threads(&h);

    // Two replies in the same millisecond: the same message id in two threads.
    let added = h.emu.apply(Change::Reply(threads.clone())).added;
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].message_id, added[1].message_id);
    if edit_one_root {
        // Delta shows the first thread again (its reply inline); the second is found by
        // the reply sweep only.
        h.emu.apply(Change::Edit(vec![threads[0].clone()]));
    }
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);

    // Both edited in the same millisecond, then both deleted.
    h.emu.apply(Change::Edit(added.clone()));
    if edit_one_root {
        h.emu.apply(Change::Edit(vec![threads[0].clone()]));
    }
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);

    h.emu.apply(Change::Delete(added.clone()));
    if edit_one_root {
        h.emu.apply(Change::Edit(vec![threads[0].clone()]));
    }
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
    for key in &added {
        let id = teams_connector::transform::document_id(
            &h.emu.tenant_id(),
            &key.team_id,
            &key.channel_id,
            &key.thread_id,
            &key.message_id,
        );
        assert_eq!(h.received()[&id]["op"], "delete", "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_same_reply_id_in_two_threads_found_by_the_sweep() {
    same_id_in_two_threads(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_10_same_reply_id_in_two_threads_found_by_delta_and_the_sweep() {
    same_id_in_two_threads(true).await;
}
