//! The HTTP transport (tokio): JSON-RPC over reqwest with a cap on the size
//! of an answer and a deadline per request. alloy's own HTTP transport reads
//! whole bodies, so a node could make the worker (inside the database
//! server) hold gigabytes; this one stops reading at the cap.

use std::task::{Context, Poll};
use std::time::Duration;

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use url::Url;

/// An answer larger than the node's `maxResponseBytes`; nothing past the cap
/// was read.
#[derive(Debug, thiserror::Error)]
#[error("the answer is larger than {limit} bytes")]
pub struct ResponseTooLarge {
    /// `maxResponseBytes`.
    pub limit: usize,
}

/// JSON-RPC over HTTP(S), reading at most `limit` bytes of an answer.
#[derive(Clone)]
pub struct CappedHttp {
    client: reqwest::Client,
    url: Url,
    limit: usize,
}

impl CappedHttp {
    /// A transport to `url`; each request (answer included) must finish
    /// within `timeout`. `idle` bounds the pooled connections: how many per
    /// host, and for how long.
    pub fn new(
        url: Url,
        limit: usize,
        timeout: Duration,
        idle: (usize, Duration),
    ) -> Result<Self, reqwest::Error> {
        // Names resolve through eventeum.allowed_hosts; redirects too.
        let client = crate::netpolicy::http_client()
            .timeout(timeout)
            .pool_max_idle_per_host(idle.0)
            .pool_idle_timeout(idle.1)
            .build()?;
        Ok(CappedHttp { client, url, limit })
    }

    async fn send(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let mut response = self
            .client
            .post(self.url)
            .json(&request)
            .headers(request.headers())
            .send()
            .await
            .map_err(|e| TransportErrorKind::custom_str(&crate::error::display_chain(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        if response
            .content_length()
            .is_some_and(|n| n > self.limit as u64)
        {
            return Err(TransportErrorKind::custom(ResponseTooLarge {
                limit: self.limit,
            }));
        }
        // Sized once when the length is known: a growing buffer would hold
        // up to three times the answer while it doubles.
        let mut body = Vec::with_capacity(
            response
                .content_length()
                .map_or(0, |n| n as usize)
                .min(self.limit),
        );
        while let Some(chunk) = response.chunk().await.map_err(TransportErrorKind::custom)? {
            if body.len() + chunk.len() > self.limit {
                return Err(TransportErrorKind::custom(ResponseTooLarge {
                    limit: self.limit,
                }));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // A JSON-RPC error in a refusal is kept as such, except for a
            // rate limit, whose status and Retry-After say how long to wait.
            if status.as_u16() != 429 {
                if let Ok(packet) = serde_json::from_slice::<ResponsePacket>(&body) {
                    if packet.is_error() {
                        return Ok(packet);
                    }
                }
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            return Err(TransportErrorKind::http_error_with_retry_after(
                status.as_u16(),
                text,
                retry_after,
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| TransportError::deser_err(e, String::from_utf8_lossy(&body)))
    }
}

impl tower::Service<RequestPacket> for CappedHttp {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}
