//! The admin server on 127.0.0.1:0 over a source of fixed views (standing where the runtime will
//! be), queried over real HTTP: by the library's client, by the built binary's `peers` and
//! `tables` commands, and by raw sockets sending garbage, oversized and slow input.

#[path = "admin/fixture.rs"]
mod fixture;
#[path = "admin/openmetrics.rs"]
mod openmetrics;
#[path = "admin/raw.rs"]
mod raw;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use fixture::{ready, Server};
use haproxy_peers_sidecar::admin::readiness::{HaproxyLink, Lesson};
use haproxy_peers_sidecar::admin::views::*;
use haproxy_peers_sidecar::cli::client::{self, AdminUrl, Response};
use haproxy_peers_sidecar::metrics;
use raw::Ending;

const BIN: &str = env!("CARGO_BIN_EXE_haproxy-peers-sidecar");
const WAIT: Duration = Duration::from_secs(10);

async fn get(server: &Server, path: &str, accept: &str) -> Response {
    client::get(&AdminUrl::parse(&server.url()).unwrap(), path, accept)
        .await
        .unwrap()
}

async fn get_json<T: serde::de::DeserializeOwned>(server: &Server, path: &str) -> (u16, T) {
    let r = get(server, path, "application/json").await;
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json"),
        "{path}"
    );
    let view = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}\n{}", r.body));
    (r.status, view)
}

async fn healthy(server: &Server) {
    let r = get(server, "/healthz", "*/*").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
}

