//! The Dockerfile and docker-compose.yml cannot be built here (no container
//! engine), so they stay thin wrappers around scripts CI runs; this checks
//! that every file they name exists.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn assert_exists(named_in: &str, path: &str) {
    let path = path.trim_start_matches("./").trim_end_matches('/');
    assert!(
        root().join(path).exists(),
        "{named_in} names {path}, which does not exist"
    );
}

#[test]
fn dockerfile_copies_and_runs_only_files_that_exist() {
    let dockerfile = read("Dockerfile");
    let mut copied = 0;
    for line in dockerfile.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            Some(&"COPY") if !words.iter().any(|w| w.starts_with("--from")) => {
                for source in &words[1..words.len() - 1] {
                    assert_exists("Dockerfile", source);
                    copied += 1;
                }
            }
            Some(&"RUN") => {
                for script in words.iter().filter(|w| w.starts_with("scripts/")) {
                    assert_exists("Dockerfile", script);
                    assert!(
                        dockerfile.contains(&format!("COPY {script} ")),
                        "{script} runs before it is copied in"
                    );
                }
            }
            _ => {}
        }
    }
    assert!(copied >= 6, "the Dockerfile copies the sources");
    // What the final stage copies is what scripts/package writes.
    assert!(read("scripts/package").contains("OUT=target/release/eventeum-pg$MAJOR"));
    assert!(dockerfile.contains("COPY --from=build /src/target/release/eventeum-pg${PG_MAJOR}/ /"));
    // Both stages are the postgres image of the version asked for.
    assert!(dockerfile.contains("ARG PG_MAJOR=15"));
    assert_eq!(
        dockerfile
            .matches("FROM postgres:${PG_MAJOR}-bookworm")
            .count(),
        2
    );
}

#[test]
fn compose_mounts_only_files_that_exist() {
    let compose = read("docker-compose.yml");
    assert!(compose.contains("build: ."));
    assert_exists("docker-compose.yml", "Dockerfile");
    let mounts: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./"))
        .map(|m| m.split(':').next().unwrap_or(m))
        .collect();
    assert!(!mounts.is_empty());
    for mount in mounts {
        assert_exists("docker-compose.yml", mount);
    }
}
