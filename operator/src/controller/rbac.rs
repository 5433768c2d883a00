//! Every Kubernetes permission the operator uses, in one list. The Helm chart's RBAC is checked
//! against it, and a test runs the controller against the in-memory API and checks that every
//! request it made is covered here and that every permission here was used.

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In every namespace the operator watches (a ClusterRole, or a Role per namespace with
    /// `--namespace`).
    Watched,
    /// Only in the operator's own namespace, where its leader Lease lives (a Role).
    OperatorNamespace,
}

/// One RBAC rule: an API group (`""` for the core group), a resource (with `/subresource`), the
/// verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
}

const fn rule(
    api_group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
) -> Rule {
    Rule {
        api_group,
        resource,
        verbs,
        scope: Scope::Watched,
    }
}

/// The operator's permissions. Server-side apply that creates an object is authorised as
/// `create` as well as `patch`, hence both for every kind the operator applies.
pub const RULES: &[Rule] = &[
    // The watch cache, and the fresh read at the start of every reconcile.
    rule("haproxy-peers.io", "peergroups", &["get", "list", "watch"]),
    rule("haproxy-peers.io", "peergroups/status", &["patch"]),
    // The pods a group selects: watched to requeue their group, listed by each reconcile.
    rule("", "pods", &["list", "watch"]),
    // Owned objects: watched (by label) to repair changes, read and applied by each reconcile.
    rule(
        "",
        "configmaps",
        &["get", "list", "watch", "create", "patch"],
    ),
    rule("", "services", &["get", "list", "watch", "create", "patch"]),
    // Secrets and NetworkPolicies are also deleted: TLS or the policy switched off.
    rule(
        "",
        "secrets",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    rule(
        "networking.k8s.io",
        "networkpolicies",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    rule("events.k8s.io", "events", &["create"]),
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        scope: Scope::OperatorNamespace,
    },
];

/// Whether [`RULES`] allow `verb` on `resource` of `api_group`.
pub fn allows(api_group: &str, resource: &str, verb: &str) -> bool {
    RULES
        .iter()
        .any(|r| r.api_group == api_group && r.resource == resource && r.verbs.contains(&verb))
}