/// Runs the built binary with only the given environment.
async fn sidecar(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the binary finished")
        .expect("the binary ran")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

const PEERS_TEXT: &str = "\
pod edge-0, group web/edge, peers section edge: replica learning from edge-1: 12000 of ~40000 entries

NAME    ROLE     STATE        DIR  ADDRESS                          PID   STATUS  HANDSHAKE  LAST MSG  HB TX/RX  SILENT  RECONN  PROTO ERR  COLL  LAST SYNC
edge-0  haproxy  established  in   127.0.0.1:10001                  4242  ESTA    8s         900ms     2/3       0       0       0          0     taught complete 40000 (7s ago)
edge-1  member   established  out  edge-1.edge-peers.web.svc:10000  1     ESTA    1m05s      1s        20/21     0       1       0          1     learned in_progress 12000 (3s ago)
edge-2  member   backoff      -    edge-2.edge-peers.web.svc:10000  -     HSHK    never      never     0/0       0       4       1          0     never

edge-0 (haproxy):
  TABLE    PUSHED  ACKED  BEHIND  DRIFT
  be_rate  1200    1200   0       -

edge-1 (member):
  TABLE    PUSHED  ACKED  BEHIND  DRIFT
  be_rate  1200    1190   10      -
  /t1      5       5      0       expire 30000 ms here, 10000 ms there

edge-2 (member):
  last error: edge-2 claimed name edge-9 but its certificate is for edge-2
";

const TABLES_TEXT: &str = "\
TABLE    TYPE    KEY LEN  EXPIRE  ENTRIES  MAX      EVICTED  STALE  UNTAUGHT  POLICY     DEFINED BY  DATA
be_rate  ip      4        30m00s  40000    1000000  0        0      0         replicate  haproxy     gpc0 http_req_rate(10000) gpt[2]
/t1      string  33       30s     2        1000000  3        5      2         replicate  haproxy     server_key
drift: /t1 at edge-1 differs: expire 30000 ms here, 10000 ms there
";

const ENTRY_TEXT: &str = "\
# table: be_rate, type: ip, size:1000000, used:40000
# expire: 30m00s, data: gpc0 http_req_rate(10000) gpt[2], policy: replicate, defined by: haproxy
key=10.0.0.1 exp=1799000 origin=edge-1 seq=1201 gpc0=42 http_req_rate(10000)=9 gpt[0]=1 gpt[1]=2
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_unknown_paths() {
    let server = Server::start(fixture::test_limits()).await;
    healthy(&server).await;
    let r = get(&server, "/nope", "*/*").await;
    assert_eq!(r.status, 404);
    assert!(
        r.body
            .contains("/healthz, /readyz, /metrics, /peers, /tables"),
        "{}",
        r.body
    );
    let r = get(&server, "/tables/", "*/*").await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = get(&server, "/peers?format=yaml", "*/*").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "format=\"yaml\" is not known: use format=text or format=json\n"
    );
    let post = raw::exchange(
        server.addr,
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(post.text().starts_with("HTTP/1.1 405"), "{}", post.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_blockers_until_the_facts_change() {
    let server = Server::start(fixture::test_limits()).await;
    let r = get(&server, "/readyz", "*/*").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.body,
        "haproxy_not_connected: waiting for HAProxy to connect to 127.0.0.1:10002: check that \
         the pod hostname (or POD_NAME in the HAProxy container) is a peer name in peers.cfg, \
         here edge-0, and that HAProxy loads peers.cfg\n\
         learning: learning from edge-1: 12000 of ~40000 entries\n\
         tls_material: TLS certificate for edge-0 not readable yet: \
         /etc/haproxy-peers/tls/edge-0.crt: No such file or directory\n"
    );
    let (status, json): (u16, Readiness) = get_json(&server, "/readyz").await;
    assert_eq!(status, 503);
    assert!(!json.ready);
    let kinds: Vec<BlockerKind> = json.blockers.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockerKind::HaproxyNotConnected,
            BlockerKind::Learning,
            BlockerKind::TlsMaterial
        ]
    );
    let r = get(&server, "/readyz?format=json", "text/plain").await;
    assert_eq!(r.content_type.as_deref(), Some("application/json"));

    // HAProxy calls and the lesson is under way: one blocker left, with progress.
    server.source.set_facts(|f| {
        ready(f);
        f.haproxy = HaproxyLink::Connected {
            pid: 4242,
            lesson: Lesson::Sending {
                sent: 5000,
                total: 40000,
            },
        };
    });
    let r = get(&server, "/readyz", "*/*").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            503,
            "teaching_haproxy: teaching HAProxy (pid 4242): 5000 of 40000 entries sent\n"
        )
    );
    let scrape = get(&server, "/metrics", "*/*").await.body;
    assert!(
        scrape.contains("\nhaproxy_peers_sidecar_ready 0\n"),
        "{scrape}"
    );

    server.source.set_facts(ready);
    let r = get(&server, "/readyz", "*/*").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    let (status, json): (u16, Readiness) = get_json(&server, "/readyz").await;
    assert_eq!((status, json), (200, Readiness::from_blockers(vec![])));
    let scrape = get(&server, "/metrics", "*/*").await.body;
    assert!(
        scrape.contains("\nhaproxy_peers_sidecar_ready 1\n"),
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_openmetrics_with_labels() {
    let server = Server::start(fixture::test_limits()).await;
    // What the runtime records as things happen.
    let m = &server.metrics;
    m.session_state("edge-1", PeerRole::Member, SessionState::Established);
    m.session_state("edge-0", PeerRole::Haproxy, SessionState::Established);
    m.update_in("edge-1", "be_rate");
    m.update_in("edge-1", "be_rate");
    m.update_out("edge-0", "be_rate");
    m.resync("edge-1", SyncKind::Learned, SyncOutcome::Complete);
    m.resync("edge-0", SyncKind::Taught, SyncOutcome::Aborted);
    m.evictions("/t1", 3);
    m.stale_rejected("/t1", 2);
    m.untaught_ignored("/t1", 1);
    m.error("protocol_error");
    m.error("protocol_error");
    m.tls_reload(true);
    m.tls_reload(false);
    m.definition_drift("/t1", 1);
    m.heartbeat("edge-1", Direction::Inbound);
    m.reconnect("edge-2");
    m.collision("edge-1");

    let r = get(&server, "/metrics", "*/*").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some(metrics::CONTENT_TYPE));
    let families = openmetrics::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    let expect = [
        ("haproxy_peers_sidecar_sessions", "gauge"),
        ("haproxy_peers_sidecar_updates_received", "counter"),
        ("haproxy_peers_sidecar_updates_sent", "counter"),
        ("haproxy_peers_sidecar_replication_lag_updates", "gauge"),
        ("haproxy_peers_sidecar_table_entries", "gauge"),
        ("haproxy_peers_sidecar_evictions", "counter"),
        ("haproxy_peers_sidecar_stale_rejected", "counter"),
        ("haproxy_peers_sidecar_untaught_ignored", "counter"),
        (
            "haproxy_peers_sidecar_table_definition_drift_peers",
            "gauge",
        ),
        ("haproxy_peers_sidecar_resyncs", "counter"),
        ("haproxy_peers_sidecar_heartbeats", "counter"),
        ("haproxy_peers_sidecar_reconnects", "counter"),
        ("haproxy_peers_sidecar_collisions", "counter"),
        ("haproxy_peers_sidecar_errors", "counter"),
        ("haproxy_peers_sidecar_tls_reloads", "counter"),
        ("haproxy_peers_sidecar_ready", "gauge"),
        ("haproxy_peers_sidecar_build", "info"),
    ];
    for (name, kind) in expect {
        let f = families
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(f.kind, kind, "{name}");
        assert!(!f.help.is_empty(), "{name} has no help");
    }
    let value = |family: &str, sample: &str, labels: &[(&str, &str)]| -> f64 {
        let f = &families[family];
        f.samples
            .iter()
            .find(|s| {
                s.name == sample
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap_or_else(|| panic!("{sample}{labels:?} missing in {:?}", f.samples))
            .value
    };
    let s = "haproxy_peers_sidecar_sessions";
    assert_eq!(
        value(
            s,
            s,
            &[
                ("peer", "edge-1"),
                ("role", "member"),
                ("state", "established")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            s,
            s,
            &[("peer", "edge-1"), ("role", "member"), ("state", "backoff")]
        ),
        0.0
    );
    assert_eq!(
        value(
            s,
            s,
            &[
                ("peer", "edge-0"),
                ("role", "haproxy"),
                ("state", "established")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            "haproxy_peers_sidecar_updates_received",
            "haproxy_peers_sidecar_updates_received_total",
            &[("peer", "edge-1"), ("table", "be_rate")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "haproxy_peers_sidecar_resyncs",
            "haproxy_peers_sidecar_resyncs_total",
            &[
                ("peer", "edge-0"),
                ("kind", "taught"),
                ("outcome", "aborted")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            "haproxy_peers_sidecar_errors",
            "haproxy_peers_sidecar_errors_total",
            &[("kind", "protocol_error")]
        ),
        2.0
    );
    for outcome in ["ok", "rejected"] {
        assert_eq!(
            value(
                "haproxy_peers_sidecar_tls_reloads",
                "haproxy_peers_sidecar_tls_reloads_total",
                &[("outcome", outcome)]
            ),
            1.0
        );
    }
    assert_eq!(
        value(
            "haproxy_peers_sidecar_heartbeats",
            "haproxy_peers_sidecar_heartbeats_total",
            &[("peer", "edge-1"), ("direction", "rx")]
        ),
        1.0
    );
    // Gauges the source refreshes from its snapshots on every scrape.
    let t = "haproxy_peers_sidecar_table_entries";
    assert_eq!(value(t, t, &[("table", "be_rate")]), 40000.0);
    assert_eq!(value(t, t, &[("table", "/t1")]), 2.0);
    let l = "haproxy_peers_sidecar_replication_lag_updates";
    assert_eq!(
        value(l, l, &[("peer", "edge-1"), ("table", "be_rate")]),
        10.0
    );
    let d = "haproxy_peers_sidecar_table_definition_drift_peers";
    assert_eq!(value(d, d, &[("table", "/t1")]), 1.0);
    assert_eq!(
        value(
            "haproxy_peers_sidecar_build",
            "haproxy_peers_sidecar_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_and_tables_as_json_and_text() {
    let server = Server::start(fixture::test_limits()).await;
    let (status, peers): (u16, PeersView) = get_json(&server, "/peers").await;
    assert_eq!((status, peers), (200, fixture::peers_view()));
    let r = get(&server, "/peers?format=text", "*/*").await;
    assert_eq!((r.status, r.body.as_str()), (200, PEERS_TEXT));
    let r = get(&server, "/peers", "text/plain, application/json;q=0.5").await;
    assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, PEERS_TEXT);

    let (status, tables): (u16, TablesView) = get_json(&server, "/tables").await;
    assert_eq!((status, tables), (200, fixture::tables_view()));
    let r = get(&server, "/tables?format=text", "*/*").await;
    assert_eq!(r.body, TABLES_TEXT);

    // One table, by wire name: a peers-section table's name starts with '/'.
    let (status, t): (u16, TableView) = get_json(&server, "/tables/be_rate").await;
    assert_eq!(status, 200);
    assert_eq!(t.table, fixture::tables_view().tables[0]);
    assert_eq!(t.entry, None);
    for path in ["/tables//t1", "/tables/%2Ft1"] {
        let (status, t): (u16, TableView) = get_json(&server, path).await;
        assert_eq!(
            (status, t.table.definition.name.as_str()),
            (200, "/t1"),
            "{path}"
        );
    }

    // One key, rates as computed by the source.
    let (status, t): (u16, TableView) = get_json(&server, "/tables/be_rate?key=10.0.0.1").await;
    assert_eq!(status, 200);
    let entry = t.entry.expect("entry");
    assert_eq!(
        entry,
        fixture::entries()[&("be_rate".to_string(), "10.0.0.1".to_string())]
    );
    let r = get(&server, "/tables/be_rate?key=10.0.0.1&format=text", "*/*").await;
    assert_eq!(r.body, ENTRY_TEXT);
    let (status, t): (u16, TableView) = get_json(&server, "/tables/%2Ft1?key=user%207").await;
    assert_eq!(status, 200);
    assert_eq!(
        t.entry.map(|e| e.values[0].value.clone()),
        Some(Value::Text { value: "s1".into() })
    );

    // Lookups that fail say why.
    let err = |body: &str| -> String {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = get(&server, "/tables/nope", "application/json").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        err(&r.body),
        "no table named \"nope\" (tables: be_rate, /t1): use the wire name, e.g. `be` for a \
         backend's table or `/t1` for `table t1` in the peers section"
    );
    let r = get(&server, "/tables/be_rate?key=10.0.0.9", "application/json").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        err(&r.body),
        "table be_rate has no entry for key \"10.0.0.9\" (40000 entries)"
    );
    let r = get(&server, "/tables/be_rate?key=edge", "text/plain").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "\"edge\" is not a key of table be_rate (key type ip): invalid IPv4 address syntax\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_show_peers_and_show_table() {
    let server = Server::start(fixture::test_limits()).await;
    let url = server.url();
    let admin = ["--admin", url.as_str()];

    let out = sidecar(&[&["peers"][..], &admin].concat(), &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), PEERS_TEXT);

    let out = sidecar(&[&["peers", "--json"][..], &admin].concat(), &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let view: PeersView = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(view, fixture::peers_view());

    let out = sidecar(&[&["tables"][..], &admin].concat(), &[]).await;
    assert_eq!(stdout(&out), TABLES_TEXT);
    let out = sidecar(
        &[&["tables", "be_rate", "--key", "10.0.0.1"][..], &admin].concat(),
        &[],
    )
    .await;
    assert_eq!(stdout(&out), ENTRY_TEXT);
    let out = sidecar(
        &[&["tables", "/t1", "--key", "user 7", "--json"][..], &admin].concat(),
        &[],
    )
    .await;
    let view: TableView = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(view.entry.map(|e| e.key), Some("user 7".to_string()));

    // The admin URL from the environment, then from members.yaml's admin port.
    let out = sidecar(&["tables", "/t1"], &[("HAPROXY_PEERS_ADMIN_URL", &url)]).await;
    assert!(
        stdout(&out).starts_with("# table: /t1, type: string, size:1000000, used:2\n"),
        "{}",
        stdout(&out)
    );
    let dir = members_dir(&members_yaml(server.addr.port()));
    let dir_arg = dir.path().to_str().unwrap();
    let out = sidecar(&["peers", "--config-dir", dir_arg], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), PEERS_TEXT);

    // Failures go to stderr with what to do, and exit 1.
    let out = sidecar(&[&["tables", "nope"][..], &admin].concat(), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "haproxy-peers-sidecar: {url}/tables/nope answered 404: no table named \"nope\" \
             (tables: be_rate, /t1): use the wire name, e.g. `be` for a backend's table or `/t1` \
             for `table t1` in the peers section\n"
        )
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let out = sidecar(&["peers", "--admin", &format!("http://{closed}")], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "haproxy-peers-sidecar: cannot query the admin server at http://{closed}/peers: "
        )) && err
            .ends_with(": is the sidecar running? pass --admin <url> if it listens elsewhere\n"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let out = sidecar(
        &["peers", "--config-dir", empty.path().to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("haproxy-peers-sidecar: cannot find the admin port: cannot read "),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).ends_with("; or pass --admin http://127.0.0.1:<admin port>\n"));
    let out = sidecar(&["tables", "--key", "k"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "--key needs a table name");
}

fn members_yaml(admin_port: u16) -> String {
    format!(
        "version: 1\ngroup: edge\nnamespace: web\ngeneration: 3\npeersSection: edge\ntls: true\n\
         ports:\n  mesh: 10000\n  haproxy: 10001\n  sidecar: 10002\n  admin: {admin_port}\n\
         resyncTimeoutSeconds: 30\nmembers:\n- name: edge-0\n  address: edge-0.edge-peers.web.svc\n\
         - name: edge-1\n  address: edge-1.edge-peers.web.svc\n"
    )
}

fn members_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("members.yaml"), text).unwrap();
    dir
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_say_what_to_do() {
    let dir = members_dir(&members_yaml(9090));
    let config_dir = path_str(dir.path());

    let out = sidecar(&["check-config", "--config-dir", config_dir], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "haproxy-peers-sidecar: invalid configuration (1 problem):\n  - --pod-name (POD_NAME) \
         is not set: set POD_NAME from the pod's name (downward API fieldRef metadata.name) or \
         pass --pod-name\n"
    );

    let out = sidecar(
        &["check-config", "--config-dir", config_dir],
        &[("POD_NAME", "edge-7")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "haproxy-peers-sidecar: invalid configuration (1 problem):\n  - pod 'edge-7' is not in \
         members.yaml (members: edge-0, edge-1): is the pod selected by the PeerGroup's \
         selector?\n"
    );

    let bad = members_dir("version: 1\ngroup: edge\n");
    let out = sidecar(
        &[
            "check-config",
            "--config-dir",
            path_str(bad.path()),
            "--admin-listen",
            "nowhere",
        ],
        &[("POD_NAME", "edge-0")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let path = bad.path().join("members.yaml");
    assert!(
        err.starts_with(&format!(
            "haproxy-peers-sidecar: invalid configuration (2 problems):\n  - {}: members.yaml is \
             not valid YAML for this format: missing field `namespace`",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            "(the operator writes this file into ConfigMap <group>-peers; do not edit it by \
             hand)\n  - --admin-listen (HAPROXY_PEERS_ADMIN_LISTEN): 'nowhere' is not an IP \
             address and port such as 0.0.0.0:9090\n"
        ),
        "{err}"
    );

    // Environment settings are named by their variable too, and a good set prints the result.
    let out = sidecar(
        &["check-config"],
        &[
            ("POD_NAME", "edge-1"),
            ("HAPROXY_PEERS_CONFIG_DIR", config_dir),
            ("HAPROXY_PEERS_LOG_FORMAT", "xml"),
        ],
    )
    .await;
    assert_eq!(
        stderr(&out),
        "haproxy-peers-sidecar: invalid configuration (1 problem):\n  - --log-format \
         (HAPROXY_PEERS_LOG_FORMAT): 'xml' is not a log format: use text or json\n"
    );
    let out = sidecar(
        &["check-config", "--log-format", "json"],
        &[
            ("POD_NAME", "edge-1"),
            ("HAPROXY_PEERS_CONFIG_DIR", config_dir),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "pod: edge-1 (edge-1.edge-peers.web.svc)\n\
             group: web/edge (generation 3), peers section edge\n\
             members: 2 (edge-0, edge-1)\n\
             mesh: mutual TLS from /etc/haproxy-peers/tls listening on 0.0.0.0:10000\n\
             haproxy link: sidecar listens on 127.0.0.1:10002, HAProxy's peers listener 127.0.0.1:10001\n\
             admin: 0.0.0.0:9090\n\
             config: {}\n\
             resync timeout: 30s\n\
             max entries per table: 1000000\n\
             tables: default replicate\n\
             log: json, info\n",
            dir.path().join("members.yaml").display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_leaves_the_server_answering() {
    let limits = fixture::test_limits();
    let server = Server::start(limits).await;

    // Garbage: a 400 and a closed connection.
    let garbage: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let end = raw::exchange(server.addr, &garbage, WAIT).await;
    assert!(
        !matches!(end, Ending::Open(_)),
        "garbage left the connection open"
    );
    assert!(
        end.text().is_empty() || end.text().starts_with("HTTP/1.1 400"),
        "{}",
        end.text()
    );
    let end = raw::exchange(
        server.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        !matches!(end, Ending::Open(_)),
        "a TLS hello left the connection open"
    );
    healthy(&server).await;
    assert_eq!(errors(&server, "admin_bad_request").await, 2);

    // A 1 MB request line: refused once it passes the header cap, never buffered whole.
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let end = raw::exchange(server.addr, &long, WAIT).await;
    match &end {
        Ending::Closed(b) | Ending::Reset(b) => {
            let text = String::from_utf8_lossy(b);
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 431"),
                "{text}"
            );
        }
        Ending::Open(_) => panic!("an oversized request line left the connection open"),
    }
    // Oversized headers in many lines get the same answer.
    let mut many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        many.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "b".repeat(20)).as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let end = raw::exchange(server.addr, &many, WAIT).await;
    assert!(
        !matches!(end, Ending::Open(_)),
        "oversized headers left the connection open"
    );
    assert!(
        end.text().is_empty() || end.text().starts_with("HTTP/1.1 431"),
        "{}",
        end.text()
    );
    healthy(&server).await;
    assert_eq!(errors(&server, "admin_bad_request").await, 4);

    // A complete request sent one byte at a time, within the header deadline, is answered.
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (mut stream, complete) =
        raw::trickle(server.addr, request, Duration::from_millis(10)).await;
    assert!(complete, "the server gave up on a slow but timely request");
    let end = raw::read_to_end(&mut stream, WAIT).await;
    assert!(
        end.text().starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        end.text()
    );
    assert!(end.text().ends_with("\r\n\r\nok\n"), "{}", end.text());

    // A slowloris that never finishes its headers is cut at the header deadline: it could send
    // for three times that long, and it is closed first.
    let endless: Vec<u8> = b"GET /healthz HTTP/1.1\r\n"
        .iter()
        .copied()
        .chain(
            (0..)
                .flat_map(|i| format!("X-{i}: y\r\n").into_bytes())
                .take(10_000),
        )
        .collect();
    let gap = Duration::from_millis(50);
    let budget = (limits.header_read_timeout * 3).as_millis() / gap.as_millis();
    let slow = &endless[..usize::try_from(budget).unwrap()];
    let (mut stream, complete) = raw::trickle(server.addr, slow, gap).await;
    assert!(!complete, "a slowloris outlived three header deadlines");
    let end = raw::read_to_end(&mut stream, WAIT).await;
    assert!(!matches!(end, Ending::Open(_)));
    healthy(&server).await;
    assert_eq!(errors(&server, "admin_request_timeout").await, 1);

    // An idle connection is closed at the same deadline, as routine: a keep-alive scraper
    // between scrapes looks the same, so it is not counted as a slow client.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let end = raw::read_to_end(&mut idle, limits.header_read_timeout * 3).await;
    assert!(
        !matches!(end, Ending::Open(_)),
        "an idle connection was kept"
    );
    healthy(&server).await;
    // So is a keep-alive connection idle after a request.
    let mut kept = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut kept, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let end = raw::read_to_end(&mut kept, limits.header_read_timeout * 3).await;
    assert!(
        end.text().starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        end.text()
    );
    assert!(
        !matches!(end, Ending::Open(_)),
        "an idle keep-alive connection was kept"
    );
    assert_eq!(errors(&server, "admin_request_timeout").await, 1);
    assert_eq!(errors(&server, "admin_bad_request").await, 4);
}

/// The `errors_total` counter of one kind, read off a scrape.
async fn errors(server: &Server, kind: &str) -> u64 {
    let scrape = get(server, "/metrics", "*/*").await.body;
    let prefix = format!("haproxy_peers_sidecar_errors_total{{kind=\"{kind}\"}} ");
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.parse().unwrap_or_else(|e| panic!("{n}: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_and_graceful_shutdown() {
    let limits = haproxy_peers_sidecar::admin::Limits {
        max_connections: 3,
        ..fixture::test_limits()
    };
    let mut server = Server::start(limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // Give the accept loop time to take all three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let end = raw::read_to_end(&mut fourth, Duration::from_secs(1)).await;
    assert!(
        matches!(end, Ending::Closed(ref b) if b.is_empty()),
        "{end:?}"
    );
    // The held connections are idle: the header deadline frees their slots.
    for mut s in held {
        let end = raw::read_to_end(&mut s, limits.header_read_timeout * 3).await;
        assert!(!matches!(end, Ending::Open(_)));
    }
    healthy(&server).await;
    let scrape = get(&server, "/metrics", "*/*").await.body;
    assert!(
        scrape.contains("haproxy_peers_sidecar_errors_total{kind=\"admin_connection_limit\"} 1\n"),
        "{scrape}"
    );

    // Shutdown: a keep-alive connection between requests is closed, the listener goes away,
    // and serve() returns.
    let mut keep = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut keep, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut keep, &mut buf)
        .await
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    server.shutdown();
    let task = std::mem::replace(&mut server.task, tokio::spawn(async {}));
    tokio::time::timeout(WAIT, task)
        .await
        .expect("serve returned")
        .unwrap();
    let end = raw::read_to_end(&mut keep, WAIT).await;
    assert!(
        !matches!(end, Ending::Open(_)),
        "keep-alive connection survived shutdown"
    );
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}
