//! A grid is its Ed25519 key: public keys in hex, and the self-signed
//! certificate that carries a key through TLS.
//!
//! The certificate is only an envelope for the key. Nobody checks its
//! names, dates or self-signature: a peer is accepted for the key in its
//! SubjectPublicKeyInfo, and the TLS 1.3 CertificateVerify signature
//! (checked by the verifiers in `verify`) proves it holds the private half.
//! The certificate is built here, in DER, because its shape is fixed and
//! small; `rustls-webpki` parses certificates that come from peers.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// An Ed25519 public key: the name of a grid among its peers.
///
/// Written as 64 lowercase hex digits (as `/status` and `gridd` print
/// it). Parsing refuses keys that are not points of the curve and the
/// weak (small-order) keys for which signatures prove nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// Why a key or a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 64 hex digits.
    #[error("key: expected 64 hex digits, got {0:?}")]
    BadHex(String),
    /// The bytes are not an Ed25519 point, or a weak one.
    #[error("key: not a usable Ed25519 public key")]
    NotEd25519,
    /// The certificate does not parse as X.509.
    #[error("certificate: malformed: {0}")]
    BadCertificate(String),
    /// The certificate's key is not Ed25519.
    #[error("certificate: key is not Ed25519")]
    NotEd25519Certificate,
    /// The signing key could not be encoded for TLS.
    #[error("key: cannot encode signing key: {0}")]
    Encode(String),
}

impl PublicKey {
    /// The key of `signing`.
    pub fn of(signing: &SigningKey) -> PublicKey {
        PublicKey(signing.verifying_key().to_bytes())
    }

    /// A key from its 32 bytes, refusing what is not a usable Ed25519 key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<PublicKey, KeyError> {
        let vk = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotEd25519)?;
        if vk.is_weak() {
            return Err(KeyError::NotEd25519);
        }
        Ok(PublicKey(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s
    }

    /// The key in a certificate a peer sent. Only the SubjectPublicKeyInfo
    /// counts, and it must be exactly an Ed25519 one.
    pub fn from_cert(cert: &CertificateDer<'_>) -> Result<PublicKey, KeyError> {
        let ee = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| KeyError::BadCertificate(format!("{e:?}")))?;
        let spki = ee.subject_public_key_info();
        let raw = spki
            .as_ref()
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .ok_or(KeyError::NotEd25519Certificate)?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| KeyError::NotEd25519Certificate)?;
        PublicKey::from_bytes(bytes)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        let bad = || KeyError::BadHex(s.chars().take(80).collect());
        let digits = s.as_bytes();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or_else(bad)?;
            let lo = hex_value(pair[1]).ok_or_else(bad)?;
            *o = hi << 4 | lo;
        }
        PublicKey::from_bytes(out)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// What a TLS endpoint presents: the certificate and private key of one
