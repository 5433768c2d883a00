fn main() {
    eprintln!("haproxy-peers-sidecar: the replicator runtime is not built yet; only the codec library exists");
    std::process::exit(2);
}
