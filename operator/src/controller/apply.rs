//! The write step: server-side apply of the rendered objects (field manager
//! [`MANAGER`], force), deletion of the ones render no longer wants, and the status patch.
//!
//! Nothing is written that would not change: an object is applied only when it lacks a field
//! render sets, or when what render wants changed since the last apply. The second case is told
//! by a digest of the rendered object kept in an annotation, because a field render stopped
//! setting (a departed member's certificate, a selector label) is still present in the stored
//! object and a field-by-field comparison could not see that it must go.

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::observe::{owned_by, Owned};
use crate::api::{PeerGroup, PeerGroupStatus};
use crate::error::{Error, Result};
use crate::render::names::{GroupRef, MANAGER};
use crate::render::Objects;

/// Annotation holding the SHA-256 of the object as rendered (before this annotation was added).
pub const DIGEST_ANNOTATION: &str = "haproxy-peers.io/rendered-digest";

/// Applies `desired` in the order the certificate planner relies on (`G-ca` before
/// `G-peer-tls`, so that a CA key is stored before anything it signed is published), then the
/// ConfigMap, Service and NetworkPolicy, then deletes what render returned as `None`. Returns a
/// line per write, for the log.
pub async fn apply_objects(
    client: &Client,
    pg: &PeerGroup,
    group: &GroupRef,
    owned: &Owned,
    desired: &Objects,
) -> Result<Vec<String>> {
    let w = Writer::new(client, pg, group)?;
    let mut wrote = Vec::new();
    if let Some(ca) = &desired.ca_secret {
        wrote.extend(w.ensure(owned.ca_secret.as_ref(), ca).await?);
    }
    if let Some(tls) = &desired.tls_secret {
        wrote.extend(w.ensure(owned.tls_secret.as_ref(), tls).await?);
    }
    wrote.extend(
        w.ensure(owned.config_map.as_ref(), &desired.config_map)
            .await?,
    );
    wrote.extend(w.ensure(owned.service.as_ref(), &desired.service).await?);
    if let Some(np) = &desired.network_policy {
        wrote.extend(w.ensure(owned.network_policy.as_ref(), np).await?);
    }
    // Removals last: pods get the new configuration before the old material goes.
    if desired.network_policy.is_none() {
        wrote.extend(w.remove(owned.network_policy.as_ref()).await?);
    }
    if desired.tls_secret.is_none() {
        wrote.extend(w.remove(owned.tls_secret.as_ref()).await?);
    }
    if desired.ca_secret.is_none() {
        wrote.extend(w.remove(owned.ca_secret.as_ref()).await?);
    }
    Ok(wrote)
}

/// Writes the status through the status subresource unless it is what is stored already.
/// Returns whether it wrote.
pub async fn patch_status(
    client: &Client,
    pg: &PeerGroup,
    group: &GroupRef,
    status: &PeerGroupStatus,
) -> Result<bool> {
    if pg.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let body = json!({
        "apiVersion": PeerGroup::api_version(&()),
        "kind": PeerGroup::kind(&()),
        "status": status,
    });
    Api::<PeerGroup>::namespaced(client.clone(), &group.namespace)
        .patch_status(
            &group.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(Error::kube(format!(
            "write the status of PeerGroup {}/{}",
            group.namespace, group.name
        )))?;
    Ok(true)
}

/// The objects render builds, and how to name them in messages.
trait OwnedKind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
{
    const KIND: &'static str;
}

impl OwnedKind for ConfigMap {
    const KIND: &'static str = "ConfigMap";
}
impl OwnedKind for Secret {
    const KIND: &'static str = "Secret";
}
impl OwnedKind for Service {
    const KIND: &'static str = "Service";
}
impl OwnedKind for NetworkPolicy {
    const KIND: &'static str = "NetworkPolicy";
}

struct Writer<'a> {
    client: &'a Client,
    group: &'a GroupRef,
    uid: String,
}

impl<'a> Writer<'a> {
    fn new(client: &'a Client, pg: &PeerGroup, group: &'a GroupRef) -> Result<Self> {
        let uid = pg.metadata.uid.clone().ok_or(Error::MissingMetadata {
            field: "metadata.uid",
        })?;
        Ok(Writer { client, group, uid })
    }

