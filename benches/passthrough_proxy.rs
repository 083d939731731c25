//! A bare pingora reverse proxy with no authentication: the baseline `benches/load.sh`
//! compares jitgate against. Same server settings as jitgate (`jitgate::server::server_conf`).
//!
//! It only runs when `PASSTHROUGH_LISTEN` and `PASSTHROUGH_UPSTREAM` are set, so a plain
//! `cargo bench` or `cargo test --all-targets` just builds it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

struct Passthrough {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();
    fn new_ctx(&self) {}
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
    let conf = jitgate::server::server_conf(threads);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora_proxy::http_proxy_service(&server.configuration, Passthrough { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run(pingora_core::server::RunArgs::default());
}
