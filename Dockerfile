# eventeum on PostgreSQL 15, 17 or 18 (build argument PG_MAJOR), Debian
# bookworm. A thin wrapper around the scripts CI runs: scripts/setup (build
# tools only) and scripts/package.
#
#   docker build -t eventeum .                                   # PostgreSQL 15
#   docker build --build-arg PG_MAJOR=18 -t eventeum:pg18 .      # or 17
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 eventeum
#   docker compose up        # with anvil, RabbitMQ and Kafka
ARG PG_MAJOR=15

# The build stage starts from the same postgres image: its apt repository
# (apt.postgresql.org) has the server headers of exactly that version.
FROM postgres:${PG_MAJOR}-bookworm AS build
ARG PG_MAJOR
ARG RUST_VERSION=1.95.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev make "postgresql-server-dev-$PG_MAJOR" \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "$RUST_VERSION"
ENV PATH=/root/.cargo/bin:$PATH
ENV PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
WORKDIR /src
COPY scripts/pg-config scripts/pg-config
COPY scripts/setup scripts/setup
RUN EVENTEUM_SETUP=build bash scripts/setup
COPY Cargo.toml Cargo.lock eventeum.control ./
COPY src src
COPY core core
COPY sql sql
COPY scripts/package scripts/package
RUN bash scripts/package

# The official postgres image has Debian's layout, so the package's tree goes in as it is.
FROM postgres:${PG_MAJOR}-bookworm
ARG PG_MAJOR
COPY --from=build /src/target/release/eventeum-pg${PG_MAJOR}/ /
COPY docker/initdb/10-eventeum.sql /docker-entrypoint-initdb.d/
EXPOSE 5432 9187
CMD ["postgres", "-c", "shared_preload_libraries=eventeum", "-c", "eventeum.metrics_address=0.0.0.0:9187"]
