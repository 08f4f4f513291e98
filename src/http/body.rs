//! Reading response bodies with a cap (issue 11, issue 12 item 7): a page is read chunk by
//! chunk, decompressed size counted, and fails past `[limits] max_response_size` instead
//! of growing until the kernel kills the process. Error bodies are read to a few KB only.

use super::TransportError;

/// Error bodies are only ever mined for an error code: this much is plenty.
const ERROR_BODY_CAP: usize = 8 * 1024;

#[derive(Debug)]
pub enum BodyError {
    /// The body passed the cap (decompressed bytes).
    TooLarge,
    Transport(TransportError),
}

/// A body past this size must hold a [`BigBodies`] permit to go on.
pub const BIG_BODY: usize = 4 * 1024 * 1024;

/// How many bodies larger than [`BIG_BODY`] may be in memory at once (read, parsed and
/// processed), so giant pages (thousand-reply threads inline) cost a bounded amount:
/// `permits × 2 × max_response_size` at most, whatever `concurrency` is.
pub type BigBodies = std::sync::Arc<tokio::sync::Semaphore>;

/// A body read whole, and the permit it needed if it was big (held until it is processed).
pub struct Read {
    pub bytes: Vec<u8>,
    pub big: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The whole body, if it stays within `cap` bytes after decompression. Past
/// [`BIG_BODY`] the read waits for a permit of `big` (when given) before it goes on.
///
/// Chunks are kept as they come and joined once at the end (exactly sized), instead of
/// growing one buffer by doubling: a body near the cap then costs about twice its size at
/// the join, never the sum of every doubling an allocator has not given back yet.
pub async fn read_capped(
    resp: &mut reqwest::Response,
    cap: u64,
    big: Option<&BigBodies>,
) -> Result<Read, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge);
    }
    let mut chunks = Vec::new();
    let mut len = 0usize;
    let mut permit = None;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(TransportError::new(&e)))?
    {
        len += chunk.len();
        if len as u64 > cap {
            return Err(BodyError::TooLarge);
        }
        if let (Some(big), None) = (big, &permit) {
            if len > BIG_BODY {
                let p = big.clone().acquire_owned().await;
                permit = Some(p.expect("the big-body semaphore is never closed"));
            }
        }
        chunks.push(chunk);
    }
    let mut bytes = Vec::with_capacity(len);
    for chunk in chunks {
        bytes.extend_from_slice(&chunk);
    }
    Ok(Read { bytes, big: permit })
}

/// At most the first few KB of an error body; the rest is dropped unread (the connection
/// is closed rather than drained). A broken body reads as what arrived.
pub async fn read_error_body(resp: &mut reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = ERROR_BODY_CAP - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= ERROR_BODY_CAP {
            break;
        }
    }
    out
}
