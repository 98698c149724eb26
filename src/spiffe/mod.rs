//! The SPIFFE Workload API, X.509-SVID profile: where the agent listens, how the SVIDs it
//! streams are told apart, and why a fetch failed.
//!
//! Contract (SPIFFE Workload Endpoint and Workload API specifications, `workload.proto` of the
//! SPIFFE project, copied in `tests/spiffe/workload.proto`; notes in
//! `docs/spiffe.md`):
//! - the endpoint is a URI ([`Endpoint::parse`]): `unix:///abs/path` or `unix:/abs/path` (no
//!   authority, an absolute path, no query or fragment), or `tcp://IP:port` (an IP address,
//!   not a name; no path); `SPIFFE_ENDPOINT_SOCKET` names it when no flag does;
//! - every call carries the metadata `workload.spiffe.io: true` (a server answers
//!   `InvalidArgument` without it) ([`client`]);
//! - `FetchX509SVID` is a server stream; every response is the complete current set of SVIDs:
//!   `x509_svid` is the DER chain, leaf first, `x509_svid_key` the PKCS#8 DER key, `bundle` the
//!   trust domain's CA certificates (never sent to Roles Anywhere), `hint` an operator's name
//!   for the SVID. The first SVID is the default identity ([`Selector`]);
//! - `Unavailable` and `PermissionDenied` (a workload not attested yet) may be retried with
//!   backoff; `InvalidArgument` should not be; a later response without an SVID, or
//!   `PermissionDenied`, means the SVID must no longer be used.
//!
//! Nothing here verifies the SVID against the bundle: Roles Anywhere checks the chain against
//! its trust anchor, and `material` applies its rules to the leaf.

pub(crate) mod client;
pub(crate) mod proto;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::limits;

/// Where the Workload API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Endpoint {
    /// Parses a Workload Endpoint URI (SPIFFE Workload Endpoint specification, section 4);
    /// the error says what is wrong and what a valid one looks like.
    pub(crate) fn parse(raw: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| {
            Err(format!(
                "invalid SPIFFE Workload API endpoint {}: {why}; use unix:///path/to/socket or tcp://IP:PORT",
                limits::quote(raw)
            ))
        };
        if raw.contains(['?', '#']) {
            return bad("it may not have a query or a fragment");
        }
        if let Some(rest) = raw.strip_prefix("unix:") {
            let path = match rest.strip_prefix("//") {
                // unix:///abs: an empty authority. unix://host/path names a host: not allowed.
                Some(after) if after.starts_with('/') => after,
                Some(_) => return bad("a unix URI has no authority (unix:///abs/path)"),
                None => rest,
            };
            if !path.starts_with('/') {
                return bad("the socket path must be absolute");
            }
            return match percent_encoding::percent_decode_str(path).decode_utf8() {
                Ok(decoded) => Ok(Endpoint::Unix(PathBuf::from(decoded.into_owned()))),
                Err(_) => bad("the path is not UTF-8 once percent-decoded"),
            };
        }
        if let Some(rest) = raw.strip_prefix("tcp://") {
            let host_port = rest.strip_suffix('/').unwrap_or(rest);
            if host_port.contains('/') {
                return bad("a tcp URI has no path");
            }
            if host_port.contains('@') {
                return bad("a tcp URI has no user information");
            }
            return match host_port.parse::<SocketAddr>() {
                Ok(a) => Ok(Endpoint::Tcp(a)),
                Err(_) => bad("a tcp URI names an IP address and a port (tcp://127.0.0.1:8081)"),
            };
        }
        bad("the scheme must be unix or tcp")
    }
}

