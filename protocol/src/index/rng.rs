//! A session's own CSPRNG: SHA-512 in counter mode over a 32-byte seed drawn once from
//! the caller's RNG, so a session draws blinds and proof randomness batch by batch
//! without holding the caller's RNG.

use std::convert::Infallible;

use rand_core::{CryptoRng, TryCryptoRng, TryRng};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

const LABEL: &[u8] = b"blindmatch-v2 index session rng";

/// SHA-512(LABEL || seed || counter) blocks, used once each; wiped on drop.
pub(super) struct SessionRng {
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
    block: Zeroizing<[u8; 64]>,
    used: usize,
}

impl SessionRng {
    /// A generator seeded from `rng`.
    pub(super) fn draw<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self {
            seed,
            counter: 0,
            block: Zeroizing::new([0; 64]),
            used: 64,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha512::new();
        h.update(LABEL);
        h.update(self.seed.as_ref());
        h.update(self.counter.to_be_bytes());
        *self.block = h.finalize().into();
        self.counter += 1;
        self.used = 0;
    }
}

impl TryRng for SessionRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut word = [0u8; 4];
        self.try_fill_bytes(&mut word)?;
        Ok(u32::from_le_bytes(word))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut word = [0u8; 8];
        self.try_fill_bytes(&mut word)?;
        Ok(u64::from_le_bytes(word))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let mut filled = 0;
        while filled < dst.len() {
            if self.used == 64 {
                self.refill();
            }
            let take = (64 - self.used).min(dst.len() - filled);
            dst[filled..filled + take].copy_from_slice(&self.block[self.used..self.used + take]);
            // Each output byte is used once and wiped from the block.
            self.block[self.used..self.used + take].fill(0);
            self.used += take;
            filled += take;
        }
        Ok(())
    }
}

impl TryCryptoRng for SessionRng {}
