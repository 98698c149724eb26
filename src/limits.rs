//! Every limit in one place: how much of a file or a request or response body is read, how long
//! a value from the command line, the network or a pod may be, what credentials must look like
//! before any sink (the credentials file, the cache, stdout, the `serve` endpoints) sees them,
//! and how much of a value is echoed back.
//!
//! Contract:
//! - a file or body larger than its cap is refused with one line naming the cap (never read to
//!   the end: `/dev/zero` stops after `cap + 1` bytes) — see [`crate::bounded`]; a request body
//!   to the webhook or `serve` over its cap ([`MAX_WEBHOOK_BODY`], [`MAX_SERVE_BODY`]) is `413`
//!   ([`crate::server`]);
//! - ARNs: AWS's own limits (IAM role ARN 20–2048 characters, role name 1–64, role path 1–512;
//!   Roles Anywhere trust anchor and profile ARNs 1–1011, `AmazonResourceName` in the service
//!   model, their ids 1–[`MAX_ROLESANYWHERE_ID_LEN`]); role session name 2–64 of
//!   `[A-Za-z0-9=,.@_-]`; a profile name 1–128 characters of `[A-Za-z0-9_.@+=,:/-]` (nothing that
//!   could open a new INI section or line); session durations
//!   [`MIN_SESSION_DURATION`]–[`MAX_SESSION_DURATION`] seconds (flag and pod annotation alike);
//! - key and certificate files: a key derivation asks at most [`MAX_PBKDF2_ITERATIONS`] PBKDF2
//!   iterations, [`MAX_SCRYPT_MEMORY`] and [`MAX_SCRYPT_PARALLELISM`] lanes of scrypt, or
//!   [`MAX_PKCS12_ITERATIONS`] in a PKCS#12 file (refused before any work); a chain carries at
//!   most [`MAX_CHAIN`] intermediates;
//! - credentials from Roles Anywhere ([`check_credentials`]): access key id 16–128 of
//!   `[A-Za-z0-9]` (IAM's `accessKeyIdType`), secret access key 16–256 and session token
//!   16–[`MAX_SESSION_TOKEN_LEN`] of the base64 alphabet `[A-Za-z0-9+/=]`, an expiration in the
//!   future and no later than the requested duration (plus [`CLOCK_SKEW_SECONDS`]) from now.
//! - **the echo door**: every value that goes back to a person or a log goes through the one
//!   function [`echo`], in one of three forms: [`quote`] in an error line, a webhook denial or
//!   warning (a value from a flag, a file, the environment, a pod or a server: `"…"`, escaped, at
//!   most [`MAX_QUOTED_CHARS`] characters); [`field`] as a log field (the same bound, one line,
//!   no quotes added, so `--log-format json` carries the value itself); [`remote_text`] for a
//!   server's own error text (one line, at most [`MAX_REMOTE_TEXT_CHARS`]).

use std::fmt;

use time::OffsetDateTime;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// `--certificate` and `--intermediates`: a leaf or a bundle of PEM certificates.
pub(crate) const MAX_CERTIFICATE_FILE: u64 = MIB;
/// `--private-key` (an RSA-8192 PKCS#8 PEM is under 7 KiB).
pub(crate) const MAX_PRIVATE_KEY_FILE: u64 = 256 * KIB;
/// The ServiceAccount token / JWT file (a projected token is 1–2 KiB).
pub(crate) const MAX_TOKEN_FILE: u64 = 64 * KIB;
/// `--pkcs8-password-file`.
pub(crate) const MAX_PASSWORD_FILE: u64 = 4 * KIB;
/// The AppRole secret id file (a UUID).
pub(crate) const MAX_SECRET_ID_FILE: u64 = 4 * KIB;
/// `VAULT_CACERT` and each file in `VAULT_CAPATH` (a full system bundle is ~200 KiB).
pub(crate) const MAX_CA_FILE: u64 = 4 * MIB;
/// One credential-process cache entry.
pub(crate) const MAX_CACHE_ENTRY: u64 = 64 * KIB;
/// An existing credentials or config file that is merged into.
pub(crate) const MAX_INI_FILE: u64 = 4 * MIB;
/// A Vault response body (a PKI answer with a chain is ~10 KiB).
pub(crate) const MAX_VAULT_BODY: u64 = MIB;
/// A Roles Anywhere CreateSession response body (~3 KiB).
pub(crate) const MAX_ROLESANYWHERE_BODY: u64 = 256 * KIB;
/// An STS GetCallerIdentity response body (`--verify`, ~1 KiB).
pub(crate) const MAX_STS_BODY: u64 = 64 * KIB;

