# linkgate image: one binary that runs `serve` (the default) and `migrate`.
#
#   docker build -t linkgate:0.1.0 .
#   docker run --rm linkgate:0.1.0 --help
#
# The Helm chart (helm/linkgate) runs it as uid/gid 10001 with `args: ["serve"]` and, in the
# migration Job, `args: ["migrate"]`; .ci/helm-check keeps the two in step.

# --- build ----------------------------------------------------------------------------------
# Rust 1.95 on Debian 12, the same Debian release as the runtime image (glibc must match).
FROM rust:1.95.0-bookworm AS builder
WORKDIR /build

# Dependencies first, with stand-in sources for the server, so this layer is rebuilt only when the
# manifests, Cargo.lock, build.rs, the protos or the client crate change. Cargo loads the whole
# workspace, so every member's manifest is here; only the server and its client crate are built
# (the mocks are a dev-dependency, the bench tools another member). build.rs needs no protoc from
# apt: it uses the one vendored by the protoc-bin-vendored crate.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY crates ./crates
COPY bench/tools ./bench/tools
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources. COPY keeps the files' own modification times, which can be older than the
# stand-in build, so touch the crate roots to make cargo rebuild linkgate itself. The
# migrations are embedded at compile time (sqlx::migrate!).
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

# --- runtime --------------------------------------------------------------------------------
# glibc, libgcc, CA certificates and tzdata; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12 AS runtime
COPY --from=builder /build/target/release/linkgate /usr/local/bin/linkgate
# A numeric user, so Kubernetes can verify runAsNonRoot; the chart sets the same ids.
USER 10001:10001
# gRPC (LINKGATE_GRPC_ADDR) and HTTP /healthz, /readyz (LINKGATE_HTTP_ADDR). linkgate's own
# defaults listen on loopback; in a container set both to 0.0.0.0:PORT, as the chart does.
EXPOSE 50051 8080
ENTRYPOINT ["linkgate"]
CMD ["serve"]
