//! The metrics endpoint: Prometheus text at `/metrics` and Eventeum's health
//! JSON at `/monitoring/health`, served on tokio threads. The main thread
//! renders both from SQL (`eventeum.prometheus()`, `eventeum.health()`) and
//! publishes them here; a scrape never waits on Postgres.

#![warn(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the endpoint serves, as last rendered by the main thread.
#[derive(Debug, Clone, Default)]
pub struct Pages {
    /// `/metrics`: Prometheus' text format.
    pub metrics: String,
    /// `/monitoring/health`: Eventeum's health JSON.
    pub health: String,
    /// Whether `/monitoring/health` answers 200 (else 503).
    pub healthy: bool,
}

/// Serves `pages` on `address` until the task is aborted.
pub async fn serve(address: SocketAddr, pages: watch::Receiver<Pages>) {
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, %error, "cannot serve metrics");
            return;
        }
    };
    tracing::info!(%address, "serving metrics at /metrics and health at /monitoring/health");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                continue;
            }
        };
        let pages = pages.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(request.uri().path(), &pages.borrow());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(path: &str, pages: &Pages) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" | "/monitoring/prometheus" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            pages.metrics.clone(),
        ),
        "/health" | "/monitoring/health" => (
            if pages.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            "application/json",
            pages.health.clone(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /monitoring/health\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response builds")
}
