//! What the fleet must hold after a scenario: every write the traffic made, and what each node's
//! tables may show for it. Pure: the workload records facts (a write acknowledged at an instant,
//! a batch of requests answered, a HAProxy killed at an instant) and [`Ledger::check`] compares
//! one node's `show table` against them.
//!
//! What "nothing lost" means here, precisely:
//! * a `set table … data.gpc0 <v>` that HAProxy acknowledged must be what every node shows for
//!   that key, unless a later write of the same key exists (each key is written through one pod
//!   only, so "later" is well defined);
//! * a write whose outcome the client never learned (the connection broke) may or may not have
//!   happened: either value is accepted;
//! * a HAProxy killed with `SIGKILL` loses what it acknowledged but had not yet pushed to its
//!   sidecar. HAProxy pushes an update within microseconds, so a write acknowledged by a pod more
//!   than [`CRASH_GRACE`] before that pod's HAProxy was killed must survive; one acknowledged
//!   within the grace may be lost. The same holds for requests counted by `http_req_cnt` and for
//!   sticky sessions created by such requests;
//! * a reloaded HAProxy's new worker serves at once but holds the table only once its old
//!   worker's hand-over or its sidecar's lesson reached it; what it counted before that is
//!   overwritten by the lesson (as with native peers, whose hand-over does the same). Requests a
//!   pod answered from the reload signal until [`RELOAD_GRACE`] after its new worker served may
//!   therefore be missing from `http_req_cnt`; nothing else is forgiven (no entry lost, no
//!   counter reset). A new sticky session whose first requests straddle the hand-over may be
//!   answered by both servers then;
//! * `http_req_cnt` of a client (each client sends through one pod) is the number of answered
//!   requests, minus those answered within the grace of a kill or a reload, plus those that got
//!   no answer (HAProxy may have counted them);
//! * a sticky session keeps the server it was first given, on every node;
//! * rates are compared across nodes by the caller ([`rates_agree`]): after convergence every node
//!   shows the rate of the node that counted, within [`RATE_TOLERANCE`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::show_table::TableDump;

/// A write acknowledged by a HAProxy this long before it was `SIGKILL`ed must survive.
pub const CRASH_GRACE: Duration = Duration::from_millis(50);

/// Requests answered this long after a reloaded HAProxy's new worker served may be missing
/// from its counters: the time until its sidecar's lesson is confirmed (100–800 ms measured).
pub const RELOAD_GRACE: Duration = Duration::from_secs(1);

/// Two nodes' `http_req_rate` of one client may differ by this much (or 5 %, whichever is
/// larger): both hold the same counter, read a few milliseconds apart while it decays.
pub const RATE_TOLERANCE: u64 = 2;

/// One attempted write of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Write {
    value: u64,
    pod: String,
    /// When HAProxy acknowledged it; `None` when the outcome is unknown.
    acked_at: Option<Instant>,
}

/// Requests of one batch, sent through one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    pod: String,
    at: Instant,
    answered: u64,
    unanswered: u64,
}

/// A sticky session and the server it got.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    pod: String,
    at: Instant,
    server_id: Option<i64>,
}

/// Everything the traffic did, and every broken promise it saw on the way.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    keys: BTreeMap<String, Vec<Write>>,
    clients: BTreeMap<String, Vec<Batch>>,
    sessions: BTreeMap<String, Session>,
    /// Pod, when the kill was sent, when the process was gone.
    crashes: Vec<(String, Instant, Instant)>,
    /// Pod, when the reload signal was sent, when the new worker served.
    reloads: Vec<(String, Instant, Instant)>,
    /// Broken promises seen while the traffic ran (a session that changed server).
    violations: Vec<String>,
    /// Sessions whose first batch was answered by two servers: pod, when, what.
    splits: Vec<(String, Instant, String)>,
}

/// What a node may show for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub values: Vec<u64>,
    pub absent: bool,
}

