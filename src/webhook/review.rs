//! `admission.k8s.io/v1` `AdmissionReview`: the request the API server POSTs to `/mutate` and
//! the response it expects (same `uid`, `allowed`, `patchType: JSONPatch` with the base64 RFC 6902
//! patch when something changes, `warnings`, `status` when denied).
//!
//! Written here, not taken from `kube-core`'s `admission` module: that one serializes the patch
//! as a JSON array of numbers instead of the base64 string the API documents, and brings its
//! own dependencies; these are the fields the webhook reads and writes, nothing else.

use super::pod::Pod;
use crate::limits::{quote, remote_text};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The only version served (the MutatingWebhookConfiguration asks for it).
pub(crate) const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

/// The incoming review.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: String,
    kind: String,
    request: Option<RequestIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    operation: String,
    /// Read straight into the view (no intermediate JSON tree); anything not shaped like a
    /// pod where the view looks is a malformed review.
    #[serde(default)]
    object: Option<Pod>,
}

#[derive(Debug, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// A review that is not one (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the webhook needs from a review.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Echoed in the response.
    pub(crate) uid: String,
    /// The request's namespace (for logs, through [`crate::limits::field`]).
    pub(crate) namespace: String,
    /// The pod's name, or `generateName` + `*` when it has none yet (for logs, through
    /// [`crate::limits::field`]).
    pub(crate) name: String,
    /// The pod, for a CREATE of a core/v1 Pod; `None` for anything else (allowed unchanged).
    pub(crate) pod: Option<Pod>,
}

/// Parses a request body.
pub(crate) fn parse(body: &[u8]) -> Result<Admission, Malformed> {
    let review: ReviewIn = serde_json::from_slice(body)
        // The parser's message may carry a piece of the body: bounded, one line.
        .map_err(|e| {
            Malformed(format!(
                "not an AdmissionReview: {}",
                remote_text(&e.to_string())
            ))
        })?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(Malformed(format!(
            "expected an {API_VERSION} {KIND}, got {} {}",
            quote(&review.api_version),
            quote(&review.kind)
        )));
    }
    let req = review
        .request
        .ok_or_else(|| Malformed("the AdmissionReview has no request".into()))?;
    let is_pod_create =
        req.kind.group.is_empty() && req.kind.kind == "Pod" && req.operation == "CREATE";
    let pod = match (is_pod_create, req.object) {
        (true, Some(pod)) => Some(pod),
        (true, None) => return Err(Malformed("a Pod CREATE without request.object".into())),
        (false, _) => None,
    };
    let name = match (&req.name, &pod) {
        (Some(n), _) if !n.is_empty() => n.clone(),
        (_, Some(p)) => match (&p.metadata.name, &p.metadata.generate_name) {
            (Some(n), _) => n.clone(),
            (None, Some(g)) => format!("{g}*"),
            (None, None) => String::new(),
        },
        _ => String::new(),
    };
    Ok(Admission {
        uid: req.uid,
        namespace: req.namespace.unwrap_or_default(),
        name,
        pod,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Debug, Serialize)]
struct Status<'a> {
    code: u16,
    message: &'a str,
}

/// An allowing response; `patch` is the serialized JSON Patch (`None` or empty: no change).
pub(crate) fn allow(uid: &str, patch: Option<&[u8]>, warnings: &[String]) -> Vec<u8> {
    let patch = patch.map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response: ResponseOut {
            uid,
            allowed: true,
            status: None,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings,
        },
    };
    serde_json::to_vec(&out).expect("a review serializes")
}

/// A denying response with the message the user sees (`kubectl` prints it).
pub(crate) fn deny(uid: &str, message: &str) -> Vec<u8> {
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response: ResponseOut {
            uid,
            allowed: false,
            status: Some(Status { code: 403, message }),
            patch_type: None,
            patch: None,
            warnings: &[],
        },
    };
    serde_json::to_vec(&out).expect("a review serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn review(object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop", "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": object, "oldObject": null, "dryRun": false
            }
        }))
        .unwrap()
    }

    #[test]
    fn parses_a_pod_create_with_generate_name() {
        let a = parse(&review(json!({
            "metadata": {"generateName": "web-5f6d8-"},
            "spec": {"containers": [{"name": "app"}]}
        })))
        .unwrap();
        assert_eq!(a.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(a.name, "web-5f6d8-*");
        assert_eq!(a.namespace, "shop");
        assert!(a.pod.is_some());
    }

    #[test]
    fn malformed() {
        assert!(parse(b"garbage").is_err());
        assert!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#)
                .is_err()
        );
        assert!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).is_err()
        );
        assert!(parse(&review(json!({"spec": {"containers": "no"}}))).is_err());
    }

    #[test]
    fn responses() {
        let v: Value = serde_json::from_slice(&allow("u", Some(b"[]"), &["w".into()])).unwrap();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["response"]["uid"], "u");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        assert_eq!(v["response"]["patch"], "W10=");
        assert_eq!(v["response"]["warnings"], json!(["w"]));
        let v: Value = serde_json::from_slice(&allow("u", None, &[])).unwrap();
        assert!(v["response"].get("patch").is_none() && v["response"].get("warnings").is_none());
        let v: Value = serde_json::from_slice(&deny("u", "no")).unwrap();
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["message"], "no");
    }
}
