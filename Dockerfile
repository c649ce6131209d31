# syntax=docker/dockerfile:1
# Build stage: compile the release binary with the pinned toolchain.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything the workspace manifest names must be present: both crates, the
# migrations embedded by `sqlx::migrate!`, and the declared `[[test]]` target.
COPY rust-toolchain.toml Cargo.toml Cargo.lock ./
COPY actors actors
COPY src src
COPY migrations migrations
COPY tests tests
# Cache the registry and the target dir between builds; the binary is copied
# out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin loan-tracker \
 && cp target/release/loan-tracker /usr/local/bin/loan-tracker

# Runtime stage: a small image with only the binary, running as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app loan-tracker \
 && mkdir -p /app/data && chown loan-tracker /app/data
COPY --from=build /usr/local/bin/loan-tracker /usr/local/bin/loan-tracker
USER loan-tracker
WORKDIR /app
ENV HTTP_ADDR=0.0.0.0:8080 DATA_DIR=/app/data
EXPOSE 8080
# Liveness for plain `docker run`; compose declares its own check too.
HEALTHCHECK --interval=10s --timeout=3s --retries=10 CMD ["loan-tracker", "healthcheck"]
# SIGTERM (docker stop) drains in-flight requests and loan actors, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["loan-tracker"]
CMD ["serve"]
