//! The SPIFFE source: X.509-SVIDs from the SPIFFE Workload API ([`crate::spiffe`]), kept in
//! memory only (nothing of the SVID or its key is written anywhere).
//!
//! A watcher task (started by the first [`SpiffeSource::obtain`]) keeps one
//! `FetchX509SVID` stream open and publishes every response, the complete set of SVIDs, on a
//! `tokio::sync::watch` channel:
//! - opening the stream is retried through [`crate::retry::run`] with backoff (200 ms doubling
//!   to 5 s, full jitter) while the agent is absent, refuses, answers `Unavailable` or
//!   `PermissionDenied` (not attested yet); `InvalidArgument` (and `Unimplemented`) stop it;
//! - a stream that breaks is opened again the same way; the SVIDs last received stay usable
//!   meanwhile (they are valid certificates until they expire);
//! - `PermissionDenied` on an open stream withdraws the SVIDs, as does a response without the
//!   selected one: [`SpiffeSource::obtain`] then fails at once ([`SourceError::withdrawn`]),
//!   so no new session is made from a withdrawn SVID.
//!
//! `obtain` waits (until its deadline) for the first response, picks the SVID ([`Selector`]),
//! checks it as any certificate ([`Identity::new`]; the key is PKCS#8 DER) and sends the leaf
//! and the intermediates, never the bundle. The refresh loop of the long-running commands
//! ([`super::refresh`]) always waits on [`SpiffeSource::changed`] too, which resolves as soon as
//! the agent pushes a different SVID (a rotation) or withdraws it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;

use super::{Obtained, SourceError, log_session};
use crate::keys::SigningKey;
use crate::limits;
use crate::material::Identity;
use crate::retry::{self, Outcome, Policy};
use crate::rolesanywhere::session::SessionClient;
use crate::spiffe::client::{self, X509Stream};
use crate::spiffe::proto::X509SvidResponse;
use crate::spiffe::{Endpoint, Selector, SpiffeError, Svid};
use crate::timefmt::{self, Style};

/// Backoff between attempts to open the stream.
const POLICY: Policy = Policy {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
    failover_cap: Duration::from_secs(5),
    max_attempts: None,
};

/// The Workload API, the SVID to pick, and the watcher once started.
#[derive(Debug)]
pub(crate) struct SpiffeSource {
    pub(crate) endpoint: Endpoint,
    pub(crate) selector: Selector,
    watcher: OnceLock<watch::Receiver<Snapshot>>,
    /// A digest of the SVID the last `obtain` used (`None`: none yet).
    used: Mutex<Option<[u8; 32]>>,
}

/// What the watcher knows now.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// The latest set: `None` before the first response and after `PermissionDenied`.
    svids: Option<Arc<Vec<Svid>>>,
    /// The last failure since the last response.
    failure: Option<SpiffeError>,
    /// A set had been received, then `PermissionDenied` took it away.
    withdrawn: bool,
    /// The watcher stopped for good (`InvalidArgument`): `failure` says why.
    stopped: bool,
}

impl SpiffeSource {
    pub(crate) fn new(endpoint: Endpoint, selector: Selector) -> SpiffeSource {
        SpiffeSource {
            endpoint,
            selector,
            watcher: OnceLock::new(),
            used: Mutex::new(None),
        }
    }

    /// What changes the SVID asked for (for the cache key).
    pub(super) fn describe(&self) -> String {
        format!(
            "spiffe {} id={} hint={}",
            self.endpoint,
            self.selector.id.as_deref().unwrap_or("-"),
            self.selector.hint.as_deref().unwrap_or("-")
        )
    }

    /// The watcher's channel, starting the watcher on first use.
    fn receiver(&self) -> watch::Receiver<Snapshot> {
        self.watcher
            .get_or_init(|| {
                let (tx, rx) = watch::channel(Snapshot::default());
                tokio::spawn(watch_stream(self.endpoint.clone(), tx));
                rx
            })
            .clone()
    }

    pub(super) async fn obtain(
        &self,
        client: &SessionClient,
        deadline: Instant,
    ) -> Result<Obtained, SourceError> {
        let identity = self.identity(deadline).await?;
        let t = Instant::now();
        let session = client.create_session(&identity, deadline).await?;
        log_session(&session, t);
        Ok(Obtained::new(session, identity.not_after))
    }

    /// The selected SVID as a checked identity, waiting up to `deadline` for the agent.
    async fn identity(&self, deadline: Instant) -> Result<Identity, SpiffeError> {
        let mut rx = self.receiver();
        let ready = |s: &Snapshot| s.svids.is_some() || s.stopped || s.withdrawn;
        let waited = tokio::time::timeout_at(deadline.into(), rx.wait_for(ready))
            .await
            .map(|r| r.map(|s| s.clone()));
        let snap = match waited {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => rx.borrow().clone(),
            Err(_) => {
                let s = rx.borrow().clone();
                return Err(match s.failure {
                    Some(f) => SpiffeError::GaveUp(Box::new(f)),
                    None => SpiffeError::NoAnswer {
                        endpoint: self.endpoint.to_string(),
                    },
                });
            }
        };
        // What this obtain saw (nothing, when withdrawn): the next wait ends on a change.
        let picked = snap.svids.as_ref().map(|set| self.selector.pick(set));
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) = picked
            .as_ref()
            .and_then(|p| p.as_ref().ok())
            .map(|s| digest(s));
        let svid = match picked {
            Some(p) => p?,
            None => {
                return Err(snap.failure.unwrap_or(SpiffeError::NoAnswer {
                    endpoint: self.endpoint.to_string(),
                }));
            }
        };
        let identity = checked(svid)?;
        tracing::info!(
            step = "svid",
            spiffe_id = %limits::field(&svid.spiffe_id),
            hint = %limits::field(&svid.hint),
            serial = %identity.serial_decimal,
            not_after = %timefmt::format(identity.not_after, Style::Human),
            chain = identity.chain_der.len(),
            "X.509-SVID from the Workload API"
        );
        Ok(identity)
    }

    /// Resolves as soon as the selected SVID differs from what the last `obtain` saw: a
    /// rotation, a withdrawal, or an SVID back after one.
    pub(crate) async fn changed(&self) {
        let used = *self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut rx = self.receiver();
        let selector = self.selector.clone();
        let changed = move |s: &Snapshot| {
            let now = s
                .svids
                .as_ref()
                .and_then(|set| selector.pick(set).ok().map(digest));
            now != used
        };
        let stopped = rx.wait_for(changed).await.is_err();
        if stopped {
            // The watcher stopped (InvalidArgument): nothing will change any more.
            std::future::pending::<()>().await;
        }
        tracing::info!("the Workload API pushed a new SVID set: refreshing now");
    }
}

