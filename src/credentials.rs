//! Temporary AWS credentials, as Roles Anywhere returns them and every sink (credentials file,
//! credential_process JSON, ECS/IMDS endpoints, cache) receives them. `Debug` redacts the secret
//! key and session token.

use time::OffsetDateTime;

use crate::secret::Secret;
use crate::timefmt::{self, Style};

/// A set of temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// `ASIA…`: not secret on its own.
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret,
    pub(crate) session_token: Secret,
    /// When they stop working.
    pub(crate) expiration: OffsetDateTime,
}

impl Credentials {
    /// `2025-12-11T16:34:25Z`.
    pub(crate) fn expiration_rfc3339(&self) -> String {
        timefmt::format(self.expiration, Style::Rfc3339)
    }

    /// Seconds of validity left at `now` (negative once expired).
    pub(crate) fn seconds_left(&self, now: OffsetDateTime) -> i64 {
        (self.expiration - now).whole_seconds()
    }
}

/// The one test fixture: `ASIA1` / `sk` / `st`, expiring at `expiration`.
#[cfg(test)]
pub(crate) fn fixture(expiration: OffsetDateTime) -> Credentials {
    Credentials {
        access_key_id: "ASIA1".into(),
        secret_access_key: Secret::new("sk"),
        session_token: Secret::new("st"),
        expiration,
    }
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
    }
}
