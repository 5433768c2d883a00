//! The read step: everything a reconcile decides from, fetched fresh from the API server (not
//! from a watch cache, which may not show the status this operator wrote a moment ago).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::Client;

use crate::api::PeerGroup;
use crate::certs::{CertInventory, ParsedInventory, SecretData};
use crate::error::{Error, Result};
use crate::render::names::GroupRef;

/// The objects a group owns, as they are now (`None`: absent).
#[derive(Debug, Clone, Default)]
pub struct Owned {
    pub config_map: Option<ConfigMap>,
    pub tls_secret: Option<Secret>,
    pub ca_secret: Option<Secret>,
    pub service: Option<Service>,
    pub network_policy: Option<NetworkPolicy>,
}

/// What one reconcile reads besides the PeerGroup itself.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Pods of the namespace that carry the selector's `matchLabels` (render applies the rest).
    pub pods: Vec<Pod>,
    /// Every PeerGroup of the namespace, this one included (render skips it).
    pub others: Vec<PeerGroup>,
    pub owned: Owned,
}

/// The PeerGroup as stored now; `None` once it is deleted.
pub async fn peer_group(client: &Client, group: &GroupRef) -> Result<Option<PeerGroup>> {
    Api::<PeerGroup>::namespaced(client.clone(), &group.namespace)
        .get_opt(&group.name)
        .await
        .map_err(Error::kube(format!(
            "read PeerGroup {}/{}",
            group.namespace, group.name
        )))
}

pub async fn observe(client: &Client, pg: &PeerGroup, group: &GroupRef) -> Result<Observed> {
    let ns = &group.namespace;
    let pods = match match_labels(pg) {
        // Without matchLabels the spec is invalid and render selects nobody.
        None => Vec::new(),
        Some(selector) => {
            Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(Error::kube(format!(
                    "list pods in namespace {ns} with labels {selector}"
                )))?
                .items
        }
    };
    let others = Api::<PeerGroup>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(Error::kube(format!("list PeerGroups in namespace {ns}")))?
        .items;
    let owned = Owned {
        config_map: get(client, ns, &group.config_map_name(), "ConfigMap").await?,
        tls_secret: get(client, ns, &group.tls_secret_name(), "Secret").await?,
        ca_secret: get(client, ns, &group.ca_secret_name(), "Secret").await?,
        service: get(client, ns, &group.service_name(), "Service").await?,
        network_policy: get(client, ns, &group.network_policy_name(), "NetworkPolicy").await?,
    };
    Ok(Observed {
        pods,
        others,
        owned,
    })
}

async fn get<K>(client: &Client, ns: &str, name: &str, kind: &str) -> Result<Option<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("read {kind} {ns}/{name}")))
}

/// `k=v,k2=v2` of the selector's matchLabels, or `None` when there are none.
pub fn match_labels(pg: &PeerGroup) -> Option<String> {
    let labels = pg.spec.selector.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Whether an object names the PeerGroup with this uid among its owners.
pub fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

impl Owned {
    /// The certificate inventory from the two Secrets. A Secret that exists but is not the
    /// group's is left out: its keys must never sign or be trusted (apply then refuses it).
    pub fn inventory(&self, group: &GroupRef, uid: &str) -> ParsedInventory {
        let tls_name = group.tls_secret_name();
        let ca_name = group.ca_secret_name();
        let tls = secret_bytes(self.tls_secret.as_ref(), uid);
        let ca = secret_bytes(self.ca_secret.as_ref(), uid);
        CertInventory::from_secrets(
            tls.as_ref().map(|d| SecretData::new(&tls_name, d)),
            ca.as_ref().map(|d| SecretData::new(&ca_name, d)),
        )
    }
}

fn secret_bytes<'a>(secret: Option<&'a Secret>, uid: &str) -> Option<BTreeMap<String, &'a [u8]>> {
    let secret = secret.filter(|s| owned_by(&s.metadata, uid))?;
    Some(
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.as_slice()))
            .collect(),
    )
}
