//! Key-type object identifiers, in one place: the algorithm of a key (PKCS#8
//! `privateKeyAlgorithm`, a certificate's `subjectPublicKeyInfo`) and the EC curves, with the
//! names messages use. Keys ([`super::file`]), certificates ([`crate::material`]) and
//! `read-certificate-data` read them from here.
//!
//! Dotted strings rather than typed OIDs: the crates in use carry two generations of
//! `const-oid`, and every caller has the dotted form at hand.

/// `rsaEncryption` (PKCS#1).
pub(crate) const RSA: &str = "1.2.840.113549.1.1.1";
/// `id-ecPublicKey` (the curve is in the parameters).
pub(crate) const EC: &str = "1.2.840.10045.2.1";
/// `prime256v1` / `secp256r1`.
pub(crate) const P256: &str = "1.2.840.10045.3.1.7";
/// `secp384r1`.
pub(crate) const P384: &str = "1.3.132.0.34";
/// `secp521r1` (refused, named).
pub(crate) const P521: &str = "1.3.132.0.35";
/// `secp256k1` (refused, named).
pub(crate) const SECP256K1: &str = "1.3.132.0.10";
/// ML-DSA-44 (NIST CSOR `sigAlgs`).
pub(crate) const MLDSA44: &str = "2.16.840.1.101.3.4.3.17";
/// ML-DSA-65.
pub(crate) const MLDSA65: &str = "2.16.840.1.101.3.4.3.18";
/// ML-DSA-87.
pub(crate) const MLDSA87: &str = "2.16.840.1.101.3.4.3.19";
/// Ed25519 (refused, named).
pub(crate) const ED25519: &str = "1.3.101.112";
/// Ed448 (refused, named).
pub(crate) const ED448: &str = "1.3.101.113";
/// RSASSA-PSS keys (refused, named).
pub(crate) const RSA_PSS: &str = "1.2.840.113549.1.1.10";
/// DSA (refused, named).
pub(crate) const DSA: &str = "1.2.840.10040.4.1";

/// The name of a curve OID for messages (`P-256`, `P-521`, or the OID itself).
pub(crate) fn curve_name(oid: &str) -> String {
    match oid {
        P256 => "P-256".into(),
        P384 => "P-384".into(),
        P521 => "P-521".into(),
        SECP256K1 => "secp256k1".into(),
        other => format!("curve {other}"),
    }
}

/// The name of a key algorithm OID for messages (`Ed25519`, or `algorithm OID`).
pub(crate) fn algorithm_name(oid: &str) -> String {
    match oid {
        RSA => "RSA".into(),
        EC => "EC".into(),
        MLDSA44 => "ML-DSA-44".into(),
        MLDSA65 => "ML-DSA-65".into(),
        MLDSA87 => "ML-DSA-87".into(),
        ED25519 => "Ed25519".into(),
        ED448 => "Ed448".into(),
        RSA_PSS => "RSASSA-PSS".into(),
        DSA => "DSA".into(),
        other => format!("algorithm {other}"),
    }
}

/// The ML-DSA level name of an OID, if it is one.
pub(crate) fn mldsa_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        MLDSA44 => "ML-DSA-44",
        MLDSA65 => "ML-DSA-65",
        MLDSA87 => "ML-DSA-87",
        _ => return None,
    })
}

/// Whether Roles Anywhere signing here takes a certificate key of algorithm `oid` on curve
/// `curve` (EC only): `Err` names what is not taken and what is.
pub(crate) fn check_supported(oid: &str, curve: Option<&str>) -> Result<(), String> {
    match oid {
        RSA | MLDSA44 | MLDSA65 | MLDSA87 => Ok(()),
        EC => match curve {
            Some(P256 | P384) => Ok(()),
            Some(c) => Err(format!(
                "EC {}; use RSA, EC P-256/P-384 or ML-DSA",
                curve_name(c)
            )),
            None => Err("EC without a named curve; use RSA, EC P-256/P-384 or ML-DSA".into()),
        },
        other => Err(format!(
            "{}; use RSA, EC P-256/P-384 or ML-DSA",
            algorithm_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_support() {
        assert_eq!(curve_name(P521), "P-521");
        assert_eq!(curve_name("1.2.3"), "curve 1.2.3");
        assert_eq!(algorithm_name(ED25519), "Ed25519");
        assert!(check_supported(EC, Some(P256)).is_ok());
        assert!(check_supported(MLDSA65, None).is_ok());
        let e = check_supported(EC, Some(P521)).unwrap_err();
        assert!(e.starts_with("EC P-521;"), "{e}");
        assert!(
            check_supported(ED25519, None)
                .unwrap_err()
                .starts_with("Ed25519")
        );
    }
}
