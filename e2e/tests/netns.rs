//! The namespace layer on its own: a cut link isolates a pod and healing restores it, a hosts
//! file rewritten in place reaches processes already running, and the sweeper removes what a
//! dead run left behind without touching a live one.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use haproxy_peers_e2e::ip::{ip, ip_binary};
use haproxy_peers_e2e::netns::{namespaces_with_prefix, sweep_leftovers, Host, Network};
use haproxy_peers_e2e::poll;
use haproxy_peers_e2e::probe::{run_probe, Reach};
use haproxy_peers_e2e::proc::{Proc, ProcSpec};
use haproxy_peers_testkit::haproxy_binary;

const PROBE: &str = env!("CARGO_BIN_EXE_hp-e2e-probe");
const WAIT: Duration = Duration::from_secs(15);

fn proc_in(host: &Host, dir: &Path, program: &Path, args: &[&str]) -> Proc {
    let mut proc = Proc::new(ProcSpec {
        role: "test",
        pod: host.name.clone(),
        netns: host.netns.clone(),
        program: program.to_path_buf(),
        args: args.iter().map(Into::into).collect(),
        env: Vec::new(),
        log: dir.join(format!("{}.log", host.name)),
        cwd: dir.to_path_buf(),
    });
    proc.start().unwrap();
    proc
}

fn reach(from: &Host, to: &str) -> Reach {
    let args = ["connect", to, "--timeout-ms", "1000"].map(String::from);
    run_probe(Path::new(PROBE), from, &args).unwrap()
}

/// Namespaces `a`, `b`, `c`, each with an HTTP listener on :8080.
fn three_listeners(dir: &Path) -> (Network, Vec<Host>, Vec<Proc>) {
    let mut net = Network::create().unwrap();
    let cfg = dir.join("listener.cfg");
    std::fs::write(
        &cfg,
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    \
         timeout server 5s\n\nfrontend web\n    bind :8080\n    http-request return status 200\n",
    )
    .unwrap();
    let mut hosts = Vec::new();
    let mut procs = Vec::new();
    for name in ["a", "b", "c"] {
        let host = net.add(name).unwrap();
        procs.push(proc_in(
            &host,
            dir,
            &haproxy_binary().unwrap(),
            &["-db", "-f", cfg.to_str().unwrap()],
        ));
        hosts.push(host);
    }
    for from in &hosts {
        for to in &hosts {
            let target = format!("{}:8080", to.ip);
            poll(&format!("{} to reach {}", from.name, to.name), WAIT, || {
                Ok(reach(from, &target).connected.then_some(()))
            })
            .unwrap();
        }
    }
    (net, hosts, procs)
}

fn reaches(from: &Host, to: &Host) -> bool {
    reach(from, &format!("{}:8080", to.ip)).connected
}

#[test]
fn a_cut_link_isolates_the_pod_until_healed() {
    let dir = tempfile::tempdir().unwrap();
    let (net, hosts, _procs) = three_listeners(dir.path());
    let [a, b, c] = [&hosts[0], &hosts[1], &hosts[2]];

    net.cut("a").unwrap();
    assert!(!reaches(b, a), "reached a cut pod");
    assert!(!reaches(a, c), "a cut pod reached out");
    assert!(reaches(b, c));
    // The pod itself keeps running: its own loopback still answers.
    assert!(reach(a, "127.0.0.1:8080").connected);

    net.heal("a").unwrap();
    poll("the healed pod to be reachable", WAIT, || {
        Ok((reaches(b, a) && reaches(a, c)).then_some(()))
    })
    .unwrap();
}

#[test]
fn a_partition_separates_two_pods_only() {
    let dir = tempfile::tempdir().unwrap();
    let (net, hosts, _procs) = three_listeners(dir.path());
    let [a, b, c] = [&hosts[0], &hosts[1], &hosts[2]];

    net.partition("a", "b").unwrap();
    assert!(
        !reaches(a, b) && !reaches(b, a),
        "a and b still reach each other"
    );
    assert!(reaches(a, c) && reaches(c, a) && reaches(b, c) && reaches(c, b));

    net.unpartition("a", "b").unwrap();
    assert!(reaches(a, b) && reaches(b, a));
}

