//! What a hostile server answers: any status, headers and body. The bodies that would hurt
//! the test process if they were held in memory (1 GiB, endless, gzip bombs) are generated
//! chunk by chunk as the client reads them, so serving them costs the test almost nothing.

use std::io::Write;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// Filler of the generated bodies: spaces, which are JSON whitespace, so a body that opens
/// with `{"value":[` stays plausible however much of it a client reads.
const CHUNK: usize = 64 * 1024;
static SPACES: [u8; CHUNK] = [b' '; CHUNK];

/// How a body is produced.
#[derive(Debug, Clone)]
pub enum Payload {
    Bytes(Bytes),
    /// `prefix`, then spaces up to `len` bytes in all, with a `Content-Length`.
    Huge {
        prefix: Bytes,
        len: u64,
    },
    /// `prefix`, then spaces for as long as the client reads.
    Endless {
        prefix: Bytes,
    },
    /// `prefix`, then nothing: the connection stays open and silent.
    Stall {
        prefix: Bytes,
    },
    /// `Content-Encoding: gzip`: a few KB on the wire per MB of spaces after `prefix`,
    /// without end.
    GzipBomb {
        prefix: Bytes,
    },
}

/// One answer: status, headers, body. `never` answers are not answered at all.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Payload,
    /// The request hangs: no status line is ever sent.
    pub never: bool,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Payload::Bytes(Bytes::new()),
            never: false,
        }
    }

    pub fn json(status: u16, v: &Value) -> Answer {
        Answer::status(status)
            .header("Content-Type", "application/json")
            .body(Payload::Bytes(v.to_string().into()))
    }

    /// A 3xx to `location`.
    pub fn redirect(status: u16, location: &str) -> Answer {
        Answer::status(status).header("Location", location)
    }

    /// Graph's throttling answer with `Retry-After` in seconds.
    pub fn throttled(retry_after: &str) -> Answer {
        let body = serde_json::json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}});
        Answer::json(429, &body).header("Retry-After", retry_after)
    }

    /// A request that is never answered.
    pub fn never() -> Answer {
        Answer {
            never: true,
            ..Answer::status(200)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: Payload) -> Answer {
        if matches!(body, Payload::GzipBomb { .. }) {
            self = self.header("Content-Encoding", "gzip");
        }
        if let Payload::Huge { len, .. } = &body {
            self = self.header("Content-Length", &len.to_string());
        }
        self.body = body;
        self
    }

    /// A JSON-ish `status` answer whose body is `payload`.
    pub fn json_body(status: u16, payload: Payload) -> Answer {
        Answer::status(status)
            .header("Content-Type", "application/json")
            .body(payload)
    }

    pub fn into_response(self) -> Response {
        let mut resp = Response::new(body(self.body));
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }
}

/// A `{"value":[` opening: what a Graph page starts with.
pub fn page_opening() -> Bytes {
    Bytes::from_static(br#"{"value":["#)
}

type Chunk = Result<Bytes, std::io::Error>;

fn body(p: Payload) -> Body {
    use futures_util::stream::{self, StreamExt};
    match p {
        Payload::Bytes(b) => Body::from(b),
        Payload::Huge { prefix, len } => {
            let rest = len.saturating_sub(prefix.len() as u64);
            let tail = stream::unfold(rest, |left| async move {
                (left > 0).then(|| {
                    let n = left.min(CHUNK as u64) as usize;
                    (Ok::<_, std::io::Error>(spaces(n)), left - n as u64)
                })
            });
            Body::from_stream(stream::once(async { Ok::<_, std::io::Error>(prefix) }).chain(tail))
        }
        Payload::Endless { prefix } => Body::from_stream(endless(prefix, spaces(CHUNK))),
        Payload::GzipBomb { prefix } => {
            let mut head = gzip_header();
            head.extend_from_slice(&deflate_unit(&prefix));
            Body::from_stream(endless(head.into(), bomb_unit()))
        }
        Payload::Stall { prefix } => {
            let silence = stream::once(std::future::pending::<Chunk>());
            Body::from_stream(
                stream::once(async { Ok::<_, std::io::Error>(prefix) }).chain(silence),
            )
        }
    }
}

/// `first`, then `unit` again and again.
fn endless(first: Bytes, unit: Bytes) -> impl futures_util::Stream<Item = Chunk> + Send {
    use futures_util::stream::{self, StreamExt};
    stream::once(async { Ok(first) }).chain(stream::repeat_with(move || Ok(unit.clone())))
}

fn spaces(n: usize) -> Bytes {
    Bytes::from_static(&SPACES[..n])
}

/// A gzip member header (no name, no time, unknown OS).
pub fn gzip_header() -> Vec<u8> {
    vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
}

/// `data` as self-contained, non-final deflate blocks: a fresh compressor (no history to
/// refer back to) flushed to a byte boundary without a final block, so units can follow
/// one another in one stream.
pub fn deflate_unit(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("in memory");
    enc.flush().expect("in memory");
    enc.get_ref().clone()
}

/// One MiB of spaces, deflated (about 1 KB): the bomb's repeated unit, computed once.
pub fn bomb_unit() -> Bytes {
    static UNIT: OnceLock<Bytes> = OnceLock::new();
    UNIT.get_or_init(|| {
        let mut mib = Vec::with_capacity(1 << 20);
        for _ in 0..(1 << 20) / CHUNK {
            mib.write_all(&SPACES).expect("in memory");
        }
        deflate_unit(&mib).into()
    })
    .clone()
}