/// IAM role ARNs (`arnType` in the IAM model).
pub(crate) const MAX_ROLE_ARN_LEN: usize = 2048;
/// The role name in a role ARN.
pub(crate) const MAX_ROLE_NAME_LEN: usize = 64;
/// The role path (`/a/b/`, slashes included).
pub(crate) const MAX_ROLE_PATH_LEN: usize = 512;
/// Trust anchor and profile ARNs (`AmazonResourceName` in the Roles Anywhere model).
pub(crate) const MAX_ROLESANYWHERE_ARN_LEN: usize = 1011;
/// `--role-session-name`.
pub(crate) const MAX_ROLE_SESSION_NAME_LEN: usize = 64;
/// `--profile`.
pub(crate) const MAX_PROFILE_NAME_LEN: usize = 128;
/// `--common-name` (a DNS name's maximum).
pub(crate) const MAX_COMMON_NAME_LEN: usize = 253;
/// An existing `--auth-token-file` (`serve`'s ECS token is 64 hex characters).
pub(crate) const MAX_AUTH_TOKEN_FILE: u64 = 4 * KIB;

/// Access key ids (IAM `accessKeyIdType`: 16–128 word characters).
pub(crate) const MAX_ACCESS_KEY_ID_LEN: usize = 128;
/// Secret access keys (40 characters today).
pub(crate) const MAX_SECRET_ACCESS_KEY_LEN: usize = 256;
/// Session tokens (AWS fixes no size; real ones are 400–1500 characters).
pub(crate) const MAX_SESSION_TOKEN_LEN: usize = 16 * 1024;
/// Slack allowed between our clock and the issuer's when checking an expiration.
pub(crate) const CLOCK_SKEW_SECONDS: i64 = 300;

/// The shortest session CreateSession grants (`--session-duration`, the pod annotation
/// `iamra-bootstrap/session-duration`).
pub(crate) const MIN_SESSION_DURATION: u32 = 900;
/// The longest session CreateSession grants.
pub(crate) const MAX_SESSION_DURATION: u32 = 43200;
/// The id after `trust-anchor/` or `profile/` (`ResourceId` in the Roles Anywhere model is a
/// 36-character UUID; a little room is left).
pub(crate) const MAX_ROLESANYWHERE_ID_LEN: usize = 64;

/// The webhook's largest request body. The API server caps objects near 3 MiB; a review of one
/// is a little larger.
pub(crate) const MAX_WEBHOOK_BODY: u64 = 4 * MIB;
/// The webhook's namespace policy file (`--namespace-policy`).
pub(crate) const MAX_POLICY_FILE: u64 = MIB;
/// `serve`'s largest request body (none of its routes takes one).
pub(crate) const MAX_SERVE_BODY: u64 = 64 * KIB;
/// A request body over its cap is read and dropped up to this many times the cap (the
/// webhook's: 64 MiB), so that the client, still sending, gets its 413 instead of a reset; a
/// larger one is refused at once ([`crate::server`]).
pub(crate) const BODY_DRAIN_FACTOR: u64 = 16;
/// The most intermediates `X-Amz-X509-Chain` may carry (Roles Anywhere's own limit).
pub(crate) const MAX_CHAIN: usize = 5;

