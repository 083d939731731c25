//! A browser-like HTTP client: cookie jar, manual redirects, form posts.
//!
//! Redirects are followed by hand so tests can see every hop. `wiki.example.test` and
//! `unknown.example.test` resolve to the jitgate under test, as DNS would in production.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::redirect::Policy;

use super::TestUser;

#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// `HTTP/1.1` or `HTTP/2.0` (an HTTPS jitgate offers h2 by ALPN).
    pub version: String,
}

pub struct Browser {
    client: Client,
}

impl Browser {
    pub fn new(port: u16, https: bool) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut builder = Client::builder()
            .redirect(Policy::none())
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .resolve(super::APP_HOST, addr)
            .resolve(super::SECOND_APP_HOST, addr)
            .resolve("unknown.example.test", addr);
        if https {
            let pem = std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/dev.crt"),
            )
            .expect("dev cert");
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"));
        }
        Self {
            client: builder.build().expect("client"),
        }
    }

    pub fn send(&self, url: &str, request: RequestBuilder) -> Page {
        let again = request.try_clone();
        let resp = match request.send() {
            Ok(resp) => resp,
            // A pooled keep-alive connection the server closed just as it was reused: the
            // request never reached the server, and browsers send it again on a fresh
            // connection. So does this one, once, saying so.
            Err(e) if chain(&e).contains("connection closed before message completed") => {
                eprintln!("request to {url}: {}; sending it again", chain(&e));
                again
                    .expect("a request that can be sent again")
                    .send()
                    .unwrap_or_else(|e| panic!("request to {url} failed: {}", chain(&e)))
            }
            Err(e) => panic!("request to {url} failed: {}", chain(&e)),
        };
        let status = resp.status().as_u16();
        let version = format!("{:?}", resp.version());
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let location = header("location").map(|l| absolute(url, &l));
        let set_cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        Page {
            url: url.to_string(),
            status,
            location,
            set_cookies,
            headers,
            body: resp.text().unwrap_or_default(),
            version,
        }
    }

    pub fn get(&self, url: &str) -> Page {
        self.send(url, self.client.get(url))
    }

    /// GET asking the echo app for JSON.
    pub fn get_json(&self, url: &str) -> Page {
        self.send(
            url,
            self.client.get(url).header("accept", "application/json"),
        )
    }

    pub fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut req = self.client.get(url).header("accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(url, req)
    }

    /// A JSON POST, as a script on the page would send it.
    pub fn post_json(&self, url: &str, body: &serde_json::Value) -> Page {
        self.send(
            url,
            self.client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// A form POST with extra headers (e.g. a foreign `Origin`).
    pub fn post_form_with(
        &self,
        url: &str,
        form: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.client.post(url).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(url, req)
    }

    pub fn post_form(&self, url: &str, form: &[(String, String)]) -> Page {
        self.send(url, self.client.post(url).form(form))
    }

    pub fn request(&self, method: &str, url: &str) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.send(url, self.client.request(method, url))
    }

    /// Follows redirects from `page`; returns every page seen, the last one final.
    pub fn follow_from(&self, page: Page) -> Vec<Page> {
        self.follow_from_until(page, None)
    }

    /// As `follow_from`, but does not follow a redirect to a URL containing `stop_at`.
    fn follow_from_until(&self, page: Page, stop_at: Option<&str>) -> Vec<Page> {
        let mut chain = vec![page];
        for _ in 0..20 {
            let last = chain.last().expect("non-empty");
            match (&last.location, last.status) {
                (Some(next), _) if stop_at.is_some_and(|s| next.contains(s)) => return chain,
                (Some(next), 301 | 302 | 303 | 307 | 308) => {
                    let next = next.clone();
                    chain.push(self.get_json(&next));
                }
                _ => return chain,
            }
        }
        panic!(
            "redirect loop: {:?}",
            chain.iter().map(|p| &p.url).collect::<Vec<_>>()
        );
    }

    pub fn follow(&self, url: &str) -> Vec<Page> {
        let first = self.get_json(url);
        self.follow_from(first)
    }

    /// Opens `url`, signs in at the IdP's form as `user`, and follows back; returns the chain
    /// after the form post (the last page is where the browser ends up).
    pub fn login(&self, url: &str, user: &TestUser) -> Vec<Page> {
        self.login_until(url, user, None)
    }

    /// As `login`, but stops before following a redirect to a URL containing `stop_at`
    /// (the last page returned is that redirect).
    pub fn login_until(&self, url: &str, user: &TestUser, stop_at: Option<&str>) -> Vec<Page> {
        let chain = self.follow(url);
        let form_page = chain.last().expect("page");
        assert!(
            form_page.url.contains("/interaction/"),
            "expected the IdP login form, got {} {}",
            form_page.url,
            form_page.status
        );
        let action = form_action(&form_page.body).expect("login form");
        let action = absolute(&form_page.url, &action);
        let posted = self.post_form(
            &action,
            &[
                ("login".to_string(), user.login.to_string()),
                ("password".to_string(), user.password.to_string()),
            ],
        );
        self.follow_from_until(posted, stop_at)
    }

    /// Submits the first form on a page with all its hidden inputs (plus `extra`).
    pub fn submit_first_form(&self, page: &Page, extra: &[(&str, &str)]) -> Page {
        let action = form_action(&page.body).expect("a form");
        let action = absolute(&page.url, &action);
        let mut fields = hidden_inputs(&page.body);
        for (k, v) in extra {
            fields.push((k.to_string(), v.to_string()));
        }
        self.post_form(&action, &fields)
    }
}

pub fn absolute(base: &str, location: &str) -> String {
    match url::Url::parse(base).and_then(|b| b.join(location)) {
        Ok(u) => u.to_string(),
        Err(_) => location.to_string(),
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

pub fn form_action(html: &str) -> Option<String> {
    let start = html.find("<form")?;
    let end = html[start..].find('>')? + start;
    attr(&html[start..=end], "action")
}

pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let form_start = html.find("<form").unwrap_or(0);
    let form_end = html[form_start..]
        .find("</form>")
        .map(|e| e + form_start)
        .unwrap_or(html.len());
    let form = &html[form_start..form_end];
    form.match_indices("<input")
        .filter_map(|(i, _)| {
            let end = form[i..].find('>')? + i;
            let tag = &form[i..=end];
            (attr(tag, "type").as_deref() == Some("hidden"))
                .then(|| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
                .flatten()
        })
        .collect()
}

/// An error with every cause, for a failure message that says what really happened.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
