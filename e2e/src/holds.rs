//! What a node must hold *already*, while the traffic goes on: at least what the ledger had
//! acknowledged by some moment. Counters only grow (each key's writer writes ever-growing
//! values, request counts only add up) and a sticky session never changes server, so a node
//! that shows less than the ledger's certain value at that moment has lost something, whatever
//! was written since. [`crate::workload::assert_nothing_lost`] is the exact check once the
//! traffic has stopped; this is the check for the moments in between: a new pod's HAProxy at
//! its first Ready, the pods that remain once others drained.

use std::time::{Duration, Instant};

use haproxy_peers_testkit::show_table::TableDump;

use crate::error::Result;
use crate::fleet::Fleet;
use crate::ledger::{Fields, Ledger};
use crate::wait::poll;
use crate::workload::{read_tables, Workload};

/// Every way `node`'s tables hold less than `ledger` (as of `now`) acknowledged: a key below
/// the last value certainly written, a client's request count below what was certainly
/// answered, a session missing or on another server.
pub fn shortfalls(
    ledger: &Ledger,
    now: Instant,
    node: &str,
    counters: &TableDump,
    sticky: &TableDump,
    fields: &Fields,
) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ledger.keys() {
        let allowed = ledger.allowed(key);
        // The certain write is the oldest value allowed; with none, the key may be absent.
        let (false, Some(floor)) = (allowed.absent, allowed.values.last()) else {
            continue;
        };
        let shown = counters.entry(key).and_then(|e| e.u64(fields.gpc));
        if shown.is_none_or(|v| v < *floor) {
            problems.push(format!(
                "{node}: {key} {} = {shown:?}, must be at least {floor}",
                fields.gpc
            ));
        }
    }
    for client in ledger.clients() {
        let (low, _) = ledger.request_count_range(client);
        let shown = counters.entry(client).and_then(|e| e.u64(fields.count));
        if low > 0 && shown.is_none_or(|v| v < low) {
            problems.push(format!(
                "{node}: {client} {} = {shown:?}, must be at least {low}",
                fields.count
            ));
        }
    }
    for session in ledger.settled_sessions(now, Duration::ZERO) {
        let want = ledger.server_of(&session);
        let shown = sticky.entry(&session).and_then(|e| e.i64(fields.server));
        if shown != want {
            problems.push(format!(
                "{node}: session {session} {} = {shown:?}, must be {want:?}",
                fields.server
            ));
        }
    }
    problems
}

/// [`shortfalls`] of every pod in `pods`, read through their HAProxy's runtime API now.
pub fn fleet_shortfalls(
    fleet: &Fleet,
    ledger: &Ledger,
    now: Instant,
    pods: &[String],
) -> Result<Vec<String>> {
    Ok(read_tables(fleet, pods)?
        .into_iter()
        .flat_map(|(name, counters, sticky)| {
            shortfalls(
                ledger,
                now,
                &name,
                &counters,
                &sticky,
                &crate::ledger::FIELDS,
            )
        })
        .collect())
}

/// Waits until every pod in `pods` holds what `ledger` acknowledged; the error names every
/// shortfall left.
pub fn wait_held(fleet: &Fleet, ledger: &Ledger, pods: &[String], timeout: Duration) -> Result<()> {
    let now = Instant::now();
    let mut last = Vec::new();
    poll(
        &format!("{pods:?} to hold every acknowledged write"),
        timeout,
        || {
            last = fleet_shortfalls(fleet, ledger, now, pods)?;
            Ok(last.is_empty().then_some(()))
        },
    )
    .map_err(|e| crate::Error::Probe {
        netns: format!("{pods:?}"),
        detail: format!("{e}; shortfalls: {last:#?}"),
    })
}

/// A graceful exit of `leaving`, as a pod's termination is: their lanes stop (out of the
/// Service's endpoints, in-flight requests finished), then this waits until every other pod
/// holds what the traffic had acknowledged, theirs included. Returns the ledger as of the pause.
pub fn drain(
    fleet: &Fleet,
    workload: &Workload,
    leaving: &[&str],
    timeout: Duration,
) -> Result<Ledger> {
    for pod in leaving {
        workload.pause(pod);
    }
    let ledger = workload.ledger();
    let staying: Vec<String> = fleet
        .pod_names()
        .into_iter()
        .filter(|n| !leaving.contains(&n.as_str()))
        .collect();
    wait_held(fleet, &ledger, &staying, timeout)?;
    Ok(ledger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::FIELDS;
    use haproxy_peers_testkit::show_table::parse_show_table;

    fn dump(entries: &[(&str, &str)]) -> TableDump {
        let mut text = format!(
            "# table: t, type: string, size:100, used:{}\n",
            entries.len()
        );
        for (key, data) in entries {
            text.push_str(&format!("0x1: key={key} use=0 exp=1000 shard=0 {data}\n"));
        }
        parse_show_table(&text).unwrap()
    }

    #[test]
    fn a_node_must_hold_at_least_every_certain_write() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.wrote("k", 5, "edge-0", Some(t0));
        l.wrote("k", 6, "edge-0", None);
        l.wrote("maybe", 1, "edge-0", None);
        l.requested("c", "edge-0", t0, 10, 2);
        l.session("s", "edge-0", t0, Some(2));
        l.session("unanswered", "edge-0", t0, None);
        let empty = dump(&[]);
        let sticky = dump(&[("s", "server_id=2")]);
        let check = |counters: &TableDump, sticky: &TableDump| {
            shortfalls(&l, t0, "n", counters, sticky, &FIELDS)
        };
        // Later values are fine: the traffic went on.
        let ahead = dump(&[("k", "gpc0=9"), ("c", "gpc0=0 http_req_cnt=40")]);
        assert!(
            check(&ahead, &sticky).is_empty(),
            "{:?}",
            check(&ahead, &sticky)
        );
        let exact = dump(&[("k", "gpc0=5"), ("c", "gpc0=0 http_req_cnt=10")]);
        assert!(check(&exact, &sticky).is_empty());
        // Below the certain write, below the answered requests, a session lost or moved.
        let behind = dump(&[("k", "gpc0=4"), ("c", "gpc0=0 http_req_cnt=9")]);
        assert_eq!(
            check(&behind, &sticky).len(),
            2,
            "{:?}",
            check(&behind, &sticky)
        );
        let moved = dump(&[("s", "server_id=1")]);
        let problems = check(&exact, &moved);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("session s"), "{problems:?}");
        assert_eq!(
            check(&empty, &empty).len(),
            3,
            "{:?}",
            check(&empty, &empty)
        );
    }
}
