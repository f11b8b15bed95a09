//! Redaction (any thread): secrets out of sight. Node URLs often carry API
//! keys (in the user info, a long path segment or the query) and broker
//! options carry passwords. What lists, logs, error messages and status rows
//! show goes through here.

#![warn(missing_docs)]

use serde_json::{json, Value};

const HIDDEN: &str = "***";
/// Path segments this long are API keys far more often than names
/// (Infura's `/v3/<32 hex>`, Alchemy's `/v2/<key>`, webhook tokens).
const KEY_LIKE_SEGMENT: usize = 16;
/// Option names whose values are always hidden.
const SECRET_KEYS: [&str; 8] = [
    "password",
    "keypem",
    "secret",
    "token",
    "authorization",
    "api-key",
    "apikey",
    "sasl.password",
];

/// A URL with its user info, key-like path segments and query replaced by `***`.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "<unparsable url>".into();
    };
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username(HIDDEN);
        let _ = url.set_password(None);
    }
    if url.query().is_some() {
        url.set_query(Some(HIDDEN));
    }
    if let Some(segments) = url.path_segments() {
        let path: Vec<&str> = segments
            .map(|s| if is_key_like(s) { HIDDEN } else { s })
            .collect();
        url.set_path(&path.join("/"));
    }
    url.to_string()
}

fn is_key_like(segment: &str) -> bool {
    segment.len() >= KEY_LIKE_SEGMENT
}

/// Options as lists show them: secret values hidden, URLs redacted, at any depth.
pub fn redact_options(options: &Value) -> Value {
    match options {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        json!(HIDDEN)
                    } else {
                        redact_options(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::String(s) if s.contains("://") => json!(redact_url(s)),
        Value::Array(items) => Value::Array(items.iter().map(redact_options).collect()),
        other => other.clone(),
    }
}

fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|w| lower.contains(w))
}

/// Removes known secrets from free text, such as a client library's error
/// message that quotes the URL it failed to reach.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// (secret, what to show instead), longest first, so that a whole URL is
    /// replaced by its redacted form before the password inside it.
    secrets: Vec<(String, String)>,
}

impl Scrubber {
    /// The secrets of one URL: the URL itself (as given and as parsed), its
    /// user, password, query and key-like path segments.
    pub fn for_url(raw: &str) -> Self {
        let mut scrubber = Scrubber::default();
        scrubber.add_url(raw);
        scrubber
    }

    /// The secrets of broadcaster options: secret-named values and URLs.
    pub fn for_options(options: &Value) -> Self {
        let mut scrubber = Scrubber::default();
        scrubber.add_options(options);
        scrubber
    }

    fn add_options(&mut self, options: &Value) {
        match options {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) if is_secret_key(k) => self.add(s, HIDDEN),
                        other => self.add_options(other),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.add_options(v)),
            Value::String(s) if s.contains("://") => self.add_url(s),
            _ => {}
        }
    }

    fn add_url(&mut self, raw: &str) {
        let Ok(url) = url::Url::parse(raw) else {
            self.add(raw, "<unparsable url>");
            return;
        };
        let redacted = redact_url(raw);
        if url.as_str() != redacted {
            self.add(raw, &redacted);
            self.add(url.as_str(), &redacted);
        }
        self.add(url.username(), HIDDEN);
        if let Some(password) = url.password() {
            self.add(password, HIDDEN);
        }
        if let Some(query) = url.query() {
            self.add(query, HIDDEN);
        }
        for segment in url.path_segments().into_iter().flatten() {
            if is_key_like(segment) {
                self.add(segment, HIDDEN);
            }
        }
    }

    fn add(&mut self, secret: &str, shown: &str) {
        // Very short strings would blank out ordinary words.
        if secret.len() >= 3 && !self.secrets.iter().any(|(s, _)| s == secret) {
            self.secrets.push((secret.to_string(), shown.to_string()));
            self.secrets
                .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every known secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |text, (secret, shown)| {
                text.replace(secret, shown)
            })
    }
}
