//! The admin listener: Prometheus metrics and a health check, kept off the public listeners.
//!
//! `GET /metrics` is the text exposition format; `GET /healthz` answers 200 when the store
//! answers within a second (503 otherwise) and says whether the IdP has been discovered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::json;

use crate::gate::Gate;

pub struct AdminApp {
    pub gate: Arc<Gate>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, content_type, body) = match path.as_str() {
            "/metrics" => {
                let gate = &self.gate;
                gate.metrics
                    .sessions_cached
                    .set(gate.sessions.cached() as i64);
                (200, "text/plain; version=0.0.4", gate.metrics.render())
            }
            "/healthz" => {
                let store_ok = matches!(
                    tokio::time::timeout(Duration::from_secs(1), self.gate.store.ping()).await,
                    Ok(Ok(()))
                );
                let idp_ok = self.gate.oidc.discover().await.is_ok();
                let body = json!({
                    "status": if store_ok { "ok" } else { "degraded" },
                    "store": if store_ok { "ok" } else { "unreachable" },
                    "idp": if idp_ok { "ok" } else { "unreachable" },
                    "apps": self.gate.policies.load().apps().len(),
                });
                let status = if store_ok { 200 } else { 503 };
                (status, "application/json", body.to_string().into_bytes())
            }
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .header("cache-control", "no-store")
            .body(body)
            .unwrap_or_default()
    }
}
