//! `members.yaml`: the one contract between the operator (which renders it into the group's
//! ConfigMap) and the sidecar (which watches the mounted file). Both binaries use this type, so
//! the format cannot drift between them. Bump [`FORMAT_VERSION`] on any incompatible change.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The format version this build writes and accepts.
pub const FORMAT_VERSION: u32 = 1;

/// File name of the contract inside the group's ConfigMap and the sidecar's config directory.
pub const FILE_NAME: &str = "members.yaml";

/// The peer name HAProxy knows its local sidecar by (the remote `server` line in peers.cfg).
/// It contains '_', which Kubernetes never allows in a pod name, so it cannot collide with a
/// member. The sidecar expects this name in HAProxy's hello and claims it when it calls HAProxy.
pub const SIDECAR_PEER_NAME: &str = "haproxy_peers_sidecar";

/// The environment variable that holds the pod name (downward API `metadata.name`) in the
/// HAProxy and sidecar containers. peers.cfg uses it as HAProxy's local peer name.
pub const POD_NAME_ENV: &str = "POD_NAME";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Members {
    /// Format version of this document ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The PeerGroup's name.
    pub group: String,
    /// The PeerGroup's namespace.
    pub namespace: String,
    /// `metadata.generation` of the PeerGroup this was rendered from.
    pub generation: i64,
    /// The HAProxy `peers` section name used in `peers.cfg`.
    pub peers_section: String,
    /// Mutual TLS between sidecars. When false the mesh is plain text.
    pub tls: bool,
    pub ports: Ports,
    /// How long a starting sidecar waits to learn the table from a remote member before it
    /// declares itself complete anyway (HAProxy has no such keyword; this one is ours).
    pub resync_timeout_seconds: u32,
    /// Per-table replication policy, by the table's HAProxy wire name. Tables not listed
    /// follow `defaultPolicy`.
    #[serde(default)]
    pub tables: Vec<TablePolicy>,
    #[serde(default)]
    pub default_policy: Policy,
    /// Every member of the group, sorted by name, the local pod included.
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    /// Sidecar <-> sidecar mesh port (TLS unless `tls: false`).
    pub mesh: u16,
    /// HAProxy's own peers listener on loopback (the local peer line in `peers.cfg`).
    pub haproxy: u16,
    /// The sidecar's loopback listener that HAProxy calls (the remote peer line in `peers.cfg`).
    pub sidecar: u16,
    /// The sidecar's admin HTTP port (`/healthz`, `/readyz`, `/metrics`, `/peers`, `/tables`).
    pub admin: u16,
}

/// One thing wrong with a set of ports: which one (`mesh`, `haproxy`, `sidecar`, `admin`) and
/// what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortProblem {
    pub field: &'static str,
    pub message: String,
}

impl Ports {
    /// Every problem at once: a zero port, or two roles sharing a port (the four listen on the
    /// same pod, so any overlap is a clash).
    pub fn problems(&self) -> Vec<PortProblem> {
        let ports = [
            ("mesh", self.mesh),
            ("haproxy", self.haproxy),
            ("sidecar", self.sidecar),
            ("admin", self.admin),
        ];
        let mut problems = Vec::new();
        for (i, (a, pa)) in ports.iter().enumerate() {
            if *pa == 0 {
                problems.push(PortProblem {
                    field: a,
                    message: "is 0: use a port from 1 to 65535".to_string(),
                });
            }
            for (b, pb) in ports.iter().skip(i + 1) {
                if pa == pb {
                    problems.push(PortProblem {
                        field: b,
                        message: format!(
                            "{pb} is also ports.{a}: give each of mesh, haproxy, sidecar and admin its own port"
                        ),
                    });
                }
            }
        }
        problems
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Peer name = pod name (stable with a StatefulSet).
    pub name: String,
    /// Stable DNS name through the headless Service, re-resolved at every dial.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TablePolicy {
    /// The table's wire name (`be` for a backend table, `/t1` for `table t1` in a peers section).
    pub name: String,
    pub policy: Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Policy {
    /// Last writer wins, as HAProxy's own peers do.
    #[default]
    Replicate,
    /// Not replicated by the sidecar.
    Ignore,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("members.yaml is not valid YAML for this format: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error(
        "members.yaml has format version {found}, this binary understands {FORMAT_VERSION}: \
         run an operator and sidecar of the same release"
    )]
    Version { found: u32 },
    #[error("members.yaml is invalid: {0}")]
    Invalid(String),
}

impl Members {
    /// Parses and validates a document.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let members: Members = serde_yaml::from_str(text)?;
        members.validate()?;
        Ok(members)
    }

