//! Builders of the objects a group owns: ConfigMap, Secrets, headless Service, NetworkPolicy.
//! Maps are BTreeMaps and lists are built in a fixed order, so equal inputs serialise to equal
//! bytes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;

use super::names::{MEMBERS_KEY, PEERS_CFG_KEY};

/// Name of the mesh port in the Service.
pub const MESH_PORT_NAME: &str = "mesh";

/// ConfigMap `<group>-peers`: `peers.cfg` for HAProxy and `members.yaml` for the sidecar.
pub fn config_map(meta: ObjectMeta, peers_cfg: String, members_yaml: String) -> ConfigMap {
    ConfigMap {
        metadata: meta,
        data: Some(BTreeMap::from([
            (MEMBERS_KEY.to_string(), members_yaml),
            (PEERS_CFG_KEY.to_string(), peers_cfg),
        ])),
        ..ConfigMap::default()
    }
}

/// An Opaque Secret with the given text entries (`data`, not `stringData`, so that what is
/// applied is what is read back).
pub fn secret(meta: ObjectMeta, entries: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(
            entries
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The headless Service `<group>-peers`. Pod DNS names `<pod>.<group>-peers.<ns>.svc` exist
/// only for pods whose `spec.subdomain` is this Service's name (a StatefulSet's `serviceName`).
/// Not-ready pods are published too: a pod becomes Ready only after its peers taught it.
pub fn headless_service(
    meta: ObjectMeta,
    selector: BTreeMap<String, String>,
    mesh_port: u16,
) -> Service {
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(MESH_PORT_NAME.into()),
                protocol: Some("TCP".into()),
                port: i32::from(mesh_port),
                target_port: Some(IntOrString::Int(i32::from(mesh_port))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// NetworkPolicy `<group>-peers`: the mesh port admits only pods of the group.
///
/// A NetworkPolicy that selects a pod isolates it for every port, so with `allow_other_ports`
/// the policy also admits every other TCP and UDP port from anywhere (as port ranges: needs a
/// CNI that supports `endPort`), leaving HAProxy's own traffic as it was. Where other policies
/// already govern the pods (e.g. a namespace default-deny), that rule would open their ports,
/// hence the switch.
pub fn network_policy(
    meta: ObjectMeta,
    pods: LabelSelector,
    mesh_port: u16,
    allow_other_ports: bool,
) -> NetworkPolicy {
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(pods.clone()),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port_range("TCP", mesh_port, mesh_port)]),
    }];
    if allow_other_ports {
        let mut ports = Vec::new();
        if mesh_port > 1 {
            ports.push(port_range("TCP", 1, mesh_port - 1));
        }
        if mesh_port < u16::MAX {
            ports.push(port_range("TCP", mesh_port + 1, u16::MAX));
        }
        ports.push(port_range("UDP", 1, u16::MAX));
        ingress.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(ports),
        });
    }
    NetworkPolicy {
        metadata: meta,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
    }
}

fn port_range(protocol: &str, from: u16, to: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(i32::from(from))),
        end_port: (to != from).then_some(i32::from(to)),
    }
}
