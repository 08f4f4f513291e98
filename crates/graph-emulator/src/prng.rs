//! Deterministic randomness for the generated tenant.
//!
//! The emulator must produce the same tenant for the same seed on every machine, so it uses a
//! splitmix64 stream instead of an OS-seeded generator. Separate concerns (users, each channel,
//! mutations, token minting) fork their own stream so that changing one part of the generation
//! does not reshuffle everything else.

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An independent stream derived from this one and a label.
    pub(crate) fn fork(&self, label: &str) -> Rng {
        Rng(self.0 ^ mix_str(label))
    }

    /// Uniform in `0..n` (0 when `n == 0`). The modulo bias is irrelevant at these sizes.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `pct` percent.
    pub(crate) fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// A version-4-looking GUID, the shape Entra ID uses for user, team and tenant ids.
    pub(crate) fn guid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }

    pub(crate) fn hex(&mut self, len: usize) -> String {
        self.chars(len, b"0123456789abcdef")
    }

    /// Lowercase letters and digits, used for the text markers.
    pub(crate) fn alnum(&mut self, len: usize) -> String {
        self.chars(len, b"abcdefghijklmnopqrstuvwxyz0123456789")
    }

    fn chars(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| alphabet[self.index(alphabet.len())] as char)
            .collect()
    }
}

/// FNV-1a, used to turn labels and ids into stream offsets and deterministic decisions.
pub(crate) fn mix_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.guid(), b.guid());
        assert_eq!(a.alnum(10), b.alnum(10));
    }

    #[test]
    fn guid_shape() {
        let g = Rng::new(1).guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.as_bytes()[14], b'4');
    }
}
