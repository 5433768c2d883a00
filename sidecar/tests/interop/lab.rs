//! The HAProxy under test.

use super::*;

pub(crate) struct Lab {
    pub(crate) haproxy: Haproxy,
    /// HAProxy's peers listener.
    pub(crate) peers: SocketAddr,
    /// HTTP frontend that tracks `x-ip` in t_ip, `x-key` in t_str, `x-arr` in t_arr, and sends
    /// requests with `x-sticky` to the t_all backend (`stick on`).
    pub(crate) http: SocketAddr,
}

impl Lab {
    /// Starts HAProxy knowing this test as `tester` at `tester` (a listener of the test, or an
    /// address where nothing listens when the test dials).
    pub(crate) fn start(tester: SocketAddr) -> Lab {
        let peers = free_addr().unwrap();
        let http = free_addr().unwrap();
        let origin = free_addr().unwrap();
        let mut section = PeersSection::new(SECTION, HAP, peers).remote(TESTER, tester);
        for spec in TABLES.iter().filter(|s| s.in_peers_section) {
            section = section.table(spec.peers_line());
        }
        let mut config = format!("{TEST_DEFAULTS}\n{}\n", section.render());
        for spec in TABLES.iter().filter(|s| !s.in_peers_section) {
            let mut table = spec.stick_table();
            if spec.runtime == T_ALL.runtime {
                table = table
                    .line("stick on req.hdr(x-sticky)")
                    .line(format!("server s1 {origin}"))
                    .line(format!("server s2 {origin}"));
            }
            config.push_str(&table.render());
        }
        config.push_str(&format!(
            "frontend origin\n    bind {origin}\n    http-request return status 200\n\n\
             frontend fe\n    bind {http}\n    \
             http-request track-sc0 req.hdr_ip(x-ip) table t_ip if {{ req.hdr(x-ip) -m found }}\n    \
             http-request track-sc1 req.hdr(x-key) table t_str if {{ req.hdr(x-key) -m found }}\n    \
             http-request track-sc2 req.hdr(x-arr) table t_arr if {{ req.hdr(x-arr) -m found }}\n    \
             http-request sc-inc-gpc0(0) if {{ req.hdr(x-ip) -m found }}\n    \
             http-request sc-set-gpt0(1) 7 if {{ req.hdr(x-key) -m found }}\n    \
             http-request sc-inc-gpc(1,2) if {{ req.hdr(x-arr) -m found }}\n    \
             http-request sc-set-gpt(0,2) 5 if {{ req.hdr(x-arr) -m found }}\n    \
             http-request return status 200 if !{{ req.hdr(x-sticky) -m found }}\n    \
             use_backend t_all\n"
        ));
        let haproxy = Haproxy::start(HaproxyOptions::new(config).local_peer(HAP)).unwrap();
        Lab {
            haproxy,
            peers,
            http,
        }
    }

    /// A HAProxy we have dialled, its start-up resync answered: ready to exchange updates.
    pub(crate) async fn connected() -> (Lab, Peer) {
        let lab = Lab::start(free_addr().unwrap());
        let mut peer = Peer::dial(lab.peers).await;
        peer.answer_startup_resync().await;
        (lab, peer)
    }

    pub(crate) fn api(&self) -> RuntimeApi {
        self.haproxy.runtime()
    }

    /// The entry as `show table` prints it. The whole table is listed: 2.6 cannot look up a
    /// binary key from the CLI.
    pub(crate) fn entry(&self, spec: &TableSpec, key: &str) -> TableEntry {
        let dump = self.api().show_table(spec.runtime).unwrap();
        dump.entry(key)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {key} in {}: {dump:#?}", spec.runtime))
    }

    /// HAProxy sees an established session with us.
    pub(crate) fn assert_established(&self) -> haproxy_peers_testkit::show_peers::PeerState {
        let state = self.tester_state();
        assert_eq!(
            (state.last_status.as_str(), state.active),
            ("ESTA", true),
            "{state:?}"
        );
        state
    }

    /// HAProxy's view of its session with us.
    pub(crate) fn tester_state(&self) -> haproxy_peers_testkit::show_peers::PeerState {
        let sections = self.api().show_peers().unwrap();
        let section = sections
            .iter()
            .find(|s| s.name == SECTION)
            .expect("peers section");
        section.peer(TESTER).expect("peer tester").clone()
    }
}
