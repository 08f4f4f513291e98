//! `teams-connector emulator --port 0 --print-json` as a child process: its connection
//! details, `/_emulator/stats` between runs and `POST /_emulator/stats/reset` before each.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running emulator and the JSON line it printed.
pub struct Emu {
    child: Child,
    info: Value,
}

impl Emu {
    /// Starts the emulator with `flags` (the tenant shape and its limits); stderr to `log`.
    pub fn start(bin: &Path, flags: &[String], log: &Path) -> Emu {
        let mut cmd = Command::new(bin);
        crate::measure::pin(&mut cmd, crate::measure::Role::Emulator);
        let mut child = cmd
            .args([
                "--log-format",
                "json",
                "emulator",
                "--port",
                "0",
                "--print-json",
            ])
            .arg("--quiet-batches")
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("emulator log"))
            .spawn()
            .expect("emulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("emulator prints its connection details");
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "emulator did not print JSON ({e}): {line:?}; see {}",
                log.display()
            )
        });
        Emu { child, info }
    }

    pub fn get(&self, key: &str) -> &str {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("the emulator printed no {key}"))
    }

    pub fn stats(&self) -> Value {
        let body = http(self.get("stats_url"), "GET");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats are JSON ({e}): {body:.200}"))
    }

    /// Starts the counters over (the buckets keep their state).
    pub fn reset(&self) {
        http(&format!("{}/reset", self.get("stats_url")), "POST");
    }

    pub fn stop(mut self) {
        // SIGTERM: the emulator shuts down cleanly and logs its totals.
        // SAFETY: the child is ours and not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request without a body; the response body.
fn http(url: &str, method: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut s = TcpStream::connect(host).expect("the emulator is reachable");
    write!(
        s,
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("sent");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    buf.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}
