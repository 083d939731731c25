//! Sends connector requests to an app's API: bounded timeouts, retries with backoff, the
//! per-app circuit breaker, and one audit event plus metrics for every call.
//!
//! Nothing here logs a request's headers: the credential header is marked sensitive and
//! error messages carry only the operation, the status or the kind of transport failure.

use std::time::{Duration, Instant};

use bytes::Bytes;
use openidconnect::reqwest;
use serde_json::json;

use super::breaker::Breakers;
use crate::policy::connector::{ApiRequest, Connector, Operation, Outcome};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::telemetry::metrics::Metrics;

/// Answers larger than this are cut (an account id is never that far in).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// An app's answer to one call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub outcome: Outcome,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The breaker is open: calls resume after this long.
    Paused(Duration),
    /// Every attempt failed (timeouts, connection errors, 5xx).
    Unavailable(String),
}

/// Who a call is for, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub request_id: Option<&'a str>,
}

pub struct ApiClient {
    http: reqwest::Client,
    pub breakers: Breakers,
    audit: Audit,
    metrics: Metrics,
}

impl ApiClient {
    pub fn new(audit: Audit, metrics: Metrics) -> Self {
        Self {
            http: http_client(),
            breakers: Breakers::default(),
            audit,
            metrics,
        }
    }

    /// Sends `req` (built from `op`), retrying what is worth retrying.
    pub async fn call(
        &self,
        connector: &Connector,
        op: &Operation,
        req: &ApiRequest,
        who: Who<'_>,
    ) -> Result<Answer, CallError> {
        let attempts = connector.retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            if let Err(remaining) = self.breakers.check(&connector.app) {
                return Err(CallError::Paused(remaining));
            }
            let started = Instant::now();
            let result = send(&self.http, connector, req).await;
            let latency = started.elapsed();
            let (status, outcome) = match &result {
                Ok((status, _)) => (*status, op.classify(*status)),
                Err(_) => (0, Outcome::Unavailable),
            };
            self.record(
                connector,
                op,
                who,
                attempt,
                status,
                outcome,
                latency,
                result.as_ref().err(),
            )
            .await;
            match result {
                Ok((status, body)) if outcome != Outcome::Unavailable => {
                    self.breakers.record(&connector.app, true);
                    return Ok(Answer {
                        status,
                        outcome,
                        body,
                    });
                }
                Ok((status, _)) => last = format!("HTTP {status}"),
                Err(e) => last = e,
            }
            self.breakers.record(&connector.app, false);
            if attempt < attempts {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Err(CallError::Unavailable(format!(
            "{} failed {attempts} time(s), last: {last}",
            op.name.as_str()
        )))
    }

    /// Metrics and one audit event per call, written before the next step (the cold path
    /// can afford it, and a CLI run must not end before its events are stored).
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        connector: &Connector,
        op: &Operation,
        who: Who<'_>,
        attempt: u32,
        status: u16,
        outcome: Outcome,
        latency: Duration,
        error: Option<&String>,
    ) {
        let op_name = op.name.as_str();
        let outcome_label = format!("{outcome:?}").to_ascii_lowercase();
        self.metrics
            .provisioning_calls
            .with_label_values(&[&connector.app, op_name, &outcome_label])
            .inc();
        self.metrics
            .provisioning_seconds
            .with_label_values(&[&connector.app, op_name])
            .observe(latency.as_secs_f64());
        self.audit
            .record(
                AuditKind::ProvisioningCall,
                Subject {
                    iss: Some(who.iss),
                    sub: Some(who.sub),
                    app: Some(&connector.app),
                    request_id: who.request_id,
                },
                json!({
                    "operation": op_name,
                    "status": status,
                    "outcome": outcome_label,
                    "latency_ms": latency.as_millis() as u64,
                    "attempt": attempt,
                    "error": error,
                }),
            )
            .await;
    }
}

/// A client for app APIs: no redirects (a redirect would carry the credential elsewhere).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

/// Sends one request once; the status and (at most 1 MiB of) the answer.
pub async fn send(
    http: &reqwest::Client,
    connector: &Connector,
    req: &ApiRequest,
) -> Result<(u16, Bytes), String> {
    let mut builder = http
        .request(req.method.clone(), req.url.as_str())
        .timeout(connector.timeout);
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &req.body {
        builder = builder.body(serde_json::to_vec(body).map_err(|e| e.to_string())?);
    }
    let mut response = builder.send().await.map_err(describe)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&[]));
    }
    Ok((status, Bytes::from(body)))
}

/// 200 ms, 400 ms, 800 ms, ... capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.saturating_sub(1).min(4)).min(2000))
}

/// Everything one operation sleeps between `retries + 1` attempts.
pub fn total_backoff(retries: u32) -> Duration {
    (1..=retries).map(backoff).sum()
}

/// A transport failure in words, without the request's headers.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "the request failed".into()
    }
}
