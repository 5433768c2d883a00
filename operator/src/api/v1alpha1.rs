//! `haproxy-peers.io/v1alpha1` `PeerGroup`: a group of HAProxy pods that share their stick tables.
//!
//! Defaults live on the fields (`serde(default)`), so the CRD publishes them and the API server
//! fills them in; schema patterns and CEL rules make `kubectl apply` refuse what render would
//! have to refuse anyway. `problems()` (in `validate.rs`) repeats the checks the schema cannot
//! express, for objects that were stored before a rule existed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{DURATION_MAX_LEN, DURATION_PATTERN};

/// Characters HAProxy accepts in a peers section name (and in a peer name).
pub const PEERS_SECTION_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";
/// A table's wire name: a proxy name (`be_rate`), or `/<name>` for a table declared inside a
/// peers section.
pub const TABLE_NAME_PATTERN: &str = "^/?[A-Za-z0-9_.:-]+$";
/// A DNS domain such as `cluster.local`.
pub const DOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// The group name is the prefix of the headless Service name `<name>-peers`, which must be an
/// RFC 1035 label of at most 63 characters.
pub const MAX_GROUP_NAME_LEN: usize = 57;

/// A group of HAProxy pods (normally one StatefulSet) whose stick tables are replicated by
/// the haproxy-peers sidecar.
// The lint mistakes the repeated `type_ = "string"` of separate printcolumn(...) for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "haproxy-peers.io",
    version = "v1alpha1",
    kind = "PeerGroup",
    plural = "peergroups",
    shortname = "hpg",
    namespaced,
    status = "PeerGroupStatus",
    derive = "PartialEq",
    doc = "A group of HAProxy pods whose stick tables are replicated by haproxy-peers sidecars.",
    printcolumn(
        name = "Members",
        type_ = "string",
        json_path = ".status.readyMembers",
        description = "ready members / members"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Certificates",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"CertificatesReady\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PeerGroupSpec {
    /// The HAProxy pods of the group, in the PeerGroup's namespace. `matchLabels` is required:
    /// the headless Service `<name>-peers` selects the pods by it.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "has(self.matchLabels) && size(self.matchLabels) > 0",
        "message": "selector.matchLabels must name at least one label: the headless Service selects the group's pods by these labels"
    }]))]
    pub selector: LabelSelector,

    /// Name of the HAProxy `peers` section in the rendered peers.cfg, which the stick tables
    /// reference (`stick-table ... peers <name>`). Default: the PeerGroup's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(PEERS_SECTION_PATTERN))]
    pub peers_section: Option<String>,

    #[serde(default)]
    pub ports: Ports,

    #[serde(default)]
    pub tls: TlsSpec,

    /// How long a starting sidecar waits to learn the table from a remote member before it
    /// reports Ready anyway, e.g. "30s", "2m".
    #[serde(default = "default_resync_timeout")]
    #[schemars(length(max = DURATION_MAX_LEN), pattern(DURATION_PATTERN))]
    pub resync_timeout: String,

    /// Per-table replication policy by the table's wire name. Tables not listed are replicated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 256))]
    pub tables: Vec<TableSpec>,

    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// The cluster's DNS domain, used in the members' certificate names.
    #[serde(default = "default_cluster_domain")]
    #[schemars(length(min = 1, max = 253), pattern(DOMAIN_PATTERN))]
    pub cluster_domain: String,
}

/// Ports used by every member. The four must differ.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.mesh != self.haproxy && self.mesh != self.sidecar && self.mesh != self.admin && self.haproxy != self.sidecar && self.haproxy != self.admin && self.sidecar != self.admin",
    "message": "ports.mesh, ports.haproxy, ports.sidecar and ports.admin must be four different ports"
}]))]
pub struct Ports {
    /// Sidecar-to-sidecar port on the pod IP (mutual TLS unless tls.enabled is false).
    #[serde(default = "default_mesh_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub mesh: u16,
    /// HAProxy's own peers listener on 127.0.0.1 (the `bind` line of peers.cfg).
    #[serde(default = "default_haproxy_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub haproxy: u16,
    /// The sidecar's listener on 127.0.0.1 that HAProxy calls.
    #[serde(default = "default_sidecar_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub sidecar: u16,
    /// The sidecar's admin HTTP port (/healthz, /readyz, /metrics, /peers, /tables).
    #[serde(default = "default_admin_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub admin: u16,
}

