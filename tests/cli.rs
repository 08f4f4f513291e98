//! Command-line behaviour: usage errors are 64, help is 0.

use crate::util::bin;

async fn run(args: &[&str]) -> crate::util::Run {
    bin(
        &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &Default::default(),
    )
    .await
}

#[tokio::test]
async fn bad_flags_are_64() {
    assert_eq!(run(&["run", "--no-such-flag"]).await.code, 64);
    assert_eq!(run(&["frobnicate"]).await.code, 64);
    assert_eq!(run(&["run", "--shard", "3/3"]).await.code, 64);
}

#[tokio::test]
async fn flag_values_are_parsed_by_clap_before_the_config_is_read() {
    // Each is a usage error (64) naming the flag, though no config exists: the value is
    // checked first, and an absurd duration is refused instead of overflowing.
    for (args, flag) in [
        (
            &["run", "--max-duration", "500000000000years"][..],
            "--max-duration",
        ),
        (&["run", "--max-duration", "soon"][..], "--max-duration"),
        (&["run", "--shard", "x"][..], "--shard"),
        (&["backfill", "--since", "last tuesday"][..], "--since"),
        (
            &["backfill", "--since", "2024-01-01", "--until", "later"][..],
            "--until",
        ),
    ] {
        let mut full = vec!["--config", "/nonexistent.toml"];
        full.extend_from_slice(args);
        let r = run(&full).await;
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(flag), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

#[tokio::test]
async fn help_and_version_are_0() {
    let help = run(&["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"));
    assert_eq!(run(&["--version"]).await.code, 0);
}

#[tokio::test]
async fn a_command_without_its_config_is_78() {
    let r = run(&[
        "--config",
        "/nonexistent.toml",
        "backfill",
        "--since",
        "2024-01-01",
    ])
    .await;
    assert_eq!(r.code, 78, "{}", r.stderr);
}
