# eventeum on PostgreSQL 15, Debian bookworm. A thin wrapper around the
# scripts CI runs: scripts/setup (build tools only) and scripts/package.
#
#   docker build -t eventeum .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 eventeum
#   docker compose up        # with anvil, RabbitMQ and Kafka
FROM debian:bookworm AS build
ARG RUST_VERSION=1.95.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "$RUST_VERSION"
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY scripts/setup scripts/setup
RUN EVENTEUM_SETUP=build bash scripts/setup
COPY Cargo.toml Cargo.lock eventeum.control ./
COPY src src
COPY core core
COPY sql sql
COPY scripts/package scripts/package
RUN bash scripts/package

# The official postgres image has Debian's layout, so the package's tree goes in as it is.
FROM postgres:15-bookworm
COPY --from=build /src/target/release/eventeum-pg15/ /
COPY docker/initdb/10-eventeum.sql /docker-entrypoint-initdb.d/
EXPOSE 5432 9187
CMD ["postgres", "-c", "shared_preload_libraries=eventeum", "-c", "eventeum.metrics_address=0.0.0.0:9187"]