impl Allowed {
    fn admits(&self, shown: Option<u64>) -> bool {
        match shown {
            Some(v) => self.values.contains(&v),
            None => self.absent,
        }
    }
}

impl Ledger {
    /// A `set table` of `key` to `value` through `pod`: acknowledged at `acked_at`, or with an
    /// unknown outcome (`None`).
    pub fn wrote(&mut self, key: &str, value: u64, pod: &str, acked_at: Option<Instant>) {
        self.keys.entry(key.to_string()).or_default().push(Write {
            value,
            pod: pod.to_string(),
            acked_at,
        });
    }

    /// A batch of requests of `client` through `pod`, finished at `at`.
    pub fn requested(
        &mut self,
        client: &str,
        pod: &str,
        at: Instant,
        answered: u64,
        unanswered: u64,
    ) {
        self.clients
            .entry(client.to_string())
            .or_default()
            .push(Batch {
                pod: pod.to_string(),
                at,
                answered,
                unanswered,
            });
    }

    /// A session's first answer through `pod` at `at` came from `server_id` (`None`: no answer).
    pub fn session(&mut self, session: &str, pod: &str, at: Instant, server_id: Option<i64>) {
        self.sessions.insert(
            session.to_string(),
            Session {
                pod: pod.to_string(),
                at,
                server_id,
            },
        );
    }

    /// The server a known session has, if its first answer came (for a revisit).
    pub fn server_of(&self, session: &str) -> Option<i64> {
        self.sessions.get(session).and_then(|s| s.server_id)
    }