    fn api<K: OwnedKind>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.group.namespace)
    }

    fn describe<K: OwnedKind>(&self, name: &str) -> String {
        format!("{} {}/{name}", K::KIND, self.group.namespace)
    }

    /// Applies `desired` unless `existing` already is what render wants.
    async fn ensure<K: OwnedKind>(
        &self,
        existing: Option<&K>,
        desired: &K,
    ) -> Result<Option<String>> {
        let name = desired.meta().name.clone().unwrap_or_default();
        let what = self.describe::<K>(&name);
        let digest = digest(desired, &what)?;
        if let Some(existing) = existing {
            if !owned_by(existing.meta(), &self.uid) {
                return Err(Error::NotOwned {
                    kind: K::KIND,
                    namespace: self.group.namespace.clone(),
                    name,
                    group: self.group.name.clone(),
                });
            }
            if up_to_date(
                &to_json(existing, &what)?,
                &to_json(desired, &what)?,
                &digest,
            ) {
                return Ok(None);
            }
        }
        let mut object = desired.clone();
        object
            .meta_mut()
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DIGEST_ANNOTATION.to_string(), digest);
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(Error::kube(format!("apply {what}")))?;
        Ok(Some(format!("applied {what}")))
    }

    /// Deletes `existing` if it is the group's; an object of someone else's is left alone.
    async fn remove<K: OwnedKind>(&self, existing: Option<&K>) -> Result<Option<String>> {
        let Some(existing) = existing.filter(|e| owned_by(e.meta(), &self.uid)) else {
            return Ok(None);
        };
        let name = existing.meta().name.clone().unwrap_or_default();
        let what = self.describe::<K>(&name);
        let params = DeleteParams {
            // Exactly the object checked above, not one recreated under the name meanwhile.
            preconditions: Some(Preconditions {
                uid: existing.meta().uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api::<K>().delete(&name, &params).await {
            Ok(_) => Ok(Some(format!("deleted {what}"))),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(Error::kube(format!("delete {what}"))(e)),
        }
    }
}

fn to_json<K: Serialize>(object: &K, what: &str) -> Result<Value> {
    serde_json::to_value(object).map_err(|source| Error::Serialize {
        what: what.to_string(),
        source,
    })
}

/// SHA-256 (hex) of the object as rendered. Render's output serialises deterministically
/// (struct fields in order, maps sorted), so equal objects have equal digests.
fn digest<K: Serialize>(object: &K, what: &str) -> Result<String> {
    let bytes = serde_json::to_vec(object).map_err(|source| Error::Serialize {
        what: what.to_string(),
        source,
    })?;
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The stored object was applied from this very rendering, and still holds every field of it
/// (nobody changed a field render sets).
fn up_to_date(stored: &Value, desired: &Value, digest: &str) -> bool {
    stored["metadata"]["annotations"][DIGEST_ANNOTATION].as_str() == Some(digest)
        && covers(stored, desired)
}

/// Whether `have` holds every field of `want` with the same value. Objects may have more
/// fields (the API server adds defaults and metadata); lists must match item by item.
pub fn covers(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| covers(hv, wv))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        _ => have == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_allows_server_defaults_but_not_changed_values() {
        let want = json!({"spec": {"ports": [{"port": 1}], "clusterIP": "None"}});
        let have = json!({"spec": {"ports": [{"port": 1, "targetPort": 1}], "clusterIP": "None", "type": "ClusterIP"}});
        assert!(covers(&have, &want));
        let changed = json!({"spec": {"ports": [{"port": 2}], "clusterIP": "None"}});
        assert!(!covers(&changed, &want));
        let longer = json!({"spec": {"ports": [{"port": 1}, {"port": 3}], "clusterIP": "None"}});
        assert!(!covers(&longer, &want), "lists match item by item");
    }

    #[test]
    fn a_dropped_field_is_seen_through_the_digest() {
        let stored = json!({"metadata": {"annotations": {DIGEST_ANNOTATION: "old"}}, "data": {"a": "1", "b": "2"}});
        let desired = json!({"data": {"a": "1"}});
        assert!(covers(&stored, &desired), "field by field it looks fine");
        assert!(!up_to_date(&stored, &desired, "new"));
        assert!(up_to_date(&stored, &desired, "old"));
    }
}
