//! FNV-1a, the one small non-cryptographic hash the scheduler uses for fingerprints, DAG
//! versions and retry jitter: stable across runs and platforms, unlike `std`'s hasher.

/// An FNV-1a 64-bit hash being built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// The FNV-1a hash of `text`.
pub(crate) fn hash(text: &str) -> u64 {
    let mut h = Fnv::new();
    h.write(text.as_bytes());
    h.finish()
}