    /// Sessions whose server every node must know by now: answered at least `age` ago.
    pub fn settled_sessions(&self, now: Instant, age: Duration) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.server_id.is_some() && now.duration_since(s.at) >= age)
            .filter(|(_, s)| !self.in_crash_window(&s.pod, s.at))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A revisit of a session was answered by another server than the one it had.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// A new session's first batch through `pod`, finished at `at`, was answered by more than
    /// one server. Only a reload may do that: a request answered by the old worker after it
    /// handed its table over, the next by the new worker.
    pub fn split(&mut self, pod: &str, at: Instant, what: String) {
        self.splits.push((pod.to_string(), at, what));
    }

    /// Every broken promise: revisits on another server, and splits outside a reload.
    pub fn violations(&self) -> Vec<String> {
        let splits = self
            .splits
            .iter()
            .filter(|(pod, at, _)| !self.in_reload_window(pod, *at))
            .map(|(_, _, what)| what.clone());
        self.violations.iter().cloned().chain(splits).collect()
    }

    /// `pod`'s HAProxy was killed (`SIGKILL`): the signal went at `from`, the process was gone
    /// at `to`.
    pub fn crashed(&mut self, pod: &str, from: Instant, to: Instant) {
        self.crashes.push((pod.to_string(), from, to));
    }

    /// `pod`'s HAProxy was reloaded: the signal went at `from`, its new worker served at `to`.
    pub fn reloaded(&mut self, pod: &str, from: Instant, to: Instant) {
        self.reloads.push((pod.to_string(), from, to));
    }

    /// Answered by `pod` while one of its reloads was under way.
    fn in_reload_window(&self, pod: &str, at: Instant) -> bool {
        self.reloads
            .iter()
            .any(|(p, from, to)| p == pod && at >= *from && at <= *to + RELOAD_GRACE)
    }

    /// Acknowledged by `pod` within [`CRASH_GRACE`] before one of its crashes, or while it died.
    fn in_crash_window(&self, pod: &str, at: Instant) -> bool {
        self.crashes.iter().any(|(p, from, to)| {
            p == pod && at <= *to && (at >= *from || from.duration_since(at) <= CRASH_GRACE)
        })
    }

    /// What a node may show for `key`: the last write that must have survived, and every write
    /// after it (unknown outcome, or within a crash's grace).
    pub fn allowed(&self, key: &str) -> Allowed {
        let mut allowed = Allowed {
            values: Vec::new(),
            absent: true,
        };
        for w in self.keys.get(key).into_iter().flatten().rev() {
            allowed.values.push(w.value);
            let certain = w
                .acked_at
                .is_some_and(|at| !self.in_crash_window(&w.pod, at));
            if certain {
                allowed.absent = false;
                break;
            }
        }
        allowed
    }

    /// The range `http_req_cnt` of `client` may show.
    pub fn request_count_range(&self, client: &str) -> (u64, u64) {
        let (mut low, mut high) = (0u64, 0u64);
        for b in self.clients.get(client).into_iter().flatten() {
            high += b.answered + b.unanswered;
            if !self.in_crash_window(&b.pod, b.at) && !self.in_reload_window(&b.pod, b.at) {
                low += b.answered;
            }
        }
        (low, high)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// Acknowledged writes, answered requests and answered sessions so far.
    pub fn totals(&self) -> Totals {
        Totals {
            acked_writes: self
                .keys
                .values()
                .flatten()
                .filter(|w| w.acked_at.is_some())
                .count() as u64,
            answered_requests: self.clients.values().flatten().map(|b| b.answered).sum(),
            sessions: self
                .sessions
                .values()
                .filter(|s| s.server_id.is_some())
                .count() as u64,
        }
    }

    /// Acknowledged writes through `pod` since `since`.
    pub fn acked_since(&self, pod: &str, since: Instant) -> u64 {
        self.keys
            .values()
            .flatten()
            .filter(|w| w.pod == pod && w.acked_at.is_some_and(|at| at >= since))
            .count() as u64
    }

    /// Every way `node`'s tables differ from what they must hold (empty: nothing lost).
    pub fn check(
        &self,
        node: &str,
        counters: &TableDump,
        sticky: &TableDump,
        fields: &Fields,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for key in self.keys.keys() {
            let allowed = self.allowed(key);
            let shown = counters.entry(key).map(|e| e.u64(fields.gpc));
            let shown = match shown {
                Some(None) => {
                    problems.push(format!("{node}: {key} has no {}", fields.gpc));
                    continue;
                }
                Some(Some(v)) => Some(v),
                None => None,
            };
            if !allowed.admits(shown) {
                problems.push(format!(
                    "{node}: {key} {} = {shown:?}, must be one of {:?}{}",
                    fields.gpc,
                    allowed.values,
                    if allowed.absent { " or absent" } else { "" }
                ));
            }
        }
        for client in self.clients.keys() {
            let (low, high) = self.request_count_range(client);
            let shown = counters.entry(client).and_then(|e| e.u64(fields.count));
            let ok = match shown {
                Some(v) => (low..=high).contains(&v),
                None => low == 0,
            };
            if !ok {
                problems.push(format!(
                    "{node}: {client} {} = {shown:?}, must be within {low}..={high}",
                    fields.count
                ));
            }
        }
        for (name, s) in &self.sessions {
            let Some(want) = s.server_id else { continue };
            let shown = sticky.entry(name).and_then(|e| e.i64(fields.server));
            let may_be_absent = self.in_crash_window(&s.pod, s.at);
            if shown != Some(want) && !(shown.is_none() && may_be_absent) {
                problems.push(format!(
                    "{node}: session {name} {} = {shown:?}, must be {want}",
                    fields.server
                ));
            }
        }
        problems
    }
}

/// Acknowledged writes, answered requests, answered sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub acked_writes: u64,
    pub answered_requests: u64,
    pub sessions: u64,
}

/// The data types [`Ledger::check`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The counter written through `set table`.
    pub gpc: &'static str,
    /// The request counter of a client.
    pub count: &'static str,
    /// The server of a sticky session.
    pub server: &'static str,
    /// The request rate of a client.
    pub rate: &'static str,
}

/// The fields of the e2e pods' tables.
pub const FIELDS: Fields = Fields {
    gpc: "gpc0",
    count: "http_req_cnt",
    server: "server_id",
    rate: "http_req_rate",
};

