//! Key-pinned mutual TLS: who may connect, and whom a dial accepts.
//!
//! There is no CA and no host name. Each side presents a self-signed
//! certificate for its grid key (`key`), and each side's verifier decides
//! on the key alone:
//!
//! - dialing, [`PinnedServer`] accepts exactly the key the caller expects
//!   for that peer (a MITM with any other key fails the handshake);
//! - accepting, [`KnownClients`] accepts a key in [`KnownKeys`], the set
//!   the daemon keeps as peers are added and removed (or any key while a
//!   pairing window is open; the endpoint then lets such a peer speak
//!   only `grid-pair/1`).
//!
//! Both verifiers check the handshake's CertificateVerify signature with
//! the provider's own helper ([`rustls::crypto::verify_tls13_signature`])
//! against the same certificate whose key they accepted, so accepting a
//! key means the peer proved it holds the private half. Only TLS 1.3 and
//! Ed25519 signatures are offered. Session resumption and 0-RTT are off,
//! so every connection runs the verifiers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::sync::watch;

use crate::key::{Credentials, PublicKey};
use crate::Alpn;

/// The keys allowed to connect to this grid, with each peer's local name.
///
/// Cheap to clone; clones share one set. The daemon inserts a key when a
/// peer is added and removes it when the peer is removed: new handshakes
/// see the change at once, and [`crate::serve`] closes a removed peer's
/// live connections ([`KnownKeys::removed`]).
#[derive(Clone, Default)]
pub struct KnownKeys {
    inner: Arc<Known>,
}

#[derive(Default)]
struct Known {
    names: RwLock<HashMap<PublicKey, String>>,
    pairing: AtomicBool,
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for KnownKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownKeys")
            .field("len", &self.len())
            .field("pairing", &self.is_pairing())
            .finish()
    }
}

impl KnownKeys {
    /// An empty set: nobody may connect.
    pub fn new() -> KnownKeys {
        KnownKeys::default()
    }

    /// Allows `key`, known locally as `name`; returns the name it had.
    pub fn insert(&self, key: PublicKey, name: impl Into<String>) -> Option<String> {
        let old = self.write().insert(key, name.into());
        self.bump();
        old
    }

    /// Forbids `key`; returns the name it had.
    pub fn remove(&self, key: &PublicKey) -> Option<String> {
        let old = self.write().remove(key);
        self.bump();
        old
    }