/// grid identity.
pub(crate) struct Credentials {
    pub(crate) public: PublicKey,
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

impl Credentials {
    pub(crate) fn new(signing: &SigningKey) -> Result<Credentials, KeyError> {
        let key = signing
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok(Credentials {
            public: PublicKey::of(signing),
            cert: CertificateDer::from(self_signed(signing)),
            key: PrivatePkcs8KeyDer::from(key.as_bytes().to_vec()),
        })
    }
}

/// DER of an Ed25519 SubjectPublicKeyInfo up to the key: SEQUENCE {
/// SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// AlgorithmIdentifier for Ed25519 (RFC 8410: no parameters).
const ED25519_ALG: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// The id-at-commonName attribute type.
const OID_CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
const HEX: &[u8; 16] = b"0123456789abcdef";

mod tag {
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const BIT_STRING: u8 = 0x03;
    pub(super) const UTF8_STRING: u8 = 0x0c;
    pub(super) const UTC_TIME: u8 = 0x17;
    pub(super) const GENERALIZED_TIME: u8 = 0x18;
    pub(super) const SEQUENCE: u8 = 0x30;
    pub(super) const SET: u8 = 0x31;
    pub(super) const VERSION: u8 = 0xa0;
}

/// A self-signed X.509 v3 certificate for `signing`'s key: subject and
/// issuer `CN=<key hex>`, valid from 1970 to 9999 (RFC 5280's "no
/// well-defined expiration"), no extensions.
fn self_signed(signing: &SigningKey) -> Vec<u8> {
    let public = PublicKey::of(signing);
    let name = tlv(
        tag::SEQUENCE,
        &tlv(
            tag::SET,
            &tlv(
                tag::SEQUENCE,
                &[
                    &OID_CN[..],
                    &tlv(tag::UTF8_STRING, public.to_hex().as_bytes()),
                ]
                .concat(),
            ),
        ),
    );
    // A positive serial: a leading 1, then key bytes (unique per key).
    let serial = [&[1u8][..], &public.as_bytes()[..8]].concat();
    let validity = tlv(
        tag::SEQUENCE,
        &[
            tlv(tag::UTC_TIME, b"700101000000Z"),
            tlv(tag::GENERALIZED_TIME, b"99991231235959Z"),
        ]
        .concat(),
    );
    let spki = [&ED25519_SPKI_PREFIX[..], &public.as_bytes()[..]].concat();
    let tbs = tlv(
        tag::SEQUENCE,
        &[
            &tlv(tag::VERSION, &tlv(tag::INTEGER, &[2]))[..],
            &tlv(tag::INTEGER, &serial),
            &ED25519_ALG,
            &name,
            &validity,
            &name,
            &spki,
        ]
        .concat(),
    );
    let signature = signing.sign(&tbs).to_bytes();
    let sig_bits = [&[0u8][..], &signature[..]].concat();
    tlv(
        tag::SEQUENCE,
        &[&tbs[..], &ED25519_ALG, &tlv(tag::BIT_STRING, &sig_bits)].concat(),
    )
}

/// One DER tag-length-value. Lengths here are far below 64 KiB.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 4);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn hex_value(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let k = PublicKey::of(&key(7));
        let hex = k.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<PublicKey>(), Ok(k));
        assert_eq!(hex.to_uppercase().parse::<PublicKey>(), Ok(k));
        assert!(matches!(
            hex[..63].parse::<PublicKey>(),
            Err(KeyError::BadHex(_))
        ));
        assert!(matches!(
            format!("{}zz", &hex[..62]).parse::<PublicKey>(),
            Err(KeyError::BadHex(_))
        ));
        // Non-ASCII must not split a char or panic.
        assert!("é".repeat(32).parse::<PublicKey>().is_err());
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point: every signature "verifies" under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(identity), Err(KeyError::NotEd25519));
    }

    #[test]
    fn own_certificate_parses_and_carries_the_key() {
        let k = key(9);
        let creds = Credentials::new(&k).expect("credentials");
        assert_eq!(PublicKey::from_cert(&creds.cert), Ok(PublicKey::of(&k)));
        // The self-signature is valid too (nobody relies on it, but tools
        // such as openssl show it as a well-formed certificate).
        let der = creds.cert.as_ref();
        let sig = &der[der.len() - 64..];
        let (outer_header, _) = header(der);
        let (tbs_header, tbs_len) = header(&der[outer_header..]);
        let tbs = &der[outer_header..outer_header + tbs_header + tbs_len];
        let sig = ed25519_dalek::Signature::from_slice(sig).expect("signature");
        k.verifying_key()
            .verify_strict(tbs, &sig)
            .expect("self-signed");
    }

    /// The header length and content length of the DER value at `der`.
    fn header(der: &[u8]) -> (usize, usize) {
        match der[1] {
            n if n < 0x80 => (2, usize::from(n)),
            0x81 => (3, usize::from(der[2])),
            _ => (4, usize::from(der[2]) << 8 | usize::from(der[3])),
        }
    }

    #[test]
    fn hostile_certificates_are_errors_not_panics() {
        let creds = Credentials::new(&key(3)).expect("credentials");
        let good = creds.cert.as_ref().to_vec();
        for cut in [0, 1, 2, 10, good.len() / 2, good.len() - 1] {
            let c = CertificateDer::from(good[..cut].to_vec());
            assert!(PublicKey::from_cert(&c).is_err(), "cut at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = PublicKey::from_cert(&CertificateDer::from(bad));
        }
    }
}
