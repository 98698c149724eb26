//! ML-DSA-44/65/87 private keys (FIPS 204) and the `AWS4-X509-MLDSA` signature.
//!
//! Contract (IAM Roles Anywhere, February 2026; `aws_signing_helper` 1.8.0):
//! - `Authorization` / `X-Amz-Algorithm`: `AWS4-X509-MLDSA`, whatever the level.
//! - The signature is pure ML-DSA (FIPS 204 Algorithm 2, not HashML-DSA) over the bytes of the
//!   string to sign themselves (no pre-hash), with an empty context and the deterministic variant
//!   (rnd = 0³²), as the helper signs; hex-encoded like the others.
//! - Keys come in PKCS#8 (OID 2.16.840.1.101.3.4.3.17/18/19, no parameters) whose `privateKey`
//!   holds the `ML-DSA-PrivateKey` CHOICE of RFC 9881, in any of the forms OpenSSL 3.5 writes:
//!   `seed [0] IMPLICIT OCTET STRING (32)`, `expandedKey OCTET STRING` (2560/4032/4896 bytes), or
//!   `both SEQUENCE { seed, expandedKey }` (the two must agree).
//!
//! Signing and key expansion are RustCrypto's `ml-dsa`; reading the CHOICE and checking an
//! expanded key's coefficient ranges before `ml-dsa` decodes it (it asserts on out-of-range
//! values, and this binary aborts on panic) is written here.

use ml_dsa::{
    B32, ExpandedSigningKey, ExpandedSigningKeyBytes, MlDsa44, MlDsa65, MlDsa87, MlDsaParams,
    SigningKey as SeedKey,
};
use pkcs8::der::{
    Decode, Reader, SliceReader, Tag, TagNumber, Tagged, asn1::AnyRef, asn1::OctetStringRef,
};

use super::{Digest, KeyError, KeyKind, Signer};

/// The `Authorization` algorithm name for every ML-DSA level.
pub(crate) const ALG_MLDSA: &str = "AWS4-X509-MLDSA";

use super::oids::{MLDSA44 as OID_MLDSA44, MLDSA65 as OID_MLDSA65, MLDSA87 as OID_MLDSA87};

/// An ML-DSA key, expanded once at load time (signing then costs no key expansion).
pub(crate) enum MlDsaKey {
    /// ML-DSA-44 (NIST level 2).
    L44(Box<ExpandedSigningKey<MlDsa44>>),
    /// ML-DSA-65 (NIST level 3).
    L65(Box<ExpandedSigningKey<MlDsa65>>),
    /// ML-DSA-87 (NIST level 5).
    L87(Box<ExpandedSigningKey<MlDsa87>>),
}

/// Sizes that tell the levels apart: (k, l, eta) of FIPS 204 Table 1.
struct Level {
    name: &'static str,
    k: usize,
    l: usize,
    eta: u32,
}

const L44: Level = Level {
    name: "ML-DSA-44",
    k: 4,
    l: 4,
    eta: 2,
};
const L65: Level = Level {
    name: "ML-DSA-65",
    k: 6,
    l: 5,
    eta: 4,
};
const L87: Level = Level {
    name: "ML-DSA-87",
    k: 8,
    l: 7,
    eta: 2,
};

impl Level {
    /// Bits per packed s1/s2 coefficient (bitlen 2·eta).
    fn eta_bits(&self) -> usize {
        if self.eta == 2 { 3 } else { 4 }
    }

    /// skEncode length: rho, K, tr, s1, s2, t0 (13 bits per coefficient).
    fn expanded_len(&self) -> usize {
        32 + 32 + 64 + (self.l + self.k) * 32 * self.eta_bits() + self.k * 32 * 13
    }

