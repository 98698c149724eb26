//! Entry points for the `cargo fuzz` targets in `fuzz/` (not an API: hidden from the docs, and
//! the only public door into the crate besides what `main` needs).
//!
//! Each function takes raw bytes as an attacker could supply them, runs one parser the tool
//! uses on untrusted input, and checks the invariants that must hold for every input (it panics
//! when one does not, which the fuzzer reports as a crash). Every crash found becomes a unit
//! test beside the code it was in.

use time::OffsetDateTime;

const NOW: OffsetDateTime = time::macros::datetime!(2025-06-01 00:00:00 UTC);

/// `--private-key`: PEM or DER, PKCS#8 / PKCS#1 / SEC1 / ML-DSA, and encrypted PKCS#8 (PBES2,
/// the password of the seeds in `fuzz/corpus/private_key/`): a key that loads must sign.
pub fn private_key(data: &[u8]) {
    let password = crate::secret::Secret::new("correct-horse");
    for k in [
        crate::keys::SigningKey::from_pem_or_der(data),
        crate::keys::SigningKey::load(data, Some(&password)),
    ]
    .into_iter()
    .flatten()
    {
        let _ = k.describe();
        assert!(!k.public_key_bits().is_empty());
        assert!(!k.sign(b"fuzz").expect("a key that loads signs").is_empty());
        assert!(!k.helper_test_message().is_empty());
    }
}

/// A PKCS#12 file as `--certificate` (password `correct-horse`, and none): a key that loads
/// must sign, and the leaf is the key's certificate.
pub fn pkcs12(data: &[u8]) {
    let password = crate::secret::Secret::new("correct-horse");
    for pw in [Some(&password), None] {
        if let Ok(p) = crate::keys::pkcs12::load(data, pw) {
            assert!(!p.leaf.is_empty());
            assert!(
                !p.key
                    .sign(b"fuzz")
                    .expect("a key that loads signs")
                    .is_empty()
            );
            assert!(p.key.matches_certificate(&p.leaf));
        }
    }
}

/// `--certificate` / `--intermediates`: PEM bundle or DER, then the Roles Anywhere checks
/// against `key_pem` (the fuzz target passes a fixed key).
pub fn certificates(data: &[u8], key_pem: &[u8]) {
    let Ok(mut certs) = crate::material::parse_certificates(data, "fuzz") else {
        return;
    };
    assert!(!certs.is_empty());
    let leaf = certs.remove(0);
    let key = crate::keys::SigningKey::from_pem_or_der(key_pem).expect("the fuzz target's key");
    if let Ok(id) = crate::material::Identity::new(leaf, certs, key, NOW) {
        assert!(id.chain_der.len() <= crate::limits::MAX_CHAIN);
        assert!(
            id.serial_decimal
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-')
        );
        let _ = (id.x509_header(), id.chain_header());
    }
}

/// A Vault answer body: the `errors` text, a PKI answer, the login's JWT claims.
pub fn vault_response(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let line = crate::vault::client::vault_errors(&text);
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = crate::vault::pki::parse_answer("fuzz", &v["data"]);
        if let Some(jwt) = v["auth"]["client_token"].as_str() {
            let _ = crate::vault::login::service_account_from_jwt(jwt);
        }
    }
    let _ = crate::vault::login::service_account_from_jwt(&text);
}

/// A CreateSession answer body: a 201's credentials (checked as the sinks check them) and an
/// error's code and message.
pub fn rolesanywhere_response(data: &[u8]) {
    if let Ok(s) = crate::rolesanywhere::session::parse_success(data) {
        let c = &s.credentials;
        if crate::limits::check_credentials(
            &c.access_key_id,
            c.secret_access_key.expose(),
            c.session_token.expose(),
            c.expiration,
            NOW,
            Some(3600),
        )
        .is_ok()
        {
            for v in [
                c.access_key_id.as_str(),
                c.secret_access_key.expose(),
                c.session_token.expose(),
            ] {
                assert!(!v.contains(['\n', '\r', '[', ']', ' ']), "{v:?}");
            }
        }
    }
    let (code, message) = crate::rolesanywhere::session::parse_error(&http::HeaderMap::new(), data);
    assert!(!message.contains('\n') && !message.contains('\r'));
    let _ = code;
}

/// The INI merge: any existing file, any of a few sections; the merge is idempotent, every
/// written line is there, and each line of the input outside the target survives.
pub fn ini_merge(data: &[u8]) {
    const SECTIONS: [&str; 4] = ["default", "app", "profile app", "x"];
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let existing = String::from_utf8_lossy(rest);
    let section = SECTIONS[usize::from(sel) % SECTIONS.len()];
    let owned = [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_security_token",
    ];
    let values = [
        ("aws_access_key_id", "ASIAFUZZFUZZFUZZFUZZ"),
        ("aws_session_token", "dG9rZW4="),
    ];
    let out = crate::aws::credentials_file::set_section(&existing, section, &owned, &values);
    for (k, v) in values {
        assert!(out.contains(&format!("{k} = {v}\n")));
    }
    let again = crate::aws::credentials_file::set_section(&out, section, &owned, &values);
    assert_eq!(again, out, "not idempotent");
}

/// An ARN of each kind, then the three together.
pub fn arn(data: &[u8]) {
    use crate::arn::{Arn, ArnKind, Target};
    let text = String::from_utf8_lossy(data);
    let mut parsed = Vec::new();
    for kind in [ArnKind::TrustAnchor, ArnKind::Profile, ArnKind::Role] {
        match Arn::parse(kind, &text) {
            Ok(a) => {
                assert_eq!(a.raw, text);
                parsed.push(Some(a));
            }
            Err(e) => {
                let line = e.to_string();
                assert!(line.len() < 1024, "error line of {} bytes", line.len());
                parsed.push(None);
            }
        }
    }
    if let [Some(ta), Some(pr), Some(role)] = &parsed[..] {
        let _ = Target::new(ta.clone(), pr.clone(), role.clone(), None).map(|t| {
            t.endpoint(
                crate::endpoints::Service::RolesAnywhere,
                &crate::endpoints::EndpointSettings::default(),
            )
        });
    }
}

/// The `serve` router: `data` is a request head (`METHOD PATH HTTP/1.1`, then `Name: value`
/// lines), routed against a sidecar with credentials, an ECS token and IMDS on. Every answer
/// has a status, and credentials only ever go out with the right token.
pub fn serve_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let Some(first) = lines.next() else { return };
    let mut parts = first.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let mut b = http::Request::builder().method(method).uri(target);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            b = b.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = b.body(()) else { return };
    let (parts, ()) = req.into_parts();
    let (status, body) = crate::serve::route_for_fuzzing(&parts);
    if body.contains(crate::serve::FUZZ_SECRET) {
        assert_eq!(status, http::StatusCode::OK);
        let auth = parts.headers.get_all(http::header::AUTHORIZATION);
        let imds = parts.headers.get("x-aws-ec2-metadata-token");
        assert!(
            auth.iter().count() == 1 || imds.is_some(),
            "credentials served without a token"
        );
    }
}
