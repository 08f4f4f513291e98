//! `teams-connector emulator --port 0 --print-json` as the benchmark starts it: every shape
//! it measures must be reproducible from these flags.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The emulator command in the background and the JSON line it printed; killed on drop.
struct Served {
    child: Child,
    info: Value,
    http: reqwest::Client,
    access: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    async fn start(flags: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_teams-connector"))
            .args(["--log-format", "json", "emulator", "--port", "0"])
            .args(["--print-json", "--quiet-batches"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("emulator starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line).expect("one JSON line");
        let http = reqwest::Client::new();
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", info["client_id"].as_str().unwrap()),
            ("refresh_token", info["refresh_token"].as_str().unwrap()),
        ];
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            info["login_url"].as_str().unwrap(),
            info["tenant_id"].as_str().unwrap()
        );
        let token: Value = http
            .post(token_url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Served {
            access: token["access_token"].as_str().unwrap().to_owned(),
            child,
            info,
            http,
        }
    }

    fn graph(&self, path: &str) -> String {
        format!("{}/v1.0/{path}", self.info["graph_url"].as_str().unwrap())
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(&self.access)
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, url: &str) -> Value {
        self.get(url).await.json().await.unwrap()
    }

    async fn stats(&self) -> Value {
        let url = self.info["stats_url"].as_str().unwrap();
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `(team id, channel ids)` of the first team Graph lists.
    async fn first_team(&self) -> (String, Vec<String>) {
        let teams = self.json(&self.graph("me/joinedTeams")).await;
        let team = teams["value"][0]["id"].as_str().unwrap().to_owned();
        let chans = self
            .json(&self.graph(&format!("teams/{team}/channels")))
            .await;
        let ids = chans["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        (team, ids)
    }
}

#[tokio::test]
async fn the_emulator_command_prints_json_and_enforces_its_flags() {
    let emu = Served::start(&["--channel-rps", "1", "--latency", "5ms"]).await;
    let (team, chans) = emu.first_team().await;
    let url = emu.graph(&format!("teams/{team}/channels/{}/messages", chans[0]));
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(emu.get(&url).await.status().as_u16());
    }
    let stats = emu.stats().await;
    assert_eq!(statuses, [200, 429]);
    assert_eq!(stats["limited"], 1);
    assert_eq!(stats["message_requests"], 2);
}

#[tokio::test]
async fn team_limits_bare_429s_a_long_channel_and_a_slow_sink_come_from_flags() {
    let emu = Served::start(&[
        "--teams",
        "2",
        "--channels",
        "3",
        "--messages",
        "2",
        "--replies",
        "2",
        "--exact-replies",
        "--long-channel",
        "60",
        "--team-rps",
        "2",
        "--team-burst",
        "2",
        "--omit-retry-after",
        "1",
        "--sink-delay",
        "200ms",
    ])
    .await;
    let (team, chans) = emu.first_team().await;
    // The channel list took one of the team's two tokens; the next two requests find one.
    let list = |ch: &str| {
        emu.graph(&format!(
            "teams/{team}/channels/{ch}/messages?$top=50&$expand=replies"
        ))
    };
    let first = emu.json(&list(&chans[0])).await;
    let roots = first["value"].as_array().unwrap();
    assert_eq!(roots.len(), 50, "the long channel has more than a page");
    assert!(roots
        .iter()
        .all(|r| r["replies"].as_array().unwrap().len() == 2));
    let bare = emu.get(&list(&chans[1])).await;
    assert_eq!(bare.status(), 429);
    assert!(bare.headers().get("retry-after").is_none());
    let stats = emu.stats().await;
    assert_eq!(stats["limited_by_scope"]["team"], 1);
    assert_eq!(stats["limited_without_retry_after"], 1);
    assert_eq!(stats["limits"]["team_rps"], 2.0);
    let started = Instant::now();
    let post = emu
        .http
        .post(emu.info["ingest_url"].as_str().unwrap())
        .bearer_auth(emu.info["ingest_token"].as_str().unwrap())
        .json(&json!({"documents": [{"id": "a", "op": "delete"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn bad_limit_flags_are_usage_errors() {
    for flags in [
        &["--omit-retry-after", "1.5"][..],
        &["--tenant-routes", "everything"],
        &["--team-rps", "0"],
        &["--sink-delay", "soon"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_teams-connector"))
            .args(["emulator", "--port", "0", "--print-json"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{flags:?}: {stderr}");
        assert!(stderr.contains(flags[0]), "{flags:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{flags:?}");
    }
}
