//! The few fields of a Pod the webhook reads, deserialized from the review's `object`.
//!
//! Everything else in the pod is ignored here and left as it arrived: the patch is computed
//! against the JSON as received, so fields unknown to this view (or to any Kubernetes version)
//! survive untouched. Deserializing the full `k8s_openapi` `Pod` instead cost 774 KB of binary
//! (the `Deserialize` code of its ~150 nested types) for fields never read.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A Pod, as far as the webhook looks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pod {
    /// `metadata`.
    #[serde(default)]
    pub(crate) metadata: Meta,
    /// `spec`.
    pub(crate) spec: Option<Spec>,
}

/// `metadata`: names and annotations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    /// `name` (absent for pods of a Deployment, ReplicaSet, Job...).
    pub(crate) name: Option<String>,
    /// `generateName`.
    pub(crate) generate_name: Option<String>,
    /// `annotations`.
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec {
    /// `containers` (the app containers).
    #[serde(default)]
    pub(crate) containers: Vec<Container>,
    /// `initContainers`.
    pub(crate) init_containers: Option<Vec<Container>>,
    /// `volumes` (their names).
    pub(crate) volumes: Option<Vec<Named>>,
    /// `securityContext` (its `runAsUser`).
    pub(crate) security_context: Option<SecurityContext>,
    /// `serviceAccountName`.
    pub(crate) service_account_name: Option<String>,
}

/// A container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    /// `name`.
    pub(crate) name: String,
    /// `env`.
    pub(crate) env: Option<Vec<EnvVar>>,
    /// `volumeMounts`.
    pub(crate) volume_mounts: Option<Vec<VolumeMount>>,
    /// `securityContext` (its `runAsUser`).
    pub(crate) security_context: Option<SecurityContext>,
}

/// An `env` entry (`valueFrom` entries have no `value`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct EnvVar {
    /// `name`.
    pub(crate) name: String,
    /// `value`.
    pub(crate) value: Option<String>,
}

/// A `volumeMounts` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VolumeMount {
    /// `name`.
    pub(crate) name: String,
    /// `mountPath`.
    pub(crate) mount_path: String,
}

/// Anything with a `name` (a volume).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Named {
    /// `name`.
    pub(crate) name: String,
}

/// A pod or container `securityContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecurityContext {
    /// `runAsUser`.
    pub(crate) run_as_user: Option<i64>,
}
