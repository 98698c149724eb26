//! EC private keys (P-256, P-384), validated in full before they may sign.
//!
//! Contract: an `ECPrivateKey` (SEC1, RFC 5915), standalone (`EC PRIVATE KEY`) or inside a
//! PKCS#8 `PrivateKeyInfo`:
//! - the curve is the key's own: its `parameters`, or the PKCS#8 algorithm's; both present
//!   must agree; none is refused (a scalar's length never picks the curve);
//! - the private scalar has the curve's length (shorter is left-padded) and lies in 1..n-1;
//! - a public key in the file (SEC1 `publicKey`, PKCS#8 v2 `publicKey`) is a point on the curve
//!   and is the scalar's own.
//!
//! Each failure names what is wrong in words. P-256 signs on `ring` (SHA-256, several times
//! faster than RustCrypto) and on RustCrypto for `sign-string`'s SHA-384/512 prehashes; `ring`
//! signs P-384 only with SHA-384, which Roles Anywhere rejects, so P-384 is RustCrypto's
//! prehash signer throughout (RFC 6979 nonces).

use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use sec1::der::Decode;
use signature::hazmat::PrehashSigner;

use super::{Digest, KeyError, KeyKind, Signer, oids};

/// A validated EC key.
pub(crate) enum EcKey {
    /// P-256: `ring` for SHA-256, the same scalar in RustCrypto for other digests.
    P256 {
        ring: EcdsaKeyPair,
        prehash: p256::ecdsa::SigningKey,
    },
    /// P-384.
    P384(p384::ecdsa::SigningKey),
}

fn bad(why: impl Into<String>) -> KeyError {
    KeyError::Malformed(why.into())
}

/// The scalar left-padded to `len` bytes, or why it is not a scalar of that curve's size.
fn padded(scalar: &[u8], len: usize, curve: &str) -> Result<Vec<u8>, KeyError> {
    if scalar.len() > len {
        return Err(bad(format!(
            "its {curve} private scalar is {} bytes long; a {curve} scalar has {len}",
            scalar.len()
        )));
    }
    if scalar.iter().all(|&b| b == 0) {
        return Err(bad(format!(
            "its {curve} private scalar is zero, which is not a key"
        )));
    }
    let mut out = vec![0u8; len - scalar.len()];
    out.extend_from_slice(scalar);
    Ok(out)
}

fn out_of_range(curve: &str) -> KeyError {
    bad(format!(
        "its {curve} private scalar is not below the curve's order n, which is not a key (a damaged or forged file)"
    ))
}

fn not_on_curve(curve: &str) -> KeyError {
    bad(format!(
        "the public key stored with it is not a point on {curve} (a damaged or forged file)"
    ))
}

fn not_its_own(curve: &str) -> KeyError {
    bad(format!(
        "the {curve} public key stored with it does not belong to its private scalar (a damaged or mixed-up file)"
    ))
}

/// Reads an `ECPrivateKey` DER. `outer_curve` is the curve OID of the PKCS#8 algorithm
/// around it and `outer_public` its v2 `publicKey`, if any.
pub(crate) fn from_sec1(
    der: &[u8],
    outer_curve: Option<&str>,
    outer_public: Option<&[u8]>,
) -> Result<EcKey, KeyError> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|e| {
        bad(format!(
            "not a readable EC private key ({})",
            crate::material::der_words(&e.to_string())
        ))
    })?;
    let inner_curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .map(|o| o.to_string());
    let curve = match (inner_curve.as_deref(), outer_curve) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(format!(
                "it names two curves: {} in the key and {} around it",
                oids::curve_name(a),
                oids::curve_name(b)
            )));
        }
        (Some(c), _) | (None, Some(c)) => c.to_string(),
        (None, None) => {
            return Err(bad(
                "the EC key names no curve: re-export it with its curve (openssl ec -in KEY -out KEY.pem)",
            ));
        }
    };
    let public = key.public_key.or(outer_public);
    match curve.as_str() {
        oids::P256 => {
            let name = "P-256";
            let scalar = padded(key.private_key, 32, name)?;
            let secret = p256::SecretKey::from_slice(&scalar).map_err(|_| out_of_range(name))?;
            let own = secret.public_key();
            if let Some(pk) = public {
                let stored =
                    p256::PublicKey::from_sec1_bytes(pk).map_err(|_| not_on_curve(name))?;
                if stored != own {
                    return Err(not_its_own(name));
                }
            }
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let point = own.to_encoded_point(false);
            let ring = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &scalar,
                point.as_bytes(),
                &ring::rand::SystemRandom::new(),
            )
            .map_err(|e| {
                bad(format!(
                    "P-256 key refused: {}",
                    super::file::ring_words(&e)
                ))
            })?;
            Ok(EcKey::P256 {
                ring,
                prehash: secret.into(),
            })
        }
        oids::P384 => {
            let name = "P-384";
            let scalar = padded(key.private_key, 48, name)?;
            let secret = p384::SecretKey::from_slice(&scalar).map_err(|_| out_of_range(name))?;
            if let Some(pk) = public {
                let stored =
                    p384::PublicKey::from_sec1_bytes(pk).map_err(|_| not_on_curve(name))?;
                if stored != secret.public_key() {
                    return Err(not_its_own(name));
                }
            }
            Ok(EcKey::P384(secret.into()))
        }
        other => Err(KeyError::Unsupported(format!(
            "EC {}",
            oids::curve_name(other)
        ))),
    }
}

