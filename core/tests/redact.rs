//! Secrets stay out of lists, logs and error messages.

use eventeum_core::redact::{redact_url, Scrubber};

const INFURA: &str = "https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161";

#[test]
fn urls_lose_user_info_keys_in_the_path_and_the_query() {
    assert_eq!(redact_url(INFURA), "https://mainnet.infura.io/v3/***");
    assert_eq!(
        redact_url("wss://alice:pw@node.example:8546/ws?token=abc"),
        "wss://***@node.example:8546/ws?***"
    );
    assert_eq!(
        redact_url("http://127.0.0.1:8545"),
        "http://127.0.0.1:8545/"
    );
    assert_eq!(redact_url("http://host/events"), "http://host/events");
    assert_eq!(redact_url("not a url"), "<unparsable url>");
}

#[test]
fn scrubbing_removes_every_part_of_a_secret_url_from_free_text() {
    let url = "http://bob:hunter22@127.0.0.1:1/v3/0123456789abcdef0123456789abcdef?k=zz9";
    let scrubber = Scrubber::for_url(url);
    let error = format!(
        "error sending request for url (http://bob:hunter22@127.0.0.1:1/v3/0123456789abcdef0123456789abcdef?k=zz9): \
         connection refused; user bob, password hunter22, key 0123456789abcdef0123456789abcdef, query k=zz9; raw {url}"
    );
    let shown = scrubber.scrub(&error);
    for secret in [
        "hunter22",
        "0123456789abcdef0123456789abcdef",
        "k=zz9",
        "bob",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(
        shown.contains("127.0.0.1:1"),
        "where it failed stays: {shown}"
    );
    assert!(shown.contains("connection refused"));
}

#[test]
fn a_url_without_secrets_is_left_alone() {
    let scrubber = Scrubber::for_url("http://127.0.0.1:8545");
    let text = "error sending request for url (http://127.0.0.1:8545/)";
    assert_eq!(scrubber.scrub(text), text);
}

#[test]
fn broker_options_scrub_passwords_and_url_credentials() {
    let scrubber = Scrubber::for_options(&serde_json::json!({
        "url": "amqp://guest:s3cretpw@rabbit:5672/%2f",
        "password": "kafkapass",
        "librdkafka": {"sasl.password": "deeppass"},
        "headers": {"Authorization": "Bearer tok123"}
    }));
    let shown =
        scrubber.scrub("amqp://guest:s3cretpw@rabbit failed; kafkapass deeppass Bearer tok123");
    for secret in ["s3cretpw", "kafkapass", "deeppass", "tok123"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}