/// The most PBKDF2 iterations decrypted (OpenSSL writes 2,048, OWASP asks 600,000 for SHA-256):
/// a file asking for billions would burn the CPU for hours on the abandoned loader thread
/// after `--timeout` ended the run ([`crate::keys::within`]).
pub(crate) const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// The most memory scrypt may take (128 · r · N bytes; OpenSSL's `-scrypt` takes 16 MiB): the
/// whole run stays within 64 MB of memory with a key at this cap (64 MiB took 69 MB).
pub(crate) const MAX_SCRYPT_MEMORY: u64 = 32 * MIB;
/// The most scrypt lanes (p) computed one after the other.
pub(crate) const MAX_SCRYPT_PARALLELISM: u16 = 16;
/// The most iterations a PKCS#12 MAC or password-based encryption may ask for: p12-keystore's
/// own cap, checked first so that the message says what is too much.
pub(crate) const MAX_PKCS12_ITERATIONS: u32 = 1_000_000;

/// A Vault role or PKI role name in a pod annotation (`iamra-bootstrap/vault-role`,
/// `iamra-bootstrap/pki-role`).
pub(crate) const MAX_ANNOTATION_ROLE_NAME_LEN: usize = 128;

/// The most characters of an offending value quoted in an error line.
pub(crate) const MAX_QUOTED_CHARS: usize = 96;

/// The most characters of a server's own error text (Vault's `errors`, AWS's `message`, a
/// parser's message about a request) carried into an error line.
pub(crate) const MAX_REMOTE_TEXT_CHARS: usize = 512;

/// The echo door (its three forms are [`quote`], [`field`] and [`remote_text`]): `value` rendered for a
/// person or a log, at most `max` rendered characters, the rest replaced by a count of the
/// value's characters. `quoted`: inside `"…"`, each character escaped as `{:?}` would (a
/// newline as `\n`, so nothing can start a new line or fake a field); else control characters
/// (CR, LF, tabs, ...) become spaces.
pub(crate) fn echo(value: &str, max: usize, quoted: bool) -> String {
    let mut out = String::with_capacity(value.len().min(max) + 24);
    if quoted {
        out.push('"');
    }
    let mut shown = 0;
    let mut rendered = String::new();
    for c in value.chars() {
        rendered.clear();
        match c {
            '\'' if quoted => rendered.push(c),
            _ if quoted => rendered.extend(c.escape_debug()),
            _ if c.is_control() => rendered.push(' '),
            _ => rendered.push(c),
        }
        let n = rendered.chars().count();
        if shown + n > max {
            if quoted {
                out.push('"');
            }
            out.push_str(&format!("… ({} characters)", value.chars().count()));
            return out;
        }
        shown += n;
        out.push_str(&rendered);
    }
    if quoted {
        out.push('"');
    }
    out
}

/// `value` as `"…"` for an error line or a log field (escaped as `{:?}` would): at most
/// [`MAX_QUOTED_CHARS`] characters of the escaped form, the rest replaced by a count.
pub(crate) fn quote(value: &str) -> String {
    echo(value, MAX_QUOTED_CHARS, true)
}

/// `value` as a log field: at most [`MAX_QUOTED_CHARS`] characters, control characters as
/// spaces (the text log stays one line per event; the JSON log escapes the rest itself).
pub(crate) fn field(value: &str) -> String {
    echo(value, MAX_QUOTED_CHARS, false)
}

/// A server's error text for an error line: control characters (CR, LF, tabs, ...) become
/// spaces, and at most [`MAX_REMOTE_TEXT_CHARS`] characters are kept.
pub(crate) fn remote_text(text: &str) -> String {
    echo(text, MAX_REMOTE_TEXT_CHARS, false)
}

/// A byte count as `1 MiB`, `64 KiB` or `12 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Why a set of credentials was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidCredentials(pub String);

impl fmt::Display for InvalidCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidCredentials {}

