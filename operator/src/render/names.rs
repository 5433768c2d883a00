//! Every name the operator derives from a PeerGroup, in one place: object names, labels, owner
//! references, member addresses and certificate names. The controller, the certificate planner
//! and the e2e harness call these rather than formatting names themselves.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::api::PeerGroup;
use crate::error::Error;

/// Server-side apply field manager, and the value of `app.kubernetes.io/managed-by`.
pub const MANAGER: &str = "haproxy-peers-operator";
/// Label carrying the owning group's name on every object the operator creates.
pub const GROUP_LABEL: &str = "haproxy-peers.io/group";
pub use haproxy_peers_members::{POD_NAME_ENV, SIDECAR_PEER_NAME};
/// Where the ConfigMap `<group>-peers` is expected to be mounted in the HAProxy container.
pub const PEERS_CFG_MOUNT: &str = "/etc/haproxy-peers";
/// File names inside the ConfigMap.
pub const PEERS_CFG_KEY: &str = "peers.cfg";
pub const MEMBERS_KEY: &str = haproxy_peers_members::FILE_NAME;

/// The namespace and name a PeerGroup's objects are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub namespace: String,
    pub name: String,
}

impl GroupRef {
    /// Reads namespace and name; both are always set on an object read from the API.
    pub fn of(pg: &PeerGroup) -> Result<Self, Error> {
        let name = pg.metadata.name.clone().ok_or(Error::MissingMetadata {
            field: "metadata.name",
        })?;
        let namespace = pg
            .metadata
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata {
                field: "metadata.namespace",
            })?;
        Ok(Self { namespace, name })
    }

    /// The name of an object in the group's namespace; `None` for any other object.
    pub fn sibling_name<'a>(&self, meta: &'a ObjectMeta) -> Option<&'a str> {
        let name = meta.name.as_deref()?;
        (meta.namespace.as_deref() == Some(self.namespace.as_str())).then_some(name)
    }

    /// ConfigMap, headless Service and NetworkPolicy: `<group>-peers`.
    pub fn peers_name(&self) -> String {
        format!("{}-peers", self.name)
    }

    /// The headless Service; also the pods' `spec.subdomain` (StatefulSet `serviceName`).
    pub fn service_name(&self) -> String {
        self.peers_name()
    }

    pub fn config_map_name(&self) -> String {
        self.peers_name()
    }

    pub fn network_policy_name(&self) -> String {
        self.peers_name()
    }

    /// Secret with the trust bundle and every member's leaf: `<group>-peer-tls`.
    pub fn tls_secret_name(&self) -> String {
        format!("{}-peer-tls", self.name)
    }

    /// Secret with the CA key, read only by the operator: `<group>-ca`.
    pub fn ca_secret_name(&self) -> String {
        format!("{}-ca", self.name)
    }

    /// The address the sidecars dial: `<pod>.<group>-peers.<ns>.svc`, resolved through the
    /// headless Service (which publishes not-ready pods too).
    pub fn member_address(&self, pod: &str) -> String {
        format!("{pod}.{}.{}.svc", self.service_name(), self.namespace)
    }

    /// The DNS SANs of a member's leaf certificate, most specific last. The bare pod name is
    /// the peer name a sidecar claims in its hello, so the verifier can match it directly.
    pub fn member_dns_names(&self, pod: &str, cluster_domain: &str) -> Vec<String> {
        let svc = self.service_name();
        let ns = &self.namespace;
        vec![
            pod.to_string(),
            format!("{pod}.{svc}"),
            format!("{pod}.{svc}.{ns}.svc"),
            format!("{pod}.{svc}.{ns}.svc.{cluster_domain}"),
        ]
    }
}

/// Labels on every object the operator creates for a group.
pub fn labels(group: &GroupRef) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "haproxy-peers".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), group.name.clone()),
        (
            "app.kubernetes.io/component".to_string(),
            "peer-group".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
        (GROUP_LABEL.to_string(), group.name.clone()),
    ])
}

/// The selector that finds every object owned by a group (for orphan cleanup).
pub fn owned_selector(group: &GroupRef) -> String {
    format!(
        "app.kubernetes.io/managed-by={MANAGER},{GROUP_LABEL}={}",
        group.name
    )
}

/// `controller: true` owner reference to the PeerGroup, so that deleting it deletes everything.
pub fn owner_reference(pg: &PeerGroup) -> Result<OwnerReference, Error> {
    let uid = pg.metadata.uid.clone().ok_or(Error::MissingMetadata {
        field: "metadata.uid",
    })?;
    let name = pg.metadata.name.clone().ok_or(Error::MissingMetadata {
        field: "metadata.name",
    })?;
    Ok(OwnerReference {
        api_version: PeerGroup::api_version(&()).into_owned(),
        kind: PeerGroup::kind(&()).into_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Metadata of an object named `name` owned by the group.
pub fn object_meta(pg: &PeerGroup, group: &GroupRef, name: String) -> Result<ObjectMeta, Error> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(group.namespace.clone()),
        labels: Some(labels(group)),
        owner_references: Some(vec![owner_reference(pg)?]),
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let g = GroupRef {
            namespace: "web".into(),
            name: "edge".into(),
        };
        assert_eq!(g.config_map_name(), "edge-peers");
        assert_eq!(g.tls_secret_name(), "edge-peer-tls");
        assert_eq!(g.ca_secret_name(), "edge-ca");
        assert_eq!(g.member_address("edge-1"), "edge-1.edge-peers.web.svc");
        assert_eq!(
            g.member_dns_names("edge-1", "cluster.local"),
            [
                "edge-1",
                "edge-1.edge-peers",
                "edge-1.edge-peers.web.svc",
                "edge-1.edge-peers.web.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn sidecar_peer_name_is_valid_for_haproxy_but_never_a_pod_name() {
        assert!(haproxy_peers_members::is_peer_name(SIDECAR_PEER_NAME));
        // Pod names are DNS subdomains: lowercase letters, digits, '-' and '.'.
        assert!(SIDECAR_PEER_NAME
            .bytes()
            .any(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')));
    }
}
