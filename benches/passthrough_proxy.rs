//! A bare pingora reverse proxy with no authentication: the baseline `benches/load.sh`
//! compares jitgate against. Same server settings as jitgate (`jitgate::ops::server::server_conf`).
//!
//! It only runs when `PASSTHROUGH_LISTEN` and `PASSTHROUGH_UPSTREAM` are set, so a plain
//! `cargo bench` or `cargo test --all-targets` just builds it.
//!
//! With `PASSTHROUGH_HEADERS=1` it also makes the header edits jitgate makes on a logged-in
//! request of the load policy, and nothing else (no cookie check, no session, no route): the
//! session cookie removed and three identity headers added, on the request pingora sends
//! upstream, as jitgate does. That run prices pingora's header API alone, the floor under
//! jitgate's cost that no change in jitgate's own code can remove.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use http::HeaderValue;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

struct Passthrough {
    upstream: String,
    /// Make jitgate's header edits (see the module docs).
    headers: bool,
}

/// Values as long as the load test's demo user's claims.
const USER: HeaderValue = HeaderValue::from_static("alice");
const EMAIL: HeaderValue = HeaderValue::from_static("alice@example.test");
const GROUPS: HeaderValue = HeaderValue::from_static("engineering,wiki-admins");

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        upstream: &mut pingora_http::RequestHeader,
        _c: &mut (),
    ) -> pingora_error::Result<()> {
        if self.headers {
            upstream.remove_header(&http::header::COOKIE);
            upstream.append_header("X-Forwarded-User", USER)?;
            upstream.append_header("X-Forwarded-Email", EMAIL)?;
            upstream.append_header("X-Forwarded-Groups", GROUPS)?;
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _s: &mut Session,
        _c: &mut (),
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let (Ok(listen), Ok(upstream)) = (
        std::env::var("PASSTHROUGH_LISTEN"),
        std::env::var("PASSTHROUGH_UPSTREAM"),
    ) else {
        println!("passthrough_proxy: set PASSTHROUGH_LISTEN and PASSTHROUGH_UPSTREAM to run it (benches/load.sh does)");
        return;
    };
    let threads = std::env::var("PASSTHROUGH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let conf = jitgate::ops::server::server_conf(threads);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(
        &server.configuration,
        Passthrough {
            upstream,
            headers: std::env::var("PASSTHROUGH_HEADERS").is_ok_and(|v| v == "1"),
        },
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run(pingora_core::server::RunArgs::default());
}
