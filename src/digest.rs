//! The one digest of the connector: SHA-256 over NUL-separated parts, written as lowercase
//! hex. Document ids, idempotency keys, page digests, token fingerprints and shard hashes
//! all come from here, so their framing cannot drift apart.

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// SHA-256 of `parts`, each but the first preceded by a NUL byte (so `["ab", "c"]` and
/// `["a", "bc"]` differ).
pub fn sha256<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(part);
    }
    h.finalize().into()
}

/// The first 128 bits of [`sha256`] as hex: stable opaque ids and keys.
pub fn short<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    hex(&sha256(parts)[..16])
}

/// `bytes` as lowercase hex, without a `format!` per byte (ids are on the per-message path).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn parts_are_framed() {
        let a = short([b"ab".as_slice(), b"c"]);
        assert_ne!(a, short([b"a".as_slice(), b"bc"]));
        assert_eq!(a.len(), 32);
    }
}