    /// Serialises deterministically (members and tables sorted by name).
    pub fn to_yaml(&self) -> Result<String, Error> {
        let mut sorted = self.clone();
        sorted.members.sort_by(|a, b| a.name.cmp(&b.name));
        sorted.tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(serde_yaml::to_string(&sorted)?)
    }

    /// Checks what the type system cannot: version, names, uniqueness, ports.
    pub fn validate(&self) -> Result<(), Error> {
        if self.version != FORMAT_VERSION {
            return Err(Error::Version {
                found: self.version,
            });
        }
        let mut problems = Vec::new();
        if self.group.is_empty() {
            problems.push("group is empty".to_string());
        }
        if !is_peer_name(&self.peers_section) {
            problems.push(format!(
                "peersSection {:?} is not a name HAProxy accepts (letters, digits, '-', '_', '.', ':')",
                self.peers_section
            ));
        }
        let mut seen = BTreeSet::new();
        for m in &self.members {
            if !is_peer_name(&m.name) {
                problems.push(format!(
                    "member name {:?} is not a valid HAProxy peer name",
                    m.name
                ));
            }
            if m.address.is_empty() {
                problems.push(format!("member {:?} has an empty address", m.name));
            }
            if !seen.insert(m.name.as_str()) {
                problems.push(format!("member {:?} is listed twice", m.name));
            }
        }
        for p in self.ports.problems() {
            problems.push(format!("ports.{} {}", p.field, p.message));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(problems.join("; ")))
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The policy that applies to a table by its wire name.
    pub fn policy_for(&self, table: &str) -> Policy {
        self.tables
            .iter()
            .find(|t| t.name == table)
            .map_or(self.default_policy, |t| t.policy)
    }
}

/// HAProxy accepts peer and section names made of letters, digits, '-', '_', '.' and ':'.
pub fn is_peer_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../example-members.yaml");

    #[test]
    fn example_file_parses_and_round_trips() {
        let m = Members::from_yaml(EXAMPLE).expect("example is valid");
        assert_eq!(m.group, "edge");
        assert_eq!(m.members.len(), 3);
        assert_eq!(
            m.member("edge-1").map(|x| x.address.as_str()),
            Some("edge-1.edge-peers.web.svc")
        );
        assert_eq!(m.policy_for("/rate"), Policy::Replicate);
        assert_eq!(m.policy_for("scratch"), Policy::Ignore);
        let again = Members::from_yaml(&m.to_yaml().expect("serialise")).expect("reparse");
        assert_eq!(again, m);
        assert_eq!(
            m.to_yaml().expect("serialise"),
            EXAMPLE,
            "the checked-in example pins the wire format"
        );
    }

    #[test]
    fn rejects_other_versions_with_advice() {
        let text = EXAMPLE.replacen("version: 1", "version: 2", 1);
        let err = Members::from_yaml(&text).expect_err("version 2 must be refused");
        assert!(err.to_string().contains("same release"), "{err}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut m = Members::from_yaml(EXAMPLE).expect("example");
        m.members.push(m.members[0].clone());
        m.ports.admin = m.ports.mesh;
        m.peers_section = "bad name".into();
        let msg = m.validate().expect_err("invalid").to_string();
        assert!(msg.contains("listed twice"), "{msg}");
        assert!(
            msg.contains("ports.admin 10000 is also ports.mesh"),
            "{msg}"
        );
        assert!(msg.contains("peersSection"), "{msg}");
    }

    #[test]
    fn peer_names() {
        assert!(is_peer_name("edge-0"));
        assert!(is_peer_name("a.b:c_d"));
        assert!(!is_peer_name(""));
        assert!(!is_peer_name("${POD}"));
        assert!(!is_peer_name("a b"));
    }
}
