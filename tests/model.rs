//! Cases found by checking what the ingest holds against the emulator's ground truth
//! (issue 10), pinned: each failed before its fix in `src/`.

use graph_emulator::{Change, NewChannel, Quirks, TenantSpec};

use crate::util::{assert_converged, Harness};

/// A channel without messages: Graph opens its delta round with an empty page and a
/// nextLink that answers 400 "Parameter 'DeltaToken' not supported"
/// (`error-400-delta-token-not-supported.json`). It must not fail the run, every run.
#[tokio::test(flavor = "multi_thread")]
async fn issue_10_an_empty_channel_whose_delta_cannot_be_followed_is_not_a_failure() {
    let h = Harness::new(TenantSpec::default()).await;
    h.emu.set_quirks(Quirks {
        empty_channel_delta_fails: true,
        ..Quirks::default()
    });
    let team = h.emu.truth()[0].team_id.clone();
    let added = h.emu.apply(Change::AddChannel(vec![NewChannel {
        team_id: team,
        channel_id: None,
    }]));
    for _ in 0..2 {
        let run = h.run(&["run"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_converged(&h, false);
    // Its first message arrives once it has one.
    h.emu.apply(Change::Root(added.channels.clone()));
    let run = h.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_converged(&h, false);
}
