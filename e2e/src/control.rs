//! The operator's part, without Kubernetes: a PeerGroup and the pods of its StatefulSet as the
//! API server would return them, and the same library calls the controller makes on every
//! reconcile (member identities -> certificate plan -> mint -> render), at a `now` the caller
//! chooses. The previous status and the certificates carry over from one reconcile to the next,
//! as they would through the API.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use haproxy_peers_operator::api::{PeerGroup, PeerGroupStatus};
use haproxy_peers_operator::certs::{self, CertInventory, CertPlan};
use haproxy_peers_operator::render::names::{GroupRef, MEMBERS_KEY, PEERS_CFG_KEY};
use haproxy_peers_operator::render::{self, Desired};
use k8s_openapi::api::core::v1::Pod;

use crate::error::{Error, Result};

/// Group `edge` in namespace `web`, as in the operator's examples.
pub const GROUP: &str = "edge";
pub const NAMESPACE: &str = "web";
/// The StatefulSet that owns the pods (its pods are `edge-0`, `edge-1`, …).
pub const STATEFUL_SET: &str = "edge";
const APP_LABEL: &str = "app.kubernetes.io/name";

/// What the PeerGroup asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOptions {
    pub tls: bool,
    /// `spec.resyncTimeout`, e.g. `5s`.
    pub resync_timeout: String,
    /// `spec.tables`: wire name and `replicate` / `ignore`.
    pub tables: Vec<(String, String)>,
    /// More `spec.tls` fields, e.g. `("caLifetime", "45d")`: certificate lifetimes short enough
    /// that a CA rotation fits between a past operator clock and the real one. Empty: the
    /// CRD's defaults.
    pub tls_policy: Vec<(String, String)>,
}

/// One pod as render sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ready: bool,
}

/// What a reconcile produced for the pods' volumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// ConfigMap `<group>-peers`: `peers.cfg` and `members.yaml`.
    pub config: BTreeMap<String, Vec<u8>>,
    /// Secret `<group>-peer-tls` (`None` when TLS is off).
    pub tls: Option<BTreeMap<String, Vec<u8>>>,
    /// The certificate plan that was carried out (`None` when TLS is off).
    pub plan: Option<CertPlan>,
    pub desired: Desired,
}

impl Rendered {
    pub fn peers_cfg(&self) -> String {
        text(&self.config, PEERS_CFG_KEY)
    }

    pub fn members_yaml(&self) -> String {
        text(&self.config, MEMBERS_KEY)
    }
}

fn text(files: &BTreeMap<String, Vec<u8>>, key: &str) -> String {
    files
        .get(key)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// The operator's state for one group.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    pg: PeerGroup,
    group: GroupRef,
    inventory: CertInventory,
}

impl ControlPlane {
    pub fn new(options: &GroupOptions) -> Result<ControlPlane> {
        let pg: PeerGroup = serde_yaml::from_str(&peer_group_yaml(options))
            .map_err(|e| Error::Render(format!("the e2e PeerGroup does not parse: {e}")))?;
        let group = GroupRef::of(&pg).map_err(|e| Error::Render(e.to_string()))?;
        Ok(ControlPlane {
            pg,
            group,
            inventory: CertInventory::default(),
        })
    }

    pub fn group(&self) -> &GroupRef {
        &self.group
    }

    pub fn peer_group(&self) -> &PeerGroup {
        &self.pg
    }

    pub fn status(&self) -> Option<&PeerGroupStatus> {
        self.pg.status.as_ref()
    }

    pub fn inventory(&self) -> &CertInventory {
        &self.inventory
    }

    /// The names `pod` is known by: the operator's certificate names, which the pods' hosts
    /// files map to its address (the stand-in for the headless Service's DNS records).
    pub fn dns_names(&self, pod: &str) -> Vec<String> {
        self.group
            .member_dns_names(pod, &self.pg.spec.cluster_domain)
    }

    /// One reconcile at `now`, as the controller does it; the status is kept for the next one.
    pub fn reconcile(&mut self, pods: &[PodInfo], now: SystemTime) -> Result<Rendered> {
        let pods: Vec<Pod> = pods.iter().map(pod).collect::<Result<_>>()?;
        let fail = |e: haproxy_peers_operator::Error| Error::Render(e.to_string());
        let plan = if self.pg.spec.tls.enabled {
            let policy = self.pg.spec.tls.cert_policy().map_err(|problems| {
                Error::Render(format!("the e2e PeerGroup's TLS policy: {problems:?}"))
            })?;
            let desired: BTreeMap<String, Vec<String>> = render::member_identities(&self.pg, &pods)
                .map_err(fail)?
                .into_iter()
                .map(|m| (m.name, m.dns_names))
                .collect();
            let plan = certs::plan(&self.inventory, &desired, &policy, now);
            if !plan.is_empty() {
                self.inventory = certs::mint(&self.inventory, &plan, &self.group.name)
                    .map_err(|e| Error::Render(e.to_string()))?;
            }
            Some(plan)
        } else {
            None
        };
        let desired = render::render(&self.pg, &pods, &[], &self.inventory, now).map_err(fail)?;
        let objects = desired.objects.clone().ok_or_else(|| {
            Error::Render(format!(
                "render refused the e2e PeerGroup; its status says: {:?}",
                desired.status.conditions
            ))
        })?;
        self.pg.status = Some(desired.status.clone());
        let config = objects
            .config_map
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        let tls = objects.tls_secret.map(|secret| {
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        });
        Ok(Rendered {
            config,
            tls,
            plan,
            desired,
        })
    }
}

