//! Which curve25519-dalek arithmetic backend this process runs on.
//!
//! The backend is chosen in two steps: the build decides which backends are compiled in
//! (the repository's `.cargo/config.toml` adds AVX-512 IFMA on x86_64), and dalek picks
//! the best compiled-in one the CPU offers at run time (AVX-512 IFMA, then AVX2, then
//! serial). Benchmarks print this so that figures from different machines or builds are
//! never compared blindly.

/// The backend curve25519-dalek uses in this process, as dalek selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurveBackend {
    /// AVX-512 IFMA (compiled in, and this CPU has `avx512ifma` and `avx512vl`).
    Avx512Ifma,
    /// AVX2 (compiled in, and this CPU has `avx2`).
    Avx2,
    /// Portable 64-bit or 32-bit code.
    Serial,
    /// Formally verified field arithmetic from fiat-crypto (forced at build time).
    Fiat,
}

impl CurveBackend {
    /// The backend of this build on this CPU.
    pub fn detect() -> Self {
        if cfg!(curve25519_dalek_backend = "fiat") {
            return Self::Fiat;
        }
        if cfg!(curve25519_dalek_backend = "serial") {
            return Self::Serial;
        }
        if ifma_built() && cpu_has_ifma() {
            return Self::Avx512Ifma;
        }
        if cpu_has_avx2() {
            return Self::Avx2;
        }
        Self::Serial
    }

    /// A short name: `avx512ifma`, `avx2`, `serial` or `fiat`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Ifma => "avx512ifma",
            Self::Avx2 => "avx2",
            Self::Serial => "serial",
            Self::Fiat => "fiat",
        }
    }

    /// One line for people: what the CPU offers and what the build uses.
    pub fn describe() -> String {
        let backend = Self::detect();
        let ifma = if cpu_has_ifma() { "yes" } else { "no" };
        let built = if ifma_built() {
            "built in"
        } else {
            "not built in (RUSTFLAGS overrides .cargo/config.toml)"
        };
        format!(
            "curve25519-dalek backend {}: this CPU offers AVX-512 IFMA: {ifma}; IFMA backend {built}",
            backend.name()
        )
    }
}

/// Whether dalek compiled its IFMA backend: asked for by `--cfg`, or implied by a build
/// for a CPU with IFMA (`-C target-cpu=native` on such a machine).
fn ifma_built() -> bool {
    cfg!(curve25519_dalek_backend = "avx512")
        || cfg!(all(
            target_feature = "avx512ifma",
            target_feature = "avx512vl"
        ))
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_ifma() -> bool {
    std::arch::is_x86_feature_detected!("avx512ifma")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_ifma() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx2() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_consistent_with_the_cpu() {
        let backend = CurveBackend::detect();
        if backend == CurveBackend::Avx512Ifma {
            assert!(cpu_has_ifma());
        }
        assert!(CurveBackend::describe().contains(backend.name()));
    }
}