impl Signer for EcKey {
    fn kind(&self) -> KeyKind {
        match self {
            EcKey::P256 { .. } => KeyKind::EcP256,
            EcKey::P384(_) => KeyKind::EcP384,
        }
    }

    fn public_key_bits(&self) -> Vec<u8> {
        match self {
            EcKey::P256 { ring, .. } => ring.public_key().as_ref().to_vec(),
            EcKey::P384(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        }
    }

    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, KeyError> {
        let failed = |e: signature::Error| KeyError::Signing(format!("ECDSA: {e}"));
        match self {
            EcKey::P256 { ring, .. } if digest == Digest::Sha256 => ring
                .sign(&ring::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing("ECDSA P-256 failed".into())),
            EcKey::P256 { prehash, .. } => {
                let sig: p256::ecdsa::Signature = prehash
                    .sign_prehash(digest.hash(message).as_ref())
                    .map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            EcKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k
                    .sign_prehash(digest.hash(message).as_ref())
                    .map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sec1::der::Encode;

    /// P-256's group order n.
    pub(crate) const P256_N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// A SEC1 `ECPrivateKey` DER with `scalar`, curve `curve` (none when `None`) and public
    /// key `public`.
    pub(crate) fn sec1(scalar: &[u8], curve: Option<&str>, public: Option<&[u8]>) -> Vec<u8> {
        sec1::EcPrivateKey {
            private_key: scalar,
            parameters: curve.map(|c| sec1::EcParameters::NamedCurve(c.parse().unwrap())),
            public_key: public,
        }
        .to_der()
        .unwrap()
    }

    fn err(der: &[u8]) -> String {
        from_sec1(der, None, None).err().unwrap().to_string()
    }

    #[test]
    fn valid_keys_load_with_their_own_curve() {
        let one = {
            let mut s = [0u8; 32];
            s[31] = 1;
            s
        };
        let g =
            p256::PublicKey::from_secret_scalar(&p256::NonZeroScalar::try_from(&one[..]).unwrap());
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = g.to_encoded_point(false);
        let k = from_sec1(
            &sec1(&one, Some(oids::P256), Some(point.as_bytes())),
            None,
            None,
        )
        .unwrap();
        assert_eq!(k.kind(), KeyKind::EcP256);
        assert_eq!(k.public_key_bits(), point.as_bytes());
        // n - 1 is the largest scalar; a 32-byte scalar labelled P-384 is a P-384 key.
        let mut top = P256_N;
        top[31] -= 1;
        assert!(from_sec1(&sec1(&top, Some(oids::P256), None), None, None).is_ok());
        let k = from_sec1(&sec1(&top, Some(oids::P384), None), None, None).unwrap();
        assert_eq!(k.kind(), KeyKind::EcP384);
    }

    #[test]
    fn scalars_out_of_range_are_named() {
        let e = err(&sec1(&[0u8; 32], Some(oids::P256), None));
        assert!(e.contains("P-256 private scalar is zero"), "{e}");
        assert!(!e.contains("1.2.840.10045.3.1.7"), "{e}");
        let e = err(&sec1(&P256_N, Some(oids::P256), None));
        assert!(e.contains("P-256 private scalar is not below"), "{e}");
        let e = err(&sec1(&[0xff; 32], Some(oids::P256), None));
        assert!(e.contains("not below the curve's order"), "{e}");
        let e = err(&sec1(&[1u8; 33], Some(oids::P256), None));
        assert!(e.contains("33 bytes long"), "{e}");
    }

    #[test]
    fn public_keys_must_be_on_the_curve_and_the_scalars_own() {
        let mut scalar = [0u8; 32];
        scalar[31] = 7;
        let own = p256::SecretKey::from_slice(&scalar).unwrap().public_key();
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let mut point = own.to_encoded_point(false).as_bytes().to_vec();
        let other = p256::SecretKey::from_slice(&[9u8; 32])
            .unwrap()
            .public_key();
        let e = err(&sec1(
            &scalar,
            Some(oids::P256),
            Some(other.to_encoded_point(false).as_bytes()),
        ));
        assert!(e.contains("does not belong to its private scalar"), "{e}");
        point[64] ^= 1; // y changed: off the curve
        let e = err(&sec1(&scalar, Some(oids::P256), Some(&point)));
        assert!(e.contains("not a point on P-256"), "{e}");
    }

    #[test]
    fn curves_come_from_the_key() {
        let s = [3u8; 32];
        let e = err(&sec1(&s, None, None));
        assert!(e.contains("names no curve"), "{e}");
        let e = from_sec1(&sec1(&s, Some(oids::P256), None), Some(oids::P384), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("two curves"), "{e}");
        let e = err(&sec1(&s, Some(oids::SECP256K1), None));
        assert!(e.contains("unsupported key type: EC secp256k1"), "{e}");
        assert!(err(b"\x30\x03\x02\x01").contains("not a readable EC private key"));
    }
}
