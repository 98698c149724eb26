//! Temporary AWS credentials, as every sink (file, credential_process JSON, ECS/IMDS
//! endpoints, cache) receives them. `Debug` redacts the secret key and session token.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::secret::Secret;

/// A set of temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `ASIA…`: not secret on its own.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token.
    pub session_token: Secret,
    /// When they stop working.
    pub expiration: OffsetDateTime,
}

impl Credentials {
    /// `2025-12-11T16:34:25Z`.
    pub fn expiration_rfc3339(&self) -> String {
        rfc3339(self.expiration)
    }

    /// Seconds of validity left at `now` (negative once expired).
    pub fn seconds_left(&self, now: OffsetDateTime) -> i64 {
        (self.expiration - now).whole_seconds()
    }
}

/// RFC 3339 in UTC with a `Z` and whole seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 ns is valid")
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

/// Parses an RFC 3339 / ISO 8601 timestamp such as `2025-12-11T16:34:25Z`.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("s3cr3t"),
            session_token: Secret::new("t0k3n"),
            expiration: time::macros::datetime!(2025-12-11 16:34:25.5 UTC),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("t0k3n"), "{d}");
        assert_eq!(c.expiration_rfc3339(), "2025-12-11T16:34:25Z");
        assert_eq!(
            parse_rfc3339("2025-12-11T16:34:25Z").unwrap(),
            time::macros::datetime!(2025-12-11 16:34:25 UTC)
        );
    }
}
