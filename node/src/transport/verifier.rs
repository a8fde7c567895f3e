//! Certificate verifiers that accept exactly the pinned fingerprints.
//!
//! There is no CA: a peer is trusted because the SHA-256 of its certificate is in our
//! pinned set, compared in constant time. Handshake signatures are still verified with
//! ring (`verify_tls13_signature`), which proves the peer holds the certificate's key.
//! Names, validity periods and chains are ignored: pinning replaces them.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use subtle::{Choice, ConstantTimeEq};

use crate::identity::Fingerprint;

/// The set of peer fingerprints a server accepts, shared with its verifier.
///
/// Cloning shares the set: updating a clone (e.g. after `peer add` and a reload)
/// changes what the running server accepts for new handshakes. Connections already
/// established are not affected.
#[derive(Clone, Default)]
pub struct PinnedPeers(Arc<RwLock<Vec<Fingerprint>>>);

impl PinnedPeers {
    /// A set holding `fingerprints` (duplicates are dropped).
    pub fn new(fingerprints: impl IntoIterator<Item = Fingerprint>) -> Self {
        let pinned = Self::default();
        pinned.replace(fingerprints);
        pinned
    }

    /// Adds a fingerprint; returns false if it was already pinned.
    pub fn insert(&self, fingerprint: Fingerprint) -> bool {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if set.contains(&fingerprint) {
            return false;
        }
        set.push(fingerprint);
        true
    }

    /// Removes a fingerprint; returns false if it was not pinned.
    pub fn remove(&self, fingerprint: &Fingerprint) -> bool {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let before = set.len();
        set.retain(|pinned| pinned != fingerprint);
        set.len() != before
    }

    /// Replaces the whole set (on configuration reload).
    pub fn replace(&self, fingerprints: impl IntoIterator<Item = Fingerprint>) {
        let mut fresh: Vec<Fingerprint> = fingerprints.into_iter().collect();
        fresh.sort_unstable();
        fresh.dedup();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// Whether `fingerprint` is pinned. Runs in time independent of which entry (if
    /// any) matches.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        let set = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let found = set.iter().fold(Choice::from(0), |found, pinned| {
            found | pinned.0.ct_eq(&fingerprint.0)
        });
        found.into()
    }

    /// Number of pinned fingerprints.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no fingerprint is pinned (the server then refuses everyone).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for PinnedPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.0.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_tuple("PinnedPeers").field(&*set).finish()
    }
}

/// Server side: accepts a client certificate only if its fingerprint is pinned.
#[derive(Debug)]
pub(crate) struct PinnedClientVerifier {
    pinned: PinnedPeers,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedClientVerifier {
    pub(crate) fn new(pinned: PinnedPeers, algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { pinned, algorithms }
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let fingerprint = Fingerprint::of_cert_der(end_entity);
        if self.pinned.contains(&fingerprint) {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::warn!(
                %fingerprint,
                "refused a client whose certificate is not pinned; \
                 if this is a partner, add it with `blindmatch peer add`"
            );
            // Sent to the client as the `access_denied` alert.
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Client side: accepts the server only if its certificate has the one fingerprint
/// expected for this connection, and remembers what it saw for the error message.
#[derive(Debug)]
pub(crate) struct PinnedServerVerifier {
    expected: Fingerprint,
    mismatch: Mutex<Option<Fingerprint>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    pub(crate) fn new(expected: Fingerprint, algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self {
            expected,
            mismatch: Mutex::new(None),
            algorithms,
        }
    }

    /// The fingerprint the server presented, if it was not the expected one.
    pub(crate) fn mismatch(&self) -> Option<Fingerprint> {
        *self.mismatch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let fingerprint = Fingerprint::of_cert_der(end_entity);
        if fingerprint.ct_eq(&self.expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            *self.mismatch.lock().unwrap_or_else(PoisonError::into_inner) = Some(fingerprint);
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS 1.2 is never offered (the configs allow TLS 1.3 only), so this is unreachable
/// in practice; refuse rather than trust.
fn tls12_refused() -> Error {
    Error::General("TLS 1.2 is not supported; blindmatch speaks TLS 1.3 only".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pinned_peers_insert_remove_replace() {
        let a = Fingerprint([1; 32]);
        let b = Fingerprint([2; 32]);
        let pinned = PinnedPeers::new([a, a]);
        assert_eq!(pinned.len(), 1);
        assert!(pinned.contains(&a) && !pinned.contains(&b));
        let shared = pinned.clone();
        assert!(shared.insert(b));
        assert!(!shared.insert(b));
        assert!(pinned.contains(&b));
        assert!(pinned.remove(&a));
        assert!(!pinned.remove(&a));
        assert!(!shared.contains(&a));
        pinned.replace([]);
        assert!(shared.is_empty());
        assert!(!shared.contains(&b));
    }
}