/// One X.509-SVID as the agent sent it (the key kept in zeroized memory).
pub(crate) struct Svid {
    pub(crate) spiffe_id: String,
    pub(crate) hint: String,
    /// The DER certificates of `x509_svid`, concatenated, leaf first.
    pub(crate) chain: Vec<u8>,
    /// PKCS#8 DER.
    pub(crate) key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("hint", &self.hint)
            .field("chain_bytes", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Svid {
    /// The leaf and its intermediates, split from the concatenated DER of `x509_svid`.
    pub(crate) fn certificates(&self) -> Result<Vec<Vec<u8>>, String> {
        split_der(&self.chain)
    }

    /// How the SVID is named in logs and errors.
    /// The agent's text through the echo door ([`limits::field`], [`limits::quote`]).
    pub(crate) fn describe(&self) -> String {
        if self.hint.is_empty() {
            limits::field(&self.spiffe_id)
        } else {
            format!(
                "{} (hint {})",
                limits::field(&self.spiffe_id),
                limits::quote(&self.hint)
            )
        }
    }
}

/// Splits concatenated DER certificates (each an ASN.1 SEQUENCE with a definite length).
pub(crate) fn split_der(mut der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use x509_parser::prelude::FromDer;
    let mut out = Vec::new();
    while !der.is_empty() {
        if out.len() > limits_chain() {
            return Err(format!(
                "more than {} certificates in the chain",
                limits_chain()
            ));
        }
        let (rest, _) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| format!("certificate {} of the chain is not DER: {e}", out.len() + 1))?;
        out.push(der[..der.len() - rest.len()].to_vec());
        der = rest;
    }
    if out.is_empty() {
        return Err("the SVID holds no certificate".into());
    }
    Ok(out)
}

/// The leaf plus the most intermediates Roles Anywhere takes, plus a root the agent may add.
fn limits_chain() -> usize {
    crate::limits::MAX_CHAIN + 2
}

/// Which SVID to use when the agent offers several: `--spiffe-id`, `--spiffe-hint`, or the
/// first (the spec's default identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    pub(crate) id: Option<String>,
    pub(crate) hint: Option<String>,
}

impl Selector {
    /// The SVID this selector picks from a response, or why none fits.
    pub(crate) fn pick<'a>(&self, svids: &'a [Svid]) -> Result<&'a Svid, SpiffeError> {
        let found = svids.iter().find(|s| {
            self.id.as_ref().is_none_or(|id| &s.spiffe_id == id)
                && self.hint.as_ref().is_none_or(|h| &s.hint == h)
        });
        found.ok_or_else(|| SpiffeError::NoMatch {
            wanted: self.describe(),
            offered: svids.iter().map(Svid::describe).collect(),
        })
    }

    /// The flags this selector came from, as an error names them.
    pub(crate) fn describe(&self) -> String {
        match (&self.id, &self.hint) {
            (Some(id), Some(h)) => format!(
                "--spiffe-id {} --spiffe-hint {}",
                limits::field(id),
                limits::quote(h)
            ),
            (Some(id), None) => format!("--spiffe-id {}", limits::field(id)),
            (None, Some(h)) => format!("--spiffe-hint {}", limits::quote(h)),
            (None, None) => "the default (first) SVID".into(),
        }
    }
}

/// Why connecting failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectKind {
    /// No socket file: no agent there (yet), or the volume is not mounted.
    Absent,
    /// The socket exists, or the port is closed, but nobody accepts.
    Refused,
    /// Anything else (permissions, HTTP/2 handshake, ...).
    Other,
}

/// Why the Workload API gave no usable SVID.
#[derive(Debug, Clone)]
pub(crate) enum SpiffeError {
    /// The socket could not be reached.
    Connect {
        endpoint: String,
        kind: ConnectKind,
        why: String,
    },
    /// A gRPC status: `PermissionDenied` (not attested, or withdrawn), `InvalidArgument`, ...
    Status {
        endpoint: String,
        code: tonic::Code,
        message: String,
    },
    /// The server ended the stream.
    Closed { endpoint: String },
    /// No SVID in the response fits `--spiffe-id` / `--spiffe-hint` (or the response had none).
    NoMatch {
        wanted: String,
        offered: Vec<String>,
    },
    /// The chosen SVID cannot be used (not DER, key not PKCS#8, fails the certificate rules).
    Unusable { svid: String, why: String },
    /// Nothing at all before the deadline.
    NoAnswer { endpoint: String },
    /// Still failing, retryably, when `--timeout` ran out.
    GaveUp(Box<SpiffeError>),
}

