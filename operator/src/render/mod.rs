//! Render: the pure function from (PeerGroup, pods, other PeerGroups, certificates, now) to
//! every object the group owns, its status and the events to publish. No client, no clock, no
//! randomness: the same inputs give byte-identical objects.
//!
//! The reconciler's order is: [`member_identities`] -> certificate plan and mint -> [`render`]
//! -> apply [`Desired::objects`] -> patch [`Desired::status`] -> publish [`Desired::events`].

pub mod checks;
pub mod events;
pub mod members;
pub mod names;
pub mod objects;
pub mod peers_cfg;
pub mod status;

use std::time::SystemTime;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::api::{MemberStatus, PeerGroup, PeerGroupStatus};
use crate::certs::CertInventory;
use crate::error::Result;
pub use events::{EventSpec, EventType};
use names::GroupRef;

/// Everything render decided for one PeerGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The objects to apply, or `None` when the spec is invalid: then the objects already in the
    /// cluster stay as they are (a typo must not rewrite a working HAProxy config) and `status`
    /// says what to fix.
    pub objects: Option<Objects>,
    pub status: PeerGroupStatus,
    pub events: Vec<EventSpec>,
    /// The members and the DNS names their certificates need (the certificate planner's input).
    pub members: Vec<MemberIdentity>,
}

/// The owned objects. `None` means the object must not exist: the controller deletes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    /// `<group>-peers`: `peers.cfg` and `members.yaml`.
    pub config_map: ConfigMap,
    /// `<group>-peer-tls`: trust bundle and leaves; `None` when TLS is disabled.
    pub tls_secret: Option<Secret>,
    /// `<group>-ca`: the CA key; `None` when TLS is disabled.
    pub ca_secret: Option<Secret>,
    /// `<group>-peers`, headless.
    pub service: Service,
    /// `<group>-peers`; `None` when `spec.networkPolicy.enabled` is false.
    pub network_policy: Option<NetworkPolicy>,
}

/// A member and the DNS SANs its leaf certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberIdentity {
    pub name: String,
    pub dns_names: Vec<String>,
}

/// The group's members and their certificate names, sorted by name. While the selector is
/// unusable the members are unknown, not gone: the last ones in the status are returned, so
/// that no certificate is dropped because of a typo.
pub fn member_identities(pg: &PeerGroup, pods: &[Pod]) -> Result<Vec<MemberIdentity>> {
    let group = GroupRef::of(pg)?;
    let domain = &pg.spec.cluster_domain;
    Ok(match pg.spec.pod_selector() {
        Ok(selector) => identities(
            &group,
            domain,
            members::select(&selector, &group, pods)
                .into_iter()
                .map(members::pod_name),
        ),
        Err(_) => identities(
            &group,
            domain,
            last_members(pg).iter().map(|m| m.name.as_str()),
        ),
    })
}

fn identities<'a>(
    group: &GroupRef,
    domain: &str,
    names: impl Iterator<Item = &'a str>,
) -> Vec<MemberIdentity> {
    names
        .map(|name| MemberIdentity {
            name: name.to_string(),
            dns_names: group.member_dns_names(name, domain),
        })
        .collect()
}

fn last_members(pg: &PeerGroup) -> &[MemberStatus] {
    pg.status
        .as_ref()
        .map(|s| s.members.as_slice())
        .unwrap_or_default()
}

/// Renders a PeerGroup. `pods` may hold any pods (render selects the group's own), `others` any
/// PeerGroups (render uses those of the same namespace to find pods selected twice), `certs`
/// the group's certificates after planning and minting. `pg.status` is the previous status.
pub fn render(
    pg: &PeerGroup,
    pods: &[Pod],
    others: &[PeerGroup],
    certs: &CertInventory,
    now: SystemTime,
) -> Result<Desired> {
    let group = GroupRef::of(pg)?;
    let spec = &pg.spec;
    let previous = pg.status.as_ref();
    let generation = pg.metadata.generation;
    let now_time = status::time(now);

    let mut mistakes = checks::spec_mistakes(&group, spec);
    let spec_valid = mistakes.is_empty();
    let (selected, member_status) = match spec.pod_selector() {
        Ok(selector) => {
            let selected = members::select(&selector, &group, pods);
            mistakes.extend(checks::pod_mistakes(&group, &selector, &selected, others));
            let member_status = status::member_statuses(previous, &selected, &now_time);
            (selected, member_status)
        }
        // Without a usable selector the members are unknown, not gone: keep the last ones
        // (and announce no departures) until the spec is fixed.
        Err(_) => (Vec::new(), last_members(pg).to_vec()),
    };

    let certs_cond = status::certificates_condition(
        spec.tls.enabled,
        &group,
        &spec.cluster_domain,
        &member_status,
        certs,
        now,
    );
    let [ready, degraded] = status::group_conditions(&mistakes, &member_status, &certs_cond);
    let conditions = status::merge_conditions(
        previous
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        [ready, certs_cond, degraded],
        generation,
        &now_time,
    );
    let (certificate_expiry, ca_expiry) = if spec.tls.enabled {
        status::expiries(certs)
    } else {
        (None, None)
    };
    let ready_count = member_status.iter().filter(|m| m.ready).count();
    let new_status = PeerGroupStatus {
        ready_members: Some(format!("{ready_count}/{}", member_status.len())),
        members: member_status,
        conditions,
        certificate_expiry,
        ca_expiry,
        observed_generation: generation,
    };
    let events = events::events(
        &group,
        previous,
        &new_status.members,
        &new_status.conditions,
    );

    let objects = if spec_valid {
        Some(objects(pg, &group, &selected, certs)?)
    } else {
        None
    };
    let members = identities(
        &group,
        &spec.cluster_domain,
        new_status.members.iter().map(|m| m.name.as_str()),
    );
    Ok(Desired {
        objects,
        status: new_status,
        events,
        members,
    })
}

/// The owned objects of a group whose spec passed every check.
fn objects(
    pg: &PeerGroup,
    group: &GroupRef,
    selected: &[&Pod],
    certs: &CertInventory,
) -> Result<Objects> {
    let spec = &pg.spec;
    let section = spec.peers_section_or(&group.name);
    // Checked by spec_mistakes; the fallbacks are unreachable.
    let resync = spec.resync_timeout_seconds().unwrap_or_default();
    let contract = members::members_contract(
        group,
        spec,
        pg.metadata.generation.unwrap_or_default(),
        resync,
        selected,
    );
    contract.validate()?;
    let meta = |name: String| names::object_meta(pg, group, name);
    let config_map = objects::config_map(
        meta(group.config_map_name())?,
        peers_cfg::peers_cfg(group, section, &spec.ports),
        contract.to_yaml()?,
    );
    let (tls_secret, ca_secret) = if spec.tls.enabled {
        (
            Some(objects::secret(
                meta(group.tls_secret_name())?,
                certs.tls_secret_data(),
            )),
            Some(objects::secret(
                meta(group.ca_secret_name())?,
                certs.ca_secret_data(),
            )),
        )
    } else {
        (None, None)
    };
    let service = objects::headless_service(
        meta(group.service_name())?,
        spec.selector.match_labels.clone().unwrap_or_default(),
        spec.ports.mesh,
    );
    let network_policy = if spec.network_policy.enabled {
        Some(objects::network_policy(
            meta(group.network_policy_name())?,
            spec.selector.clone(),
            spec.ports.mesh,
            spec.network_policy.allow_other_ports,
        ))
    } else {
        None
    };
    Ok(Objects {
        config_map,
        tls_secret,
        ca_secret,
        service,
        network_policy,
    })
}
