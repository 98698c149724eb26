//! The one time formatter: every timestamp this tool prints or parses, in UTC, to the second.
//!
//! | [`Style`] | example | where |
//! |---|---|---|
//! | `Rfc3339` | `2025-12-11T16:34:25Z` | credential_process JSON, ECS/IMDS bodies, CreateSession's `expiration` |
//! | `AmzDate` | `20251211T163425Z` | `X-Amz-Date` and the SigV4 scope |
//! | `Human` | `2025-12-11 16:34:25 UTC` | error messages and logs |

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A format from the table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Rfc3339,
    AmzDate,
    Human,
}

/// `t` in UTC, whole seconds, in `style`.
pub(crate) fn format(t: OffsetDateTime, style: Style) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    match style {
        Style::Rfc3339 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        Style::AmzDate => format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
        Style::Human => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"),
    }
}

/// Parses an RFC 3339 timestamp such as `2025-12-11T16:34:25Z` (any offset, fractions kept).
pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_style_in_utc_whole_seconds() {
        let t = time::macros::datetime!(2025-12-11 18:34:25.7 +02:00);
        assert_eq!(format(t, Style::Rfc3339), "2025-12-11T16:34:25Z");
        assert_eq!(format(t, Style::AmzDate), "20251211T163425Z");
        assert_eq!(format(t, Style::Human), "2025-12-11 16:34:25 UTC");
        assert_eq!(
            parse_rfc3339("2025-12-11T16:34:25Z").unwrap(),
            time::macros::datetime!(2025-12-11 16:34:25 UTC)
        );
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