impl SpiffeError {
    /// Whether the spec allows another try (`Unavailable`, `PermissionDenied`, a dead or
    /// absent socket); `InvalidArgument` and the like are final.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            SpiffeError::Connect { .. } | SpiffeError::Closed { .. } => true,
            SpiffeError::Status { code, .. } => !matches!(
                code,
                tonic::Code::InvalidArgument | tonic::Code::Unimplemented
            ),
            _ => false,
        }
    }

    /// `PermissionDenied`: the agent has not attested this workload, or withdrew its SVIDs.
    pub(crate) fn denied(&self) -> bool {
        matches!(
            self,
            SpiffeError::Status {
                code: tonic::Code::PermissionDenied,
                ..
            }
        )
    }

    /// The agent took the SVID away: a response without it, or `PermissionDenied` on a
    /// stream that had given SVIDs. Credentials made from it must no longer be handed out.
    pub(crate) fn withdrawn(&self) -> bool {
        matches!(self, SpiffeError::NoMatch { .. }) || self.denied()
    }

    /// The exit code: 2 when `--spiffe-id`/`--spiffe-hint` asks for what the agent does not
    /// give (fix the flag or the registration), else 3 (the identity provider).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            SpiffeError::NoMatch { .. } => 2,
            SpiffeError::GaveUp(inner) => inner.exit_code(),
            _ => 3,
        }
    }
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeError::Connect {
                endpoint,
                kind: ConnectKind::Absent,
                why,
            } => write!(
                f,
                "no SPIFFE Workload API at {endpoint} ({why}): is the SPIFFE agent running and its socket mounted here? check --spiffe-endpoint / SPIFFE_ENDPOINT_SOCKET"
            ),
            SpiffeError::Connect {
                endpoint,
                kind: ConnectKind::Refused,
                why,
            } => write!(
                f,
                "the SPIFFE Workload API at {endpoint} refused the connection ({why}): the agent is not listening; start it or check --spiffe-endpoint"
            ),
            SpiffeError::Connect {
                endpoint,
                kind: ConnectKind::Other,
                why,
            } => write!(
                f,
                "cannot reach the SPIFFE Workload API at {endpoint}: {why}"
            ),
            SpiffeError::Status {
                endpoint,
                code: tonic::Code::PermissionDenied,
                message,
            } => write!(
                f,
                "the SPIFFE Workload API at {endpoint} gives this workload no SVID (PermissionDenied: {}): it is not attested yet, or has no registration entry; check the agent's log and the entry's selectors",
                limits::quote(message)
            ),
            SpiffeError::Status {
                endpoint,
                code,
                message,
            } => write!(
                f,
                "the SPIFFE Workload API at {endpoint} answered {code:?}: {}",
                limits::quote(message)
            ),
            SpiffeError::Closed { endpoint } => {
                write!(f, "the SPIFFE Workload API at {endpoint} closed the stream")
            }
            SpiffeError::NoMatch { wanted, offered } if offered.is_empty() => write!(
                f,
                "the SPIFFE Workload API offers no SVID (wanted: {wanted}): the agent withdrew them or has none for this workload"
            ),
            SpiffeError::NoMatch { wanted, offered } => write!(
                f,
                "no SVID from the SPIFFE Workload API matches {wanted}; it offers: {}; pass one of those",
                offered.join(", ")
            ),
            SpiffeError::Unusable { svid, why } => write!(
                f,
                "the SPIFFE Workload API sent an unusable SVID {svid}: {why}"
            ),
            SpiffeError::NoAnswer { endpoint } => write!(
                f,
                "no answer from the SPIFFE Workload API at {endpoint} within --timeout"
            ),
            SpiffeError::GaveUp(last) => write!(f, "{last} (still so when --timeout ran out)"),
        }
    }
}