#[test]
fn hosts_rewritten_in_place_reach_running_processes() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create().unwrap();
    let pod = net.add("pod").unwrap();
    let names = vec![
        "edge-0".to_string(),
        "edge-0.edge-peers.web.svc".to_string(),
    ];
    net.set_hosts(&[(Ipv4Addr::new(10, 213, 0, 200), names.clone())])
        .unwrap();
    let go = dir.path().join("go");
    let script = format!(
        "getent hosts edge-0.edge-peers.web.svc; while [ ! -e {go} ]; do sleep 0.05; done; \
         getent hosts edge-0.edge-peers.web.svc; sleep 60",
        go = go.display()
    );
    let proc = proc_in(&pod, dir.path(), Path::new("/bin/sh"), &["-c", &script]);
    poll("the first lookup", WAIT, || {
        Ok(proc.log().contains("10.213.0.200").then_some(()))
    })
    .unwrap();
    // Same name, new address: what a replaced pod looks like to its peers.
    net.set_hosts(&[(Ipv4Addr::new(10, 213, 0, 201), names)])
        .unwrap();
    std::fs::write(&go, "").unwrap();
    poll("the second lookup", WAIT, || {
        Ok(proc.log().contains("10.213.0.201").then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", proc.log()));
}

#[test]
fn the_sweeper_removes_dead_runs_and_spares_live_ones() {
    // A dead run without a lock file, with a process still running in its namespace.
    let dead = "hp-999999991-0-edge-0";
    let dead_switch = "hp-999999991-0-sw";
    // A dead run whose lock file is left but unlocked.
    let unlocked = "hp-999999992-0-sw";
    let lock = Path::new("/run/haproxy-peers-e2e/999999992-0.lock");
    for ns in [dead, dead_switch, unlocked] {
        let _ = ip(&["netns", "del", ns]);
        ip(&["netns", "add", ns]).unwrap();
    }
    std::fs::create_dir_all(format!("/etc/netns/{dead}")).unwrap();
    std::fs::write(format!("/etc/netns/{dead}/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(lock, "").unwrap();
    // Its files: the lock file left behind says it crashed, so they go too. The other dead run
    // ended normally (no lock file): its files were kept on purpose and stay.
    let crashed_files = std::env::temp_dir().join("hp-e2e-999999992-0-abc");
    let kept_files = std::env::temp_dir().join("hp-e2e-999999991-0-abc");
    std::fs::create_dir_all(crashed_files.join("edge-0")).unwrap();
    std::fs::create_dir_all(&kept_files).unwrap();
    let mut orphan = Command::new(ip_binary())
        .args(["netns", "exec", dead, "sleep", "300"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    // A live run.
    let mut live = Network::create().unwrap();
    live.add("edge-0").unwrap();
    let live_prefix = live.prefix();

    sweep_leftovers().unwrap();

    assert_eq!(
        namespaces_with_prefix("hp-999999991-"),
        Vec::<String>::new()
    );
    assert_eq!(
        namespaces_with_prefix("hp-999999992-"),
        Vec::<String>::new()
    );
    assert!(!lock.exists());
    assert!(!crashed_files.exists());
    assert!(kept_files.exists());
    std::fs::remove_dir_all(&kept_files).unwrap();
    let status = orphan.wait().unwrap();
    assert!(!status.success(), "the orphan was not killed: {status}");
    let mut alive = namespaces_with_prefix(&live_prefix);
    alive.sort();
    assert_eq!(
        alive,
        [
            format!("{live_prefix}edge-0"),
            format!("{live_prefix}edge-0"),
            format!("{live_prefix}sw")
        ],
        "the live run's namespaces (and its /etc/netns directory) must survive"
    );
    drop(live);
    assert_eq!(namespaces_with_prefix(&live_prefix), Vec::<String>::new());
}