/// A digest of an SVID's certificates (tells a rotation apart).
fn digest(svid: &Svid) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &svid.chain).as_ref());
    out
}

/// The SVID as an [`Identity`]: leaf and intermediates split from the DER chain, the PKCS#8
/// key loaded, the certificate rules applied now.
fn checked(svid: &Svid) -> Result<Identity, SpiffeError> {
    let unusable = |why: String| SpiffeError::Unusable {
        svid: svid.describe(),
        why,
    };
    let mut certs = svid.certificates().map_err(unusable)?;
    let leaf = certs.remove(0);
    let key = SigningKey::from_pkcs8(&svid.key)
        .map_err(|e| unusable(format!("its private key (PKCS#8): {e}")))?;
    Identity::new(leaf, certs, key, OffsetDateTime::now_utc()).map_err(|e| unusable(e.to_string()))
}

/// The SVIDs of a response, keys moved into zeroized memory.
fn svids_of(response: X509SvidResponse) -> Vec<Svid> {
    response
        .svids
        .into_iter()
        .map(|mut s| Svid {
            spiffe_id: std::mem::take(&mut s.spiffe_id),
            hint: std::mem::take(&mut s.hint),
            chain: std::mem::take(&mut s.x509_svid),
            key: zeroize::Zeroizing::new(std::mem::take(&mut s.x509_svid_key)),
        })
        .collect()
}

/// Opens the stream and reads its first response.
async fn open(endpoint: &Endpoint) -> Result<(X509Stream, X509SvidResponse), SpiffeError> {
    let mut stream = client::fetch_x509_svids(endpoint).await?;
    match stream.message().await {
        Ok(Some(first)) => Ok((stream, first)),
        Ok(None) => Err(SpiffeError::Closed {
            endpoint: endpoint.to_string(),
        }),
        Err(s) => Err(client::status_error(&endpoint.to_string(), &s)),
    }
}

/// Keeps the stream open for as long as the process runs, publishing what it learns.
async fn watch_stream(endpoint: Endpoint, tx: watch::Sender<Snapshot>) {
    let failed = |e: &SpiffeError| {
        tx.send_modify(|s| {
            if e.denied() && s.svids.is_some() {
                tracing::warn!(error = %e, "the Workload API withdrew the SVIDs: they are no longer used");
                s.svids = None;
                s.withdrawn = true;
            }
            s.failure = Some(e.clone());
        });
    };
    let received = |r: X509SvidResponse| {
        let set = svids_of(r);
        let ids: Vec<String> = set.iter().map(Svid::describe).collect();
        tracing::info!(svids = %ids.join(", "), "SVID set from the Workload API");
        tx.send_modify(|s| {
            s.svids = Some(Arc::new(set));
            s.failure = None;
            s.withdrawn = false;
        });
    };
    // Far enough to never end: the watcher lives as long as the process.
    let forever = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        let opened = retry::run(
            "the SPIFFE Workload API",
            "FetchX509SVID",
            POLICY,
            forever(),
            || {
                let failed = &failed;
                let endpoint = &endpoint;
                async move {
                    match open(endpoint).await {
                        Ok(x) => Outcome::Done(x),
                        Err(e) => {
                            failed(&e);
                            if e.retryable() {
                                Outcome::Retry {
                                    why: e.to_string(),
                                    after: None,
                                }
                            } else {
                                Outcome::Fatal(e)
                            }
                        }
                    }
                }
            },
        )
        .await;
        let mut stream = match opened {
            Ok((stream, first)) => {
                received(first);
                stream
            }
            Err(retry::Failure::Fatal(e)) => {
                tracing::error!(error = %e, "the Workload API refused the request: not asking again");
                tx.send_modify(|s| s.stopped = true);
                return;
            }
            Err(retry::Failure::GaveUp { .. }) => continue,
        };
        loop {
            match stream.message().await {
                Ok(Some(r)) => received(r),
                Ok(None) => {
                    failed(&SpiffeError::Closed {
                        endpoint: endpoint.to_string(),
                    });
                    break;
                }
                Err(status) => {
                    let e = client::status_error(&endpoint.to_string(), &status);
                    failed(&e);
                    if !e.retryable() {
                        tracing::error!(error = %e, "the Workload API stream failed: not asking again");
                        tx.send_modify(|s| s.stopped = true);
                        return;
                    }
                    break;
                }
            }
        }
        tracing::warn!(endpoint = %endpoint, "the Workload API stream ended: opening it again");
    }
}