/// The PeerGroup as the API server returns it after `kubectl apply` (defaults filled in by
/// serde, as the CRD's defaults would be).
fn peer_group_yaml(options: &GroupOptions) -> String {
    let tables: String = options
        .tables
        .iter()
        .map(|(name, policy)| format!("  - name: {name}\n    policy: {policy}\n"))
        .collect();
    let tables = if tables.is_empty() {
        String::new()
    } else {
        format!("  tables:\n{tables}")
    };
    let tls_policy: String = options
        .tls_policy
        .iter()
        .map(|(field, value)| format!("    {field}: {value}\n"))
        .collect();
    format!(
        "apiVersion: haproxy-peers.io/v1alpha1
kind: PeerGroup
metadata:
  name: {GROUP}
  namespace: {NAMESPACE}
  uid: 5e2e0000-0000-4000-8000-000000000001
  generation: 1
spec:
  selector:
    matchLabels:
      {APP_LABEL}: {STATEFUL_SET}
  tls:
    enabled: {tls}
{tls_policy}  resyncTimeout: {resync}
{tables}",
        tls = options.tls,
        resync = options.resync_timeout,
    )
}

/// A pod of StatefulSet `edge` (`serviceName: edge-peers`), as the API server returns it.
fn pod(info: &PodInfo) -> Result<Pod> {
    let group = GroupRef {
        namespace: NAMESPACE.into(),
        name: GROUP.into(),
    };
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": info.name,
            "namespace": NAMESPACE,
            "labels": {
                APP_LABEL: STATEFUL_SET,
                "statefulset.kubernetes.io/pod-name": info.name,
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": STATEFUL_SET,
                "uid": "5e2e0000-0000-4000-8000-0000000000aa",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "hostname": info.name,
            "subdomain": group.service_name(),
            "containers": [{"name": "haproxy", "image": "haproxy:2.6"}],
        },
        "status": {
            "podIP": info.ip.to_string(),
            "conditions": [{
                "type": "Ready",
                "status": if info.ready { "True" } else { "False" },
            }],
        },
    });
    serde_json::from_value(value).map_err(|e| Error::Render(format!("the e2e pod: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_peers_members::Members;
    use std::time::Duration;

    fn options() -> GroupOptions {
        GroupOptions {
            tls: true,
            resync_timeout: "5s".into(),
            tables: vec![("be_rate".into(), "replicate".into())],
            tls_policy: Vec::new(),
        }
    }

    fn pods(n: u8) -> Vec<PodInfo> {
        (0..n)
            .map(|i| PodInfo {
                name: format!("edge-{i}"),
                ip: Ipv4Addr::new(10, 213, 0, 10 + i),
                ready: true,
            })
            .collect()
    }

    #[test]
    fn renders_config_and_a_secret_for_every_pod() {
        let mut cp = ControlPlane::new(&options()).unwrap();
        let now = SystemTime::now();
        let r = cp.reconcile(&pods(3), now).unwrap();
        let members = Members::from_yaml(&r.members_yaml()).unwrap();
        let names: Vec<&str> = members.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["edge-0", "edge-1", "edge-2"]);
        assert_eq!(
            members.member("edge-1").unwrap().address,
            "edge-1.edge-peers.web.svc"
        );
        assert_eq!(members.resync_timeout_seconds, 5);
        assert!(r.peers_cfg().contains("peers edge\n"), "{}", r.peers_cfg());
        let tls = r.tls.as_ref().unwrap();
        let keys: Vec<&str> = tls.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ca.crt",
                "edge-0.crt",
                "edge-0.key",
                "edge-1.crt",
                "edge-1.key",
                "edge-2.crt",
                "edge-2.key"
            ]
        );
        assert!(!r.plan.as_ref().unwrap().is_empty());
        assert_eq!(cp.status().unwrap().ready_members.as_deref(), Some("3/3"));

        // A second reconcile at the same time changes nothing; one 25 days later renews the
        // leaves (30d lifetime, 10d renew-before) but keeps the CA.
        let again = cp.reconcile(&pods(3), now).unwrap();
        assert!(again.plan.as_ref().unwrap().is_empty());
        assert_eq!(again.tls, r.tls);
        let later = cp
            .reconcile(&pods(3), now + Duration::from_secs(25 * 86_400))
            .unwrap();
        let later_tls = later.tls.unwrap();
        assert_eq!(later_tls["ca.crt"], tls["ca.crt"]);
        assert_ne!(later_tls["edge-0.crt"], tls["edge-0.crt"]);
    }

    #[test]
    fn tls_policy_fields_reach_the_certificates() {
        let mut options = options();
        options.tls_policy = vec![
            ("caLifetime".into(), "45d".into()),
            ("caRenewBefore".into(), "20d".into()),
        ];
        let mut cp = ControlPlane::new(&options).unwrap();
        cp.reconcile(&pods(1), SystemTime::now()).unwrap();
        let ca = cp.inventory().signing().unwrap();
        // Minted with a minute of backdating (certs::NOT_BEFORE_BACKDATE).
        assert_eq!(
            ca.not_after.duration_since(ca.not_before).unwrap(),
            Duration::from_secs(45 * 86_400 + 60)
        );
    }

    #[test]
    fn scaling_down_drops_the_member_and_its_certificate() {
        let mut cp = ControlPlane::new(&options()).unwrap();
        let now = SystemTime::now();
        cp.reconcile(&pods(3), now).unwrap();
        let r = cp
            .reconcile(&pods(2), now + Duration::from_secs(60))
            .unwrap();
        let members = Members::from_yaml(&r.members_yaml()).unwrap();
        assert!(members.member("edge-2").is_none());
        assert!(!r.tls.unwrap().contains_key("edge-2.crt"));
    }
}
