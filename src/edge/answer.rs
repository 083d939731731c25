//! Writing jitgate's own answers: an endpoint's [`Reply`], or a [`Denial`] as
//! `edge::refusal` renders it. Every such answer carries the request id, `no-store` and the
//! headers that keep it out of frames and sniffers.

use bytes::Bytes;
use http::Method;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::proxy::{JitgateProxy, RequestCtx};
use super::refusal::{self, Format};
use crate::endpoints::denial::Denial;
use crate::endpoints::Reply;

/// Carries the request id on every answer jitgate writes itself.
const X_REQUEST_ID: &str = "X-Request-Id";

impl JitgateProxy {
    pub(super) async fn send_reply(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        reply: Reply,
    ) -> Result<()> {
        match reply {
            Reply::Redirect { location, cookies } => {
                let mut resp = ResponseHeader::build(302, Some(4))?;
                resp.insert_header("location", location)?;
                for c in cookies {
                    resp.append_header("set-cookie", c)?;
                }
                write(session, ctx, resp, None).await
            }
            Reply::Page {
                status,
                html,
                cookies,
            } => {
                let mut resp = ResponseHeader::build(status, Some(4))?;
                resp.insert_header("content-type", "text/html; charset=utf-8")?;
                for c in cookies {
                    resp.append_header("set-cookie", c)?;
                }
                write(session, ctx, resp, Some(Bytes::from(html))).await
            }
            Reply::Json { status, body } => {
                let mut resp = ResponseHeader::build(status, Some(4))?;
                resp.insert_header("content-type", "application/json")?;
                write(session, ctx, resp, Some(Bytes::from(body))).await
            }
            Reply::Scim {
                status,
                body,
                location,
            } => {
                let mut resp = ResponseHeader::build(status, Some(4))?;
                resp.insert_header("content-type", "application/scim+json")?;
                if let Some(location) = location {
                    resp.insert_header("location", location)?;
                }
                let body = (!body.is_empty()).then(|| Bytes::from(body));
                write(session, ctx, resp, body).await
            }
            Reply::Empty { status } => {
                let resp = ResponseHeader::build(status, Some(4))?;
                write(session, ctx, resp, None).await
            }
        }
    }

    /// Writes a [`Denial`]'s answer, as `refusal::answer` (the one table) renders it.
    pub(super) async fn send_denial(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        denial: &Denial,
    ) -> Result<()> {
        let format = Format::for_path(session.req_header().uri.path());
        let rendered = refusal::answer(denial, ctx.request_id.as_str(), format);
        let mut resp = ResponseHeader::build(rendered.status, Some(4))?;
        if let Some(location) = rendered.location {
            resp.insert_header("location", location)?;
            if let Some(cookie) = rendered.set_cookie {
                resp.append_header("set-cookie", cookie)?;
            }
            return write(session, ctx, resp, None).await;
        }
        if let Some(content_type) = rendered.content_type {
            resp.insert_header("content-type", content_type)?;
        }
        for (name, value) in rendered.headers {
            resp.insert_header(name, value)?;
        }
        if rendered.clear_cookie {
            let cookies = self.gate.cookies;
            resp.append_header("set-cookie", cookies.clear(cookies.session()))?;
        }
        write(session, ctx, resp, Some(Bytes::from(rendered.body))).await
    }
}

/// Writes a complete response of our own, with the headers every such answer carries.
async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    body: Option<Bytes>,
) -> Result<()> {
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header(X_REQUEST_ID, ctx.request_id.header_value())?;
    resp.insert_header("referrer-policy", "no-referrer")?;
    resp.insert_header("x-content-type-options", "nosniff")?;
    resp.insert_header("x-frame-options", "DENY")?;
    let head_only = session.req_header().method == Method::HEAD;
    let len = body.as_ref().map(|b| b.len()).unwrap_or(0);
    resp.insert_header("content-length", len.to_string())?;
    match body {
        Some(body) if !head_only && !body.is_empty() => {
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await
        }
        _ => session.write_response_header(Box::new(resp), true).await,
    }
}