    /// Every packed s1/s2 coefficient must be at most 2·eta (BitUnpack's range); `ml-dsa`
    /// asserts this, so a malformed key is refused here instead.
    fn check_expanded(&self, bytes: &[u8]) -> Result<(), KeyError> {
        if bytes.len() != self.expanded_len() {
            return Err(KeyError::Malformed(format!(
                "{} expanded private key of {} bytes, expected {}",
                self.name,
                bytes.len(),
                self.expanded_len()
            )));
        }
        let bits = self.eta_bits();
        let packed = &bytes[128..128 + (self.l + self.k) * 32 * bits];
        let coefficients = packed.len() * 8 / bits;
        for i in 0..coefficients {
            let mut v = 0u32;
            for b in 0..bits {
                let bit = i * bits + b;
                v |= u32::from((packed[bit / 8] >> (bit % 8)) & 1) << b;
            }
            if v > 2 * self.eta {
                return Err(KeyError::Malformed(format!(
                    "{} expanded private key has an out-of-range secret coefficient",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// The private key forms of the `ML-DSA-PrivateKey` CHOICE.
enum Form<'a> {
    Seed(&'a [u8]),
    Expanded(&'a [u8]),
    Both(&'a [u8], &'a [u8]),
}

fn parse_choice(private_key: &[u8]) -> Result<Form<'_>, KeyError> {
    let bad = |why: String| {
        KeyError::Malformed(format!(
            "ML-DSA private key: {}",
            crate::material::der_words(&why)
        ))
    };
    let any = AnyRef::from_der(private_key).map_err(|e| bad(e.to_string()))?;
    match any.tag() {
        Tag::ContextSpecific {
            constructed: false,
            number: TagNumber(0),
        } => Ok(Form::Seed(any.value())),
        Tag::OctetString => Ok(Form::Expanded(any.value())),
        Tag::Sequence => {
            let mut r = SliceReader::new(any.value()).map_err(|e| bad(e.to_string()))?;
            let seed = <&OctetStringRef>::decode(&mut r).map_err(|e| bad(e.to_string()))?;
            let expanded = <&OctetStringRef>::decode(&mut r).map_err(|e| bad(e.to_string()))?;
            r.finish().map_err(|e| bad(e.to_string()))?;
            Ok(Form::Both(seed.as_bytes(), expanded.as_bytes()))
        }
        other => Err(bad(format!(
            "unexpected {other} (expected a seed, an expanded key or both)"
        ))),
    }
}

fn load<P: MlDsaParams>(
    level: &Level,
    private_key: &[u8],
) -> Result<Box<ExpandedSigningKey<P>>, KeyError> {
    let from_seed = |seed: &[u8]| -> Result<SeedKey<P>, KeyError> {
        let seed = B32::try_from(seed).map_err(|_| {
            KeyError::Malformed(format!(
                "{} seed of {} bytes, expected 32",
                level.name,
                seed.len()
            ))
        })?;
        Ok(SeedKey::<P>::from_seed(&seed))
    };
    #[allow(deprecated)] // the expanded form is deprecated, but OpenSSL 3.5 still writes it
    match parse_choice(private_key)? {
        Form::Seed(seed) => Ok(Box::new(from_seed(seed)?.expanded_key().clone())),
        Form::Both(seed, expanded) => {
            let key = from_seed(seed)?;
            level.check_expanded(expanded)?;
            if key.expanded_key().to_expanded().as_slice() != expanded {
                return Err(KeyError::Malformed(format!(
                    "{} private key: the seed and the expanded key do not match",
                    level.name
                )));
            }
            Ok(Box::new(key.expanded_key().clone()))
        }
        Form::Expanded(expanded) => {
            level.check_expanded(expanded)?;
            let bytes = ExpandedSigningKeyBytes::<P>::try_from(expanded)
                .map_err(|_| KeyError::Malformed(format!("{} expanded key size", level.name)))?;
            let key = ExpandedSigningKey::<P>::from_expanded(&bytes);
            // No seed to derive from: prove the key whole (tr, s1, s2, t0 consistent with the
            // public key it implies) by one signature that must verify.
            let probe = b"iamra-bootstrap ML-DSA key check";
            let sig = key
                .sign_deterministic(probe, &[])
                .map_err(|_| KeyError::Malformed(format!("{} key cannot sign", level.name)))?;
            if !key.verifying_key().verify_with_context(probe, &[], &sig) {
                return Err(KeyError::Malformed(format!(
                    "{} expanded private key is inconsistent (its signature does not verify)",
                    level.name
                )));
            }
            Ok(Box::new(key))
        }
    }
}

impl Signer for MlDsaKey {
    fn kind(&self) -> KeyKind {
        match self {
            MlDsaKey::L44(_) => KeyKind::MlDsa44,
            MlDsaKey::L65(_) => KeyKind::MlDsa65,
            MlDsaKey::L87(_) => KeyKind::MlDsa87,
        }
    }

    /// The encoded public key, as in a certificate's `subjectPublicKey`.
    fn public_key_bits(&self) -> Vec<u8> {
        match self {
            MlDsaKey::L44(k) => k.verifying_key().encode().to_vec(),
            MlDsaKey::L65(k) => k.verifying_key().encode().to_vec(),
            MlDsaKey::L87(k) => k.verifying_key().encode().to_vec(),
        }
    }

    /// Pure ML-DSA, deterministic, empty context, over `message` itself (no digest).
    fn sign(&self, message: &[u8], _digest: Digest) -> Result<Vec<u8>, KeyError> {
        fn go<P: MlDsaParams>(k: &ExpandedSigningKey<P>, m: &[u8]) -> Result<Vec<u8>, KeyError> {
            k.sign_deterministic(m, &[])
                .map(|s| s.encode().to_vec())
                .map_err(|_| KeyError::Signing("ML-DSA signing failed".into()))
        }
        match self {
            MlDsaKey::L44(k) => go(k, message),
            MlDsaKey::L65(k) => go(k, message),
            MlDsaKey::L87(k) => go(k, message),
        }
    }
}

impl MlDsaKey {
    /// Loads the `privateKey` OCTET STRING contents of a PKCS#8 with algorithm `oid`; `None`
    /// when the OID is not ML-DSA.
    pub(crate) fn from_pkcs8_private_key(
        oid: &str,
        private_key: &[u8],
    ) -> Option<Result<Self, KeyError>> {
        Some(match oid {
            OID_MLDSA44 => load::<MlDsa44>(&L44, private_key).map(MlDsaKey::L44),
            OID_MLDSA65 => load::<MlDsa65>(&L65, private_key).map(MlDsaKey::L65),
            OID_MLDSA87 => load::<MlDsa87>(&L87, private_key).map(MlDsaKey::L87),
            _ => return None,
        })
    }

    /// `ML-DSA-44`, `ML-DSA-65` or `ML-DSA-87`.
    #[cfg(test)]
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            MlDsaKey::L44(_) => L44.name,
            MlDsaKey::L65(_) => L65.name,
            MlDsaKey::L87(_) => L87.name,
        }
    }

    /// Verifies `signature` over `message` with this key's public key.
    #[cfg(test)]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        fn go<P: MlDsaParams>(k: &ExpandedSigningKey<P>, m: &[u8], s: &[u8]) -> bool {
            let Ok(enc) = ml_dsa::EncodedSignature::<P>::try_from(s) else {
                return false;
            };
            ml_dsa::Signature::<P>::decode(&enc)
                .is_some_and(|sig| k.verifying_key().verify_with_context(m, &[], &sig))
        }
        match self {
            MlDsaKey::L44(k) => go(k, message, signature),
            MlDsaKey::L65(k) => go(k, message, signature),
            MlDsaKey::L87(k) => go(k, message, signature),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PKCS#8 `privateKey` CHOICE in each form, from `seed`, for level `P`.
    #[allow(deprecated)]
    pub(crate) fn forms<P: MlDsaParams>(seed: [u8; 32]) -> [Vec<u8>; 3] {
        let sk = SeedKey::<P>::from_seed(&B32::from(seed));
        let exp = sk.expanded_key().to_expanded().to_vec();
        let octets =
            |v: &[u8]| pkcs8::der::Encode::to_der(&OctetStringRef::new(v).unwrap()).unwrap();
        let mut seed_form = vec![0x80, 32];
        seed_form.extend_from_slice(&seed);
        let mut both = octets(&seed);
        both.extend(octets(&exp));
        let both = {
            let mut v = vec![0x30, 0x82];
            v.extend_from_slice(&(both.len() as u16).to_be_bytes());
            v.extend(both);
            v
        };
        [seed_form, octets(&exp), both]
    }

    fn round_trip<P: MlDsaParams>(oid: &str, name: &str, sig_len: usize) {
        let msg =
            b"AWS4-X509-MLDSA\n20260301T000000Z\n20260301/us-east-1/rolesanywhere/aws4_request\n00";
        let mut public = None;
        for (i, form) in forms::<P>([7u8; 32]).iter().enumerate() {
            let k = MlDsaKey::from_pkcs8_private_key(oid, form)
                .unwrap()
                .unwrap_or_else(|e| panic!("{name} form {i}: {e}"));
            assert_eq!(k.describe(), name);
            let sig = k.sign(msg, Digest::Sha256).unwrap();
            assert_eq!(sig.len(), sig_len);
            assert_eq!(sig, k.sign(msg, Digest::Sha512).unwrap(), "deterministic");
            assert!(k.verify(msg, &sig));
            assert!(!k.verify(b"other", &sig));
            let mut flipped = sig.clone();
            flipped[10] ^= 1;
            assert!(!k.verify(msg, &flipped));
            let pk = k.public_key_bits();
            assert_eq!(*public.get_or_insert(pk.clone()), pk, "all forms, one key");
        }
    }

    #[test]
    fn all_levels_sign_and_verify_in_all_forms() {
        round_trip::<MlDsa44>(OID_MLDSA44, "ML-DSA-44", 2420);
        round_trip::<MlDsa65>(OID_MLDSA65, "ML-DSA-65", 3309);
        round_trip::<MlDsa87>(OID_MLDSA87, "ML-DSA-87", 4627);
    }

    #[test]
    fn bad_keys_are_refused_without_panicking() {
        let [_, expanded, both] = forms::<MlDsa44>([1u8; 32]);
        // An out-of-range s1 coefficient (all bits set: 7 > 2·eta).
        let mut bad = expanded.clone();
        let off = 4 + 128; // OCTET STRING header (04 82 LL LL), then rho, K, tr
        bad[off] = 0xff;
        let e = MlDsaKey::from_pkcs8_private_key(OID_MLDSA44, &bad)
            .unwrap()
            .err()
            .unwrap();
        assert!(e.to_string().contains("out-of-range"), "{e}");
        // A well-formed key whose tr (the public key hash) is wrong: the probe signature fails.
        let mut bad = expanded.clone();
        bad[4 + 64] ^= 0x01;
        assert!(
            MlDsaKey::from_pkcs8_private_key(OID_MLDSA44, &bad)
                .unwrap()
                .is_err()
        );
        // Seed and expanded key of different keys.
        let [_, other, _] = forms::<MlDsa44>([2u8; 32]);
        let mut mixed = both[..4 + 34].to_vec();
        mixed.extend_from_slice(&other);
        let e = MlDsaKey::from_pkcs8_private_key(OID_MLDSA44, &mixed)
            .unwrap()
            .err()
            .unwrap();
        assert!(e.to_string().contains("do not match"), "{e}");
        // A wrong length, a wrong level and garbage.
        assert!(
            MlDsaKey::from_pkcs8_private_key(OID_MLDSA65, &expanded)
                .unwrap()
                .is_err()
        );
        assert!(
            MlDsaKey::from_pkcs8_private_key(OID_MLDSA44, b"\x80\x05hello")
                .unwrap()
                .is_err()
        );
        assert!(
            MlDsaKey::from_pkcs8_private_key(OID_MLDSA44, b"junk")
                .unwrap()
                .is_err()
        );
        assert!(MlDsaKey::from_pkcs8_private_key("1.2.3", b"").is_none());
    }
}
