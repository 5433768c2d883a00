# The two commands the README gives. `demo` builds the sidecar and the e2e helpers in release
# mode first: `cargo run --bin demo` alone would not build the other binaries it starts.
.PHONY: demo test

demo:
	cargo build --release -p haproxy-peers-sidecar --bin haproxy-peers-sidecar
	cargo build --release -p haproxy-peers-e2e --bin hp-e2e-probe
	cargo run --release -p haproxy-peers-e2e --bin demo -- $(ARGS)

test:
	cargo test --workspace