/// Mutual TLS between the sidecars and the lifetimes of the group's certificates. Durations
/// are numbers with units d, h, m, s ("30d", "720h", "1h30m").
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// When false the mesh is plain text and no certificates are issued.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Lifetime of each member's leaf certificate.
    #[serde(default = "default_leaf_lifetime")]
    #[schemars(length(max = DURATION_MAX_LEN), pattern(DURATION_PATTERN))]
    pub leaf_lifetime: String,
    /// A leaf is reissued this long before it expires. Must be shorter than leafLifetime.
    #[serde(default = "default_leaf_renew_before")]
    #[schemars(length(max = DURATION_MAX_LEN), pattern(DURATION_PATTERN))]
    pub leaf_renew_before: String,
    /// Lifetime of the group's CA.
    #[serde(default = "default_ca_lifetime")]
    #[schemars(length(max = DURATION_MAX_LEN), pattern(DURATION_PATTERN))]
    pub ca_lifetime: String,
    /// The CA is rotated this long before it expires. Must be shorter than caLifetime.
    #[serde(default = "default_ca_renew_before")]
    #[schemars(length(max = DURATION_MAX_LEN), pattern(DURATION_PATTERN))]
    pub ca_renew_before: String,
}

/// Replication policy of one stick table.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    /// The table's wire name: the proxy name for `stick-table` in a backend (`be_rate`), or
    /// `/<name>` for `table <name>` in a peers section.
    #[schemars(length(min = 1, max = 253), pattern(TABLE_NAME_PATTERN))]
    pub name: String,
    pub policy: TablePolicy,
}

/// What the sidecars do with a table.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TablePolicy {
    /// Last writer wins, as HAProxy's own peers do.
    Replicate,
    /// Not replicated.
    Ignore,
}

/// The NetworkPolicy `<name>-peers`: the mesh port accepts only pods of the group. Other ports
/// are listed as port ranges, which needs a CNI that supports `endPort` (Kubernetes 1.25+).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Also admit every other TCP and UDP port of the pods from anywhere, so that the policy
    /// (which isolates the pods it selects) does not cut HAProxy's own traffic. Set false when
    /// other NetworkPolicies, such as a namespace default-deny, already govern the pods' ports:
    /// this rule would open them.
    #[serde(default = "default_true")]
    pub allow_other_ports: bool,
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerGroupStatus {
    /// The pods selected, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub members: Vec<MemberStatus>,
    /// "<ready>/<members>", for `kubectl get hpg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_members: Option<String>,
    /// `Ready`, `CertificatesReady`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The earliest expiry among the members' leaf certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiry: Option<Time>,
    /// Expiry of the CA that signs the leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_expiry: Option<Time>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One member (pod) of the group.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The pod name, which is also its HAProxy peer name.
    pub name: String,
    /// The pod's IP, once it has one.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// The pod's Ready condition.
    pub ready: bool,
    /// When `ready` last changed (or the pod joined).
    pub since: Time,
}

impl Ports {
    /// The same ports in the sidecar contract's type (which also owns the port rules).
    pub fn to_contract(&self) -> haproxy_peers_members::Ports {
        haproxy_peers_members::Ports {
            mesh: self.mesh,
            haproxy: self.haproxy,
            sidecar: self.sidecar,
            admin: self.admin,
        }
    }
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            mesh: default_mesh_port(),
            haproxy: default_haproxy_port(),
            sidecar: default_sidecar_port(),
            admin: default_admin_port(),
        }
    }
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            leaf_lifetime: default_leaf_lifetime(),
            leaf_renew_before: default_leaf_renew_before(),
            ca_lifetime: default_ca_lifetime(),
            ca_renew_before: default_ca_renew_before(),
        }
    }
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_other_ports: true,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_mesh_port() -> u16 {
    10000
}
fn default_haproxy_port() -> u16 {
    10001
}
fn default_sidecar_port() -> u16 {
    10002
}
fn default_admin_port() -> u16 {
    9090
}
fn default_resync_timeout() -> String {
    "30s".into()
}
fn default_leaf_lifetime() -> String {
    "30d".into()
}
fn default_leaf_renew_before() -> String {
    "10d".into()
}
fn default_ca_lifetime() -> String {
    "365d".into()
}
fn default_ca_renew_before() -> String {
    "60d".into()
}
fn default_cluster_domain() -> String {
    "cluster.local".into()
}
