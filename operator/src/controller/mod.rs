//! The controller: kube-runtime glue around the pure render and certificate plan.
//!
//! * [`run`] — leader election, then the `Controller` (PeerGroups, the objects they own, the
//!   pods they select) until shutdown or lost leadership.
//! * [`reconcile`] — one PeerGroup: read -> plan -> mint -> render -> apply -> status -> events.
//! * [`rbac`] — every permission the above uses.

pub mod apply;
pub mod context;
pub mod election;
pub mod events;
pub mod leader;
pub mod observe;
pub mod rbac;
pub mod reconcile;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Controller, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Client;
use tracing::{debug, info, warn};

use crate::admin::AdminState;
use crate::api::PeerGroup;
use crate::error::Result;
use crate::render::members::selects;
use crate::render::names::MANAGER;
pub use context::{Clock, Context};
pub use election::LeaseConfig;
use leader::LeaderElector;
pub use reconcile::{error_policy, reconcile, reconcile_at, Outcome};

/// How the controller runs.
#[derive(Clone)]
pub struct Config {
    /// Watch only this namespace; `None`: every namespace.
    pub namespace: Option<String>,
    pub lease: LeaseConfig,
    /// The longest a group waits for its next reconcile.
    pub resync: Duration,
    pub clock: Clock,
}

/// Runs until `shutdown` resolves (`Ok`, after in-flight reconciles finished) or this replica
/// loses the leader Lease (`Err(Error::LeadershipLost)`: the caller should exit, so that
/// Kubernetes restarts it as a follower).
pub async fn run(
    client: Client,
    config: Config,
    admin: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let shutdown = shutdown.boxed().shared();
    let lease = &config.lease;
    let elector = LeaderElector::new(
        Api::namespaced(client.clone(), &lease.namespace),
        &lease.name,
        &lease.identity,
        lease.duration,
    );
    tokio::select! {
        () = election::acquire(&elector, lease, &config.clock, &admin) => {}
        () = shutdown.clone() => return Ok(()),
    }
    info!(identity = %lease.identity, lease = %lease.name, namespace = %lease.namespace,
        "leading: reconciling PeerGroups");
    admin.metrics.set_leader(true);
    admin.set_not_ready("leading: waiting for the first list of PeerGroups");
    let result = tokio::select! {
        () = control(client, &config, admin.clone(), shutdown) => Ok(()),
        lost = election::keep(&elector, lease, &config.clock) => Err(lost),
    };
    admin.metrics.set_leader(false);
    if result.is_ok() {
        // A graceful stop (rollout, drain): the reconciles have finished, so hand over now
        // rather than leave the groups unattended until the lease runs out.
        election::release(&elector, lease, &config.clock).await;
    }
    result
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The kube-runtime Controller, until `shutdown` resolves.
async fn control(
    client: Client,
    config: &Config,
    admin: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.as_deref();
    // Only what this operator created: the watches need not cache every Secret of the cluster.
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let controller = Controller::new(scoped::<PeerGroup>(&client, ns), watcher::Config::default());
    let store = controller.store();
    let groups = store.clone();
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            admin.metrics.clone(),
            config.clock.clone(),
            &config.lease.identity,
        )
        .with_resync(config.resync),
    );
    // Ready once the PeerGroup cache has synced: the applier reconciles only after that, so
    // the first reconcile result proves it; with no PeerGroup at all, a successful list does.
    // (Not `Store::wait_until_ready`: in kube-runtime 5.0 a second task waiting on it next to
    // the applier takes the applier's wakeup away, and one of the two never wakes.)
    match scoped::<PeerGroup>(&client, ns)
        .list(&ListParams::default().limit(1))
        .await
    {
        Ok(list) if list.items.is_empty() => admin.set_ready(),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot list PeerGroups; check that the PeerGroup CRD is \
            installed and that the operator may list PeerGroups"),
    }
    controller
        .owns(scoped::<ConfigMap>(&client, ns), owned.clone())
        .owns(scoped::<Secret>(&client, ns), owned.clone())
        .owns(scoped::<Service>(&client, ns), owned.clone())
        .owns(scoped::<NetworkPolicy>(&client, ns), owned)
        .watches(
            scoped::<Pod>(&client, ns),
            watcher::Config::default(),
            move |pod| groups_for_pod(&pod, &groups.state()),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            admin
                .metrics
                .observe_groups(store.state().iter().map(|g| g.as_ref()));
            match result {
                Ok((group, _)) => {
                    admin.set_ready();
                    debug!(%group, "reconcile done");
                }
                // Logged with its remedy by error_policy.
                Err(ControllerError::ReconcilerFailed(..)) => admin.set_ready(),
                // A deleted group's last trigger: nothing left to do.
                Err(ControllerError::ObjectNotFound(group)) => {
                    admin.set_ready();
                    debug!(%group, "group gone");
                }
                Err(e) => warn!(error = %e, "watch failed and is retried; check that the operator \
                    may list and watch PeerGroups, pods and the objects it owns"),
            }
            futures::future::ready(())
        })
        .await;
    info!("controller stopped");
}

/// Pure: the PeerGroups a pod event concerns: every group of the pod's namespace whose selector
/// matches the pod, or that lists it as a member (its labels changed, so it leaves).
pub fn groups_for_pod(pod: &Pod, groups: &[Arc<PeerGroup>]) -> Vec<ObjectRef<PeerGroup>> {
    let namespace = pod.metadata.namespace.as_deref();
    let name = pod.metadata.name.as_deref();
    groups
        .iter()
        .filter(|g| namespace.is_some() && g.metadata.namespace.as_deref() == namespace)
        .filter(|g| {
            let selected = g
                .spec
                .pod_selector()
                .is_ok_and(|selector| selects(&selector, pod));
            let listed = g
                .status
                .iter()
                .flat_map(|s| &s.members)
                .any(|m| Some(m.name.as_str()) == name);
            selected || listed
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}