fn base64ish(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// Checks credentials before they are used, cached or written. `duration_seconds` is what was
/// requested (`None` when unknown, e.g. a cache entry: then only "in the future" is checked).
/// Messages name the field, never its value (except the access key id, which is not secret).
pub(crate) fn check_credentials(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: &str,
    expiration: OffsetDateTime,
    now: OffsetDateTime,
    duration_seconds: Option<u32>,
) -> Result<(), InvalidCredentials> {
    let bad = |m: String| Err(InvalidCredentials(m));
    if !(16..=MAX_ACCESS_KEY_ID_LEN).contains(&access_key_id.len())
        || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return bad(format!(
            "the access key id {} is not 16-{MAX_ACCESS_KEY_ID_LEN} letters and digits",
            quote(access_key_id)
        ));
    }
    if !(16..=MAX_SECRET_ACCESS_KEY_LEN).contains(&secret_access_key.len())
        || !base64ish(secret_access_key)
    {
        return bad(format!(
            "the secret access key ({} characters) is not 16-{MAX_SECRET_ACCESS_KEY_LEN} characters of A-Z a-z 0-9 + / =",
            secret_access_key.chars().count()
        ));
    }
    if !(16..=MAX_SESSION_TOKEN_LEN).contains(&session_token.len()) || !base64ish(session_token) {
        return bad(format!(
            "the session token ({} characters) is not 16-{MAX_SESSION_TOKEN_LEN} characters of A-Z a-z 0-9 + / =",
            session_token.chars().count()
        ));
    }
    let left = (expiration - now).whole_seconds();
    if left <= 0 {
        return bad(format!(
            "the credentials expired {} s ago (expiration {}); check the system clock",
            -left,
            crate::timefmt::format(expiration, crate::timefmt::Style::Human)
        ));
    }
    if let Some(d) = duration_seconds
        && left > i64::from(d) + CLOCK_SKEW_SECONDS
    {
        return bad(format!(
            "the credentials claim {left} s of validity for a {d} s session (expiration {}); check the system clock",
            crate::timefmt::format(expiration, crate::timefmt::Style::Human)
        ));
    }
    Ok(())
}

/// Whether `name` is a usable profile name: 1–[`MAX_PROFILE_NAME_LEN`] characters of
/// `[A-Za-z0-9_.@+=,:/-]`. `Err` says what is wrong.
pub(crate) fn check_profile_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@+=,:/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--profile {} is invalid: 1-{MAX_PROFILE_NAME_LEN} characters of A-Z a-z 0-9 _ . @ + = , : / -",
            quote(name)
        ))
    }
}

