# The one Updraft image: the `updraft` binary with its built-in operators and the web app
# embedded. The same image runs the scheduler, the API server and every task pod.
#
#   docker build -t updraft:dev .
#
# Build stage: the pinned toolchain (rust-toolchain.toml) with the WebAssembly targets the
# build scripts compile the built-in operators (wasip2) and the web app (unknown-unknown) for.
FROM rust:1.95.0-slim-bookworm AS build
RUN rustup target add wasm32-wasip2 wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin updraft \
    && cp target/release/updraft /usr/local/bin/updraft

# Run stage: a slim base and what the binary needs at run time: glibc, libm and libgcc_s (in the
# base image; `ldd target/release/updraft` lists nothing else) and the platform's CA certificates,
# which rustls trusts for every TLS peer (PostgreSQL/RDS with sslmode=verify-ca|verify-full
# without sslrootcert, S3, HTTPS operators); a non-root user whose uid matches the manifests'
# securityContext (10001).
FROM debian:bookworm-slim
# Not pinned to a Debian package version (DL3008): Debian removes superseded versions, which
# would break the build; security updates of ca-certificates are wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 updraft \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/updraft --create-home --shell /usr/sbin/nologin updraft
COPY --from=build /usr/local/bin/updraft /usr/local/bin/updraft
USER 10001:10001
WORKDIR /var/lib/updraft
ENV UPDRAFT__CORE__DATA_DIR=/var/lib/updraft
EXPOSE 8080 9090
ENTRYPOINT ["updraft"]
CMD ["--help"]