impl std::error::Error for SpiffeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_the_spec_allows_them() {
        assert_eq!(
            Endpoint::parse("unix:///run/spire/agent.sock").unwrap(),
            Endpoint::Unix("/run/spire/agent.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix:/tmp/a%20b.sock").unwrap(),
            Endpoint::Unix("/tmp/a b.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:8081").unwrap(),
            Endpoint::Tcp("127.0.0.1:8081".parse().unwrap())
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:8081").unwrap(),
            Endpoint::Tcp("[::1]:8081".parse().unwrap())
        );
        for (bad, why) in [
            ("unix:relative.sock", "absolute"),
            ("unix://host/agent.sock", "authority"),
            ("unix:///a.sock?x=1", "query"),
            ("tcp://localhost:8081", "IP address"),
            ("tcp://127.0.0.1", "IP address"),
            ("tcp://127.0.0.1:8081/path", "path"),
            ("http://127.0.0.1:8081", "scheme"),
            ("/run/spire/agent.sock", "scheme"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("unix:///path/to/socket"), "{e}");
        }
        assert_eq!(
            Endpoint::parse("unix:///run/a.sock").unwrap().to_string(),
            "unix:///run/a.sock"
        );
    }

    fn svid(id: &str, hint: &str) -> Svid {
        Svid {
            spiffe_id: id.into(),
            hint: hint.into(),
            chain: vec![],
            key: Zeroizing::new(vec![1, 2, 3]),
        }
    }

    #[test]
    fn selection_by_id_hint_or_first() {
        let set = [
            svid("spiffe://example.org/a", "internal"),
            svid("spiffe://example.org/b", "external"),
        ];
        let any = Selector::default();
        assert_eq!(any.pick(&set).unwrap().spiffe_id, "spiffe://example.org/a");
        let by_id = Selector {
            id: Some("spiffe://example.org/b".into()),
            hint: None,
        };
        assert_eq!(by_id.pick(&set).unwrap().hint, "external");
        let by_hint = Selector {
            id: None,
            hint: Some("external".into()),
        };
        assert_eq!(
            by_hint.pick(&set).unwrap().spiffe_id,
            "spiffe://example.org/b"
        );
        let none = Selector {
            id: Some("spiffe://example.org/c".into()),
            hint: None,
        };
        let e = none.pick(&set).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let line = e.to_string();
        assert!(
            line.contains("--spiffe-id spiffe://example.org/c"),
            "{line}"
        );
        assert!(
            line.contains("spiffe://example.org/b (hint \"external\")"),
            "{line}"
        );
        assert!(
            any.pick(&[])
                .unwrap_err()
                .to_string()
                .contains("offers no SVID")
        );
        // The key never shows in Debug.
        assert!(!format!("{:?}", set[0]).contains("[1, 2, 3]"));
    }

    #[test]
    fn retry_classes() {
        let st = |code| SpiffeError::Status {
            endpoint: "unix:///s".into(),
            code,
            message: String::new(),
        };
        assert!(st(tonic::Code::Unavailable).retryable());
        assert!(st(tonic::Code::PermissionDenied).retryable());
        assert!(st(tonic::Code::PermissionDenied).denied());
        assert!(!st(tonic::Code::InvalidArgument).retryable());
        assert_eq!(st(tonic::Code::Unavailable).exit_code(), 3);
    }

    #[test]
    fn der_chains_are_split() {
        let ca = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&ca)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b.test".into()])
            .unwrap()
            .self_signed(&ca)
            .unwrap();
        let mut both = a.der().to_vec();
        both.extend_from_slice(b.der());
        let split = split_der(&both).unwrap();
        assert_eq!(split, vec![a.der().to_vec(), b.der().to_vec()]);
        assert!(split_der(&[]).is_err());
        assert!(split_der(&both[..both.len() - 3]).is_err());
        assert!(split_der(b"not der").is_err());
    }
}
