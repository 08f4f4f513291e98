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

/// The whole body, if it stays within `cap` bytes after decompression.
pub async fn read_capped(resp: &mut reqwest::Response, cap: u64) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge);
    }
    let hint = resp.content_length().unwrap_or(0).min(cap).min(1 << 20) as usize;
    let mut out = Vec::with_capacity(hint);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(TransportError::new(&e)))?
    {
        if (out.len() + chunk.len()) as u64 > cap {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
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