/// Whether `name` is a valid role session name (2–64 of `[A-Za-z0-9=,.@_-]`).
pub(crate) fn check_role_session_name(name: &str) -> Result<(), String> {
    let ok = (2..=MAX_ROLE_SESSION_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=,.@-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--role-session-name {} is invalid: 2-{MAX_ROLE_SESSION_NAME_LEN} characters of A-Z a-z 0-9 =,.@-_",
            quote(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
    const AK: &str = "ASIAABCDEFGHIJKLMNOP";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const ST: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==";

    fn check(ak: &str, sk: &str, st: &str, exp: OffsetDateTime) -> Result<(), String> {
        check_credentials(ak, sk, st, exp, NOW, Some(3600)).map_err(|e| e.0)
    }

    #[test]
    fn good_credentials_pass() {
        check(AK, SK, ST, NOW + time::Duration::hours(1)).unwrap();
        check(AK, SK, ST, NOW + time::Duration::minutes(10)).unwrap();
        check(AK, SK, ST, NOW + time::Duration::seconds(3600 + 299)).unwrap();
    }

    #[test]
    fn expired_or_implausible_lifetimes_are_refused() {
        let e = check(AK, SK, ST, NOW - time::Duration::seconds(5)).unwrap_err();
        assert!(e.contains("expired 5 s ago"), "{e}");
        assert!(check(AK, SK, ST, NOW).is_err());
        let e = check(AK, SK, ST, NOW + time::Duration::days(2)).unwrap_err();
        assert!(e.contains("for a 3600 s session"), "{e}");
        // Unknown duration (a cache entry): only "in the future" counts.
        check_credentials(AK, SK, ST, NOW + time::Duration::days(2), NOW, None).unwrap();
    }

    #[test]
    fn alphabets_and_lengths_are_checked_without_echoing_secrets() {
        let e = check(
            AK,
            "abc\n[evil]\nx=1abcdefghijkl",
            ST,
            NOW + time::Duration::hours(1),
        )
        .unwrap_err();
        assert!(
            e.contains("secret access key") && !e.contains("evil"),
            "{e}"
        );
        let e = check(
            AK,
            SK,
            "tok en tok en tok en",
            NOW + time::Duration::hours(1),
        )
        .unwrap_err();
        assert!(e.contains("session token") && !e.contains("tok en"), "{e}");
        let long = "A".repeat(MAX_SESSION_TOKEN_LEN + 1);
        assert!(check(AK, SK, &long, NOW + time::Duration::hours(1)).is_err());
        assert!(check("ASIA-1", SK, ST, NOW + time::Duration::hours(1)).is_err());
        assert!(check(&"A".repeat(129), SK, ST, NOW + time::Duration::hours(1)).is_err());
        assert!(check(AK, "short", ST, NOW + time::Duration::hours(1)).is_err());
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quote("abc"), "\"abc\"");
        let q = quote(&"x".repeat(40_000));
        assert!(q.len() < 150 && q.ends_with("(40000 characters)"), "{q}");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn quote_escapes_and_bounds_everything() {
        // Nothing in a quoted value can end the line, the quote or the field.
        let q = quote("a\r\nb\"c\\d\te\u{1b}[31m\u{0}");
        assert_eq!(q, "\"a\\r\\nb\\\"c\\\\d\\te\\u{1b}[31m\\0\"");
        assert!(!q.chars().any(char::is_control), "{q}");
        // The bound counts what is shown: a value of escapes is cut as early.
        let q = quote(&"\n".repeat(1000));
        assert!(q.chars().count() < MAX_QUOTED_CHARS + 30, "{q}");
        assert!(q.ends_with("\"… (1000 characters)"), "{q}");
        // Exactly at the bound: whole, no count.
        let exact = "y".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quote(&exact), format!("\"{exact}\""));
        let over = "y".repeat(MAX_QUOTED_CHARS + 1);
        assert!(quote(&over).ends_with("… (97 characters)"));
        // Multi-byte characters are never split.
        let q = quote(&"é".repeat(200));
        assert!(
            q.starts_with("\"éé") && q.ends_with("(200 characters)"),
            "{q}"
        );
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("it's"), "\"it's\"");
    }

    #[test]
    fn a_megabyte_is_echoed_in_a_line() {
        let mb = "x".repeat(1 << 20);
        assert!(quote(&mb).len() < 130);
        assert!(field(&mb).len() < 130 && field(&mb).starts_with("xxx"));
        assert_eq!(field("batch"), "batch");
        assert_eq!(field("a\nb\rc"), "a b c");
        assert!(remote_text(&mb).len() < 560);
        assert!(echo(&mb, 10, false).ends_with("… (1048576 characters)"));
    }

    #[test]
    fn remote_text_is_one_bounded_line() {
        assert_eq!(remote_text("a\rb\n\tc"), "a b  c");
        let long = remote_text(&"e".repeat(100_000));
        assert!(
            long.len() < 600 && long.ends_with("(100000 characters)"),
            "{long}"
        );
    }

    #[test]
    fn names() {
        check_profile_name("default").unwrap();
        check_profile_name("team/app-1").unwrap();
        for bad in ["", "a b", "x]\n[evil", "a\n", &"p".repeat(129)] {
            assert!(check_profile_name(bad).is_err(), "{bad:?}");
        }
        check_role_session_name("ci-run.1@x").unwrap();
        assert!(check_role_session_name("a").is_err());
        assert!(check_role_session_name("a\n").is_err());
        let e = check_role_session_name(&"s".repeat(10_000)).unwrap_err();
        assert!(e.len() < 250, "{e}");
        assert_eq!(human_bytes(MIB), "1 MiB");
        assert_eq!(human_bytes(64 * KIB), "64 KiB");
        assert_eq!(human_bytes(10), "10 bytes");
    }
}