    /// Whether `key` may connect.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.read().contains_key(key)
    }

    /// The local name of `key`.
    pub fn name_of(&self, key: &PublicKey) -> Option<String> {
        self.read().get(key).cloned()
    }

    /// How many keys are known.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Opens or closes the pairing window. While it is open, handshakes
    /// from unknown keys succeed, and the endpoint lets such connections
    /// speak only [`Alpn::Pair`]; the pairing protocol authenticates them.
    pub fn set_pairing(&self, open: bool) {
        self.inner.pairing.store(open, Ordering::SeqCst);
        self.bump();
    }

    /// Whether the pairing window is open.
    pub fn is_pairing(&self) -> bool {
        self.inner.pairing.load(Ordering::SeqCst)
    }

    /// Resolves once `key` is no longer known (at once if it is not).
    pub async fn removed(&self, key: &PublicKey) {
        let mut rx = self.inner.changed.subscribe();
        loop {
            if !self.contains(key) {
                return;
            }
            // The sender lives in `self`, so this only fails if it is gone,
            // which cannot happen while we hold `self`.
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PublicKey, String>> {
        // A panic elsewhere while holding the lock leaves a valid map.
        self.inner
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PublicKey, String>> {
        self.inner
            .names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The rustls server side: our certificate, clients checked against
/// `known`, the ALPNs we serve.
pub(crate) fn server_tls(
    creds: &Credentials,
    known: KnownKeys,
    alpns: &[Alpn],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = provider();
    let verifier = KnownClients {
        known,
        algs: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            vec![creds.cert.clone()],
            PrivateKeyDer::Pkcs8(creds.key.clone_key()),
        )?;
    tls.alpn_protocols = alpns.iter().map(|a| a.as_bytes().to_vec()).collect();
    // Resumption would skip the client verifier on later connections, so
    // a removed peer could come back on an old ticket.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    Ok(tls)
}

/// The rustls client side for one dial: our certificate, the server pinned
/// to `expected`, one ALPN.
pub(crate) fn client_tls(
    creds: &Credentials,
    expected: PublicKey,
    alpn: Alpn,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = PinnedServer {
        expected,
        algs: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(
            vec![creds.cert.clone()],
            PrivateKeyDer::Pkcs8(creds.key.clone_key()),
        )?;
    tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    tls.enable_sni = false;
    Ok(tls)
}

/// ring: pure Rust and assembly, no cmake or nasm at build time.
///
/// Its TLS 1.3 suites, AES-128-GCM moved first (both sides prefer it, so
/// it is what two grids agree on): it is the suite QUIC itself requires,
/// and with AES instructions it takes 10 rounds a block to AES-256-GCM's
/// 14 (about 10% faster on 4 KiB packets here, `openssl speed`), the
/// default first choice. AES-256-GCM and ChaCha20-Poly1305 stay on offer.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// The reason a verifier gives for refusing a key, carried to the
/// refused side's error message.
#[derive(thiserror::Error)]
enum Refusal {
    #[error("peer key {got} is not the expected {expected}")]
    WrongKey { expected: PublicKey, got: PublicKey },
    #[error("key {0} is not a known peer")]
    Unknown(PublicKey),
    #[error("{0}")]
    Malformed(crate::key::KeyError),
}

/// rustls shows the reason with `{:?}`; make that the sentence.
impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn refuse(r: Refusal) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(r))))
}

/// Accepts a server whose key is exactly `expected`.
#[derive(Debug)]
struct PinnedServer {
    expected: PublicKey,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = PublicKey::from_cert(end_entity).map_err(|e| refuse(Refusal::Malformed(e)))?;
        if got != self.expected {
            return Err(refuse(Refusal::WrongKey {
                expected: self.expected,
                got,
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Accepts a client whose key is in `known`, or any well-formed Ed25519
/// certificate while pairing is open.
#[derive(Debug)]
struct KnownClients {
    known: KnownKeys,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for KnownClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = PublicKey::from_cert(end_entity).map_err(|e| refuse(Refusal::Malformed(e)))?;
        if self.known.contains(&key) || self.known.is_pairing() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(refuse(Refusal::Unknown(key)))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn creds(seed: u8) -> Credentials {
        Credentials::new(&SigningKey::from_bytes(&[seed; 32])).expect("credentials")
    }

    /// Both sides list AES-128-GCM first, so it is what they agree on; the
    /// others stay on offer, and nothing but TLS 1.3 suites is there.
    #[test]
    fn aes_128_gcm_is_preferred_and_the_rest_still_offered() {
        use rustls::CipherSuite::*;
        let suites: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites.first(), Some(&TLS13_AES_128_GCM_SHA256));
        for suite in [TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256] {
            assert!(suites.contains(&suite), "{suite:?} missing from {suites:?}");
        }
        let tls = client_tls(&creds(1), creds(2).public, Alpn::NineP).expect("client config");
        assert_eq!(
            tls.crypto_provider().cipher_suites[0].suite(),
            TLS13_AES_128_GCM_SHA256
        );
    }

    #[test]
    fn pinned_server_accepts_only_its_key() {
        let a = creds(1);
        let b = creds(2);
        let v = PinnedServer {
            expected: a.public,
            algs: provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from("grid").expect("name");
        let now = UnixTime::now();
        assert!(v.verify_server_cert(&a.cert, &[], &name, &[], now).is_ok());
        let err = v
            .verify_server_cert(&b.cert, &[], &name, &[], now)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("is not the expected"), "{err}");
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(v.verify_server_cert(&junk, &[], &name, &[], now).is_err());
    }

    #[test]
    fn known_clients_follow_the_set_and_the_pairing_window() {
        let a = creds(1);
        let known = KnownKeys::new();
        let v = KnownClients {
            known: known.clone(),
            algs: provider().signature_verification_algorithms,
        };
        let now = UnixTime::now();
        assert!(v.verify_client_cert(&a.cert, &[], now).is_err());
        known.insert(a.public, "alice");
        assert!(v.verify_client_cert(&a.cert, &[], now).is_ok());
        assert_eq!(known.name_of(&a.public).as_deref(), Some("alice"));
        known.remove(&a.public);
        assert!(v.verify_client_cert(&a.cert, &[], now).is_err());
        known.set_pairing(true);
        assert!(v.verify_client_cert(&a.cert, &[], now).is_ok());
    }

    #[tokio::test]
    async fn removed_resolves_when_the_key_goes() {
        let a = creds(1);
        let known = KnownKeys::new();
        known.insert(a.public, "alice");
        let k2 = known.clone();
        let waiter = tokio::spawn(async move { k2.removed(&a.public).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        known.insert(creds(2).public, "bob");
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        known.remove(&a.public);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("in time")
            .expect("task");
    }
}