/// Whether the rate of every client is the same on every node, within [`RATE_TOLERANCE`] or
/// 5 %: `dumps` are the nodes' rate tables, read one right after the other.
pub fn rates_agree<'a>(
    clients: impl IntoIterator<Item = &'a str>,
    dumps: &[(String, TableDump)],
    field: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for client in clients {
        let shown: Vec<(&str, Option<u64>)> = dumps
            .iter()
            .map(|(node, d)| (node.as_str(), d.entry(client).and_then(|e| e.u64(field))))
            .collect();
        let values: Vec<u64> = shown.iter().filter_map(|(_, v)| *v).collect();
        let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
            continue;
        };
        let tolerance = RATE_TOLERANCE.max(max / 20);
        if values.len() != shown.len() || max - min > tolerance {
            problems.push(format!(
                "{client} {field} differs between nodes by more than {tolerance}: {shown:?}"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_peers_testkit::show_table::parse_show_table;

    fn dump(lines: &[&str]) -> TableDump {
        let mut text = "# table: be_rate, type: string, size:100, used:1\n".to_string();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        parse_show_table(&text).unwrap()
    }

    fn entry(key: &str, data: &str) -> String {
        format!("0x1: key={key} use=0 exp=1000 shard=0 {data}")
    }

    #[test]
    fn the_last_acknowledged_write_must_be_shown_and_nothing_else() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.wrote("k", 1, "edge-0", Some(t0));
        l.wrote("k", 2, "edge-0", Some(t0));
        assert_eq!(
            l.allowed("k"),
            Allowed {
                values: vec![2],
                absent: false
            }
        );
        let empty = dump(&[]);
        let ok = dump(&[&entry("k", "gpc0=2")]);
        let old = dump(&[&entry("k", "gpc0=1")]);
        assert!(l.check("n", &ok, &empty, &FIELDS).is_empty());
        assert_eq!(l.check("n", &old, &empty, &FIELDS).len(), 1);
        let lost = l.check("n", &empty, &empty, &FIELDS);
        assert!(lost[0].contains("k gpc0 = None"), "{lost:?}");
        // An unknown outcome widens the choice to both values.
        l.wrote("k", 3, "edge-0", None);
        assert_eq!(l.allowed("k").values, vec![3, 2]);
        assert!(l.check("n", &ok, &empty, &FIELDS).is_empty());
    }

    #[test]
    fn a_crash_forgives_only_what_was_acknowledged_just_before_it() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.wrote("k", 1, "edge-0", Some(t0));
        l.wrote("k", 2, "edge-0", Some(t0 + Duration::from_millis(990)));
        l.wrote("j", 7, "edge-1", Some(t0 + Duration::from_millis(990)));
        l.crashed(
            "edge-0",
            t0 + Duration::from_secs(1),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(l.allowed("k").values, vec![2, 1]);
        assert!(!l.allowed("k").absent);
        // Another pod's crash forgives nothing here.
        assert_eq!(l.allowed("j").values, vec![7]);
        // Long before the crash: must survive.
        let mut l = Ledger::default();
        l.wrote("k", 1, "edge-0", Some(t0));
        l.crashed(
            "edge-0",
            t0 + Duration::from_secs(1),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(
            l.allowed("k"),
            Allowed {
                values: vec![1],
                absent: false
            }
        );
        // A key whose only write falls in the window may be absent.
        let mut l = Ledger::default();
        l.wrote("k", 1, "edge-0", Some(t0));
        l.crashed(
            "edge-0",
            t0 + Duration::from_millis(10),
            t0 + Duration::from_millis(20),
        );
        assert!(l.allowed("k").absent);
    }

    #[test]
    fn request_counts_allow_unanswered_and_crash_window_requests() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.requested("c", "edge-0", t0, 10, 0);
        l.requested("c", "edge-0", t0 + Duration::from_millis(995), 4, 1);
        l.crashed(
            "edge-0",
            t0 + Duration::from_secs(1),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(l.request_count_range("c"), (10, 15));
        let empty = dump(&[]);
        let at = |n: u64| dump(&[&entry("c", &format!("http_req_cnt={n}"))]);
        assert!(l.check("n", &at(10), &empty, &FIELDS).is_empty());
        assert!(l.check("n", &at(15), &empty, &FIELDS).is_empty());
        assert_eq!(l.check("n", &at(9), &empty, &FIELDS).len(), 1);
        assert_eq!(l.check("n", &at(16), &empty, &FIELDS).len(), 1);
        assert_eq!(l.check("n", &empty, &empty, &FIELDS).len(), 1);
    }

    #[test]
    fn a_reload_forgives_only_request_counts_while_it_is_under_way() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = Ledger::default();
        l.requested("c", "edge-0", t0, 10, 0);
        l.requested("c", "edge-0", t0 + ms(1_050), 4, 0);
        l.requested("c", "edge-0", t0 + ms(2_500), 2, 0);
        l.wrote("k", 1, "edge-0", Some(t0 + ms(1_050)));
        l.reloaded("edge-0", t0 + ms(1_000), t0 + ms(1_100));
        // Only the batch inside the reload may be missing; the write must survive.
        assert_eq!(l.request_count_range("c"), (12, 16));
        assert_eq!(
            l.allowed("k"),
            Allowed {
                values: vec![1],
                absent: false
            }
        );
        // Another pod's reload forgives nothing here.
        let mut l = Ledger::default();
        l.requested("c", "edge-0", t0 + ms(1_050), 4, 0);
        l.reloaded("edge-1", t0 + ms(1_000), t0 + ms(1_100));
        assert_eq!(l.request_count_range("c"), (4, 4));
    }

    #[test]
    fn a_session_split_is_forgiven_only_during_a_reload() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = Ledger::default();
        l.split("edge-0", t0 + ms(1_050), "s-1 split".into());
        l.split("edge-0", t0 + ms(5_000), "s-2 split".into());
        l.violation("s-3 moved".into());
        l.reloaded("edge-0", t0 + ms(1_000), t0 + ms(1_100));
        assert_eq!(l.violations(), ["s-3 moved", "s-2 split"]);
    }

    #[test]
    fn sessions_keep_their_server() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.session("s", "edge-0", t0, Some(2));
        l.session("never", "edge-0", t0, None);
        let empty = dump(&[]);
        let sticky = |id: i64| dump(&[&entry("s", &format!("server_id={id}"))]);
        assert!(l.check("n", &empty, &sticky(2), &FIELDS).is_empty());
        assert_eq!(l.check("n", &empty, &sticky(1), &FIELDS).len(), 1);
        assert_eq!(l.check("n", &empty, &empty, &FIELDS).len(), 1);
        assert_eq!(
            l.settled_sessions(t0 + Duration::from_secs(3), Duration::from_secs(2)),
            ["s"]
        );
        assert!(l.settled_sessions(t0, Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn rates_must_agree_across_nodes() {
        let rate = |n: u64| dump(&[&entry("c", &format!("http_req_rate(10000)={n}"))]);
        let nodes = |a, b| vec![("a".to_string(), rate(a)), ("b".to_string(), rate(b))];
        assert!(rates_agree(["c"], &nodes(100, 98), "http_req_rate").is_empty());
        assert!(rates_agree(["c"], &nodes(100, 104), "http_req_rate").is_empty());
        assert_eq!(
            rates_agree(["c"], &nodes(100, 90), "http_req_rate").len(),
            1
        );
        assert_eq!(rates_agree(["c"], &nodes(3, 0), "http_req_rate").len(), 1);
        let missing = vec![("a".to_string(), rate(5)), ("b".to_string(), dump(&[]))];
        assert_eq!(rates_agree(["c"], &missing, "http_req_rate").len(), 1);
    }
}
