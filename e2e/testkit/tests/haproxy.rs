//! The harness against the real HAProxy binary.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use haproxy_peers_testkit::config::{PeersSection, StickTable, TEST_DEFAULTS};
use haproxy_peers_testkit::{free_addr, http_get, wait_until, Error, Haproxy, HaproxyOptions};

/// A peers section whose only remote is unreachable, a string table fed by a frontend.
fn config() -> (String, std::net::SocketAddr) {
    let peers_addr = free_addr().unwrap();
    let frontend = free_addr().unwrap();
    let peers = PeersSection::new("pg", "hap", peers_addr)
        .remote("other", free_addr().unwrap())
        .table("t_pdecl type integer size 1k expire 30s store gpc0");
    let table = StickTable::new("t_str", "string len 32")
        .expire("60s")
        .peers("pg")
        .store(["gpc0", "http_req_cnt", "http_req_rate(10s)"]);
    let text = format!(
        "{TEST_DEFAULTS}\n{}\n{}\nfrontend fe\n    bind {frontend}\n    \
         http-request track-sc0 req.hdr(x-key) table t_str\n    \
         http-request sc-inc-gpc0(0)\n    http-request return status 200\n",
        peers.render(),
        table.render()
    );
    (text, frontend)
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.contains(") Z "))
            .unwrap_or(true)
}

#[test]
fn runtime_api_and_http_traffic() {
    let (text, frontend) = config();
    let haproxy = Haproxy::start(HaproxyOptions::new(text).local_peer("hap")).unwrap();
    let api = haproxy.runtime();

    for _ in 0..3 {
        let response = http_get(frontend, "/", &[("x-key", "client-a")]).unwrap();
        assert_eq!(response.status, 200);
    }
    let dump = api.show_table("t_str").unwrap();
    let header = dump.header.as_ref().unwrap();
    assert_eq!(
        (header.name.as_str(), header.key_type.as_str(), header.used),
        ("t_str", "string", 1)
    );
    let entry = dump.entry("client-a").unwrap();
    assert_eq!(entry.u64("gpc0"), Some(3));
    assert_eq!(entry.u64("http_req_cnt"), Some(3));
    assert_eq!(entry.field("http_req_rate").unwrap().period, Some(10000));
    assert!(
        entry.exp > 50_000 && entry.exp <= 60_000,
        "exp {}",
        entry.exp
    );

    api.set_table("pg/t_pdecl", "42", &[("gpc0", 7)]).unwrap();
    let entry = api.table_entry("pg/t_pdecl", "42").unwrap().unwrap();
    assert_eq!(entry.u64("gpc0"), Some(7));
    assert_eq!(api.table_entry("pg/t_pdecl", "43").unwrap(), None);

    let refused = api
        .set_table("t_str", "k", &[("no_such_type", 1)])
        .unwrap_err();
    assert!(matches!(refused, Error::Refused { .. }), "{refused}");

    let sections = api.show_peers().unwrap();
    let pg = sections.iter().find(|s| s.name == "pg").unwrap();
    let local = pg.peer("hap").unwrap();
    assert!(local.local);
    assert!(!pg.peer("other").unwrap().local);
    assert_eq!(haproxy.worker_pid().unwrap(), haproxy.pid().unwrap());
}

#[test]
fn kill_restart_and_drop() {
    let (text, frontend) = config();
    let mut haproxy = Haproxy::start(HaproxyOptions::new(text).local_peer("hap")).unwrap();
    let first = haproxy.pid().unwrap();
    haproxy
        .runtime()
        .set_table("t_str", "k", &[("gpc0", 1)])
        .unwrap();

    haproxy.kill().unwrap();
    assert!(!pid_alive(first));
    assert!(matches!(haproxy.kill(), Err(Error::NotRunning)));
    assert!(haproxy.runtime().pid().is_err());

    haproxy.restart().unwrap();
    let second = haproxy.pid().unwrap();
    assert_ne!(first, second);
    assert_eq!(haproxy.starts(), 2);
    // A new process: the killed one's entries are gone, the same ports serve again.
    assert_eq!(
        haproxy.runtime().show_table("t_str").unwrap().entries.len(),
        0
    );
    assert_eq!(
        http_get(frontend, "/", &[("x-key", "k2")]).unwrap().status,
        200
    );

    let status = haproxy.terminate().unwrap();
    // Ended by the SIGTERM itself, not by the SIGKILL fallback.
    assert_eq!(status.signal(), Some(15), "{status}");
    assert!(!pid_alive(second));
    haproxy.restart().unwrap();
    let third = haproxy.pid().unwrap();
    assert!(haproxy.log().contains("start 3:"), "{}", haproxy.log());
    drop(haproxy);
    assert!(!pid_alive(third), "drop must kill haproxy");
}

#[test]
fn master_worker_reload_keeps_the_table() {
    let (text, _) = config();
    let mut haproxy = Haproxy::start(
        HaproxyOptions::new(text.clone())
            .local_peer("hap")
            .master_worker(true),
    )
    .unwrap();
    let master = haproxy.pid().unwrap();
    let worker = haproxy.worker_pid().unwrap();
    assert_ne!(master, worker);
    let procs = haproxy.master().unwrap().command("show proc").unwrap();
    assert!(procs.contains(&format!("{worker} ")), "{procs}");

    haproxy
        .runtime()
        .set_table("t_str", "survivor", &[("gpc0", 9)])
        .unwrap();
    // The old worker hands its table over only once its own start-up resync is over: with the
    // only remote peer unreachable that takes HAProxy's fixed 5 s.
    wait_until(
        "the start-up resync to end",
        Duration::from_secs(10),
        || {
            let sections = haproxy.runtime().show_peers()?;
            Ok(sections.iter().all(|s| s.resync_finished()).then_some(()))
        },
    )
    .unwrap();
    // The reload also picks up a changed configuration.
    haproxy
        .set_config(format!(
            "{text}\nbackend t_new\n    stick-table type ip size 1k\n"
        ))
        .unwrap();
    let new_worker = haproxy.reload().unwrap();
    assert_ne!(new_worker, worker);
    let tables = haproxy.runtime().command("show table").unwrap();
    assert!(tables.contains("# table: t_new,"), "{tables}");
    assert_eq!(haproxy.pid(), Some(master));
    // Through the local peer: the old worker connects to the new one and teaches it.
    let entry = wait_until(
        "the entry in the new worker",
        Duration::from_secs(10),
        || haproxy.runtime().table_entry("t_str", "survivor"),
    )
    .unwrap();
    assert_eq!(entry.u64("gpc0"), Some(9));

    haproxy.kill().unwrap();
    assert!(!pid_alive(master));
    assert!(
        !pid_alive(new_worker),
        "killing the group must take the worker too"
    );
}

#[test]
fn a_broken_config_fails_with_haproxy_s_own_message() {
    let err = Haproxy::start(HaproxyOptions::new(
        "frontend fe\n    bind 127.0.0.1:1 nonsense\n",
    ))
    .unwrap_err();
    match &err {
        Error::StartFailed { log, .. } => assert!(log.contains("nonsense"), "{log}"),
        other => panic!("expected StartFailed, got {other}"),
    }
}

#[test]
fn reload_needs_master_worker_mode() {
    let (text, _) = config();
    let mut haproxy = Haproxy::start(HaproxyOptions::new(text).local_peer("hap")).unwrap();
    assert!(matches!(haproxy.reload(), Err(Error::NeedsMasterWorker(_))));
    assert!(matches!(haproxy.master(), Err(Error::NeedsMasterWorker(_))));
}
