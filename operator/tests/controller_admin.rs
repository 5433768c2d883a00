//! The admin HTTP server: health, named readiness, metrics; served on a loopback socket.

use std::sync::Arc;
use std::time::Duration;

use haproxy_peers_operator::admin::{self, AdminState};
use haproxy_peers_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET over a fresh connection; returns the status line and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("request");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

#[tokio::test]
async fn health_readiness_and_metrics_over_http() {
    let state = Arc::new(AdminState::new(Arc::new(Metrics::new())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));

    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );

    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(body.contains("not ready: starting"), "{body}");
    state.set_ready();
    let (status, _) = get(addr, "/readyz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    state.set_not_ready("cannot read Lease ops/x: boom");
    let (_, body) = get(addr, "/readyz").await;
    assert!(body.contains("cannot read Lease ops/x: boom"), "{body}");

    state.metrics.reconciled(Duration::from_millis(2));
    state.metrics.set_leader(true);
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        body.lines()
            .any(|l| l == "haproxy_peers_operator_reconciles_total{outcome=\"ok\"} 1"),
        "{body}"
    );
    assert!(
        body.lines().any(|l| l == "haproxy_peers_operator_leader 1"),
        "{body}"
    );
    assert!(
        body.trim_end().ends_with("# EOF"),
        "OpenMetrics text: {body}"
    );

    let (status, _) = get(addr, "/nope").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    stop.send(()).expect("server running");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("served without error");
}
