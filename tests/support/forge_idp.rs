//! A deliberately dishonest test issuer: it answers every login with the ID token the test
//! asks for (bad signature, `alg: none`, HMAC, wrong `iss`/`aud`, expired, wrong nonce,
//! unknown key, wrong state, another client's `azp`). A real OpenID Provider cannot be made to
//! do this, so this is the only place such tokens come from. It can also rotate its signing
//! key and counts how often its JWKS is fetched. The `Valid` scenario proves the forge itself works, so
//! a refusal in the other scenarios is jitgate's doing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::Response;
use jitgate::demo::signing_key::SigningKey;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Valid,
    BadSignature,
    AlgNone,
    Hs256,
    WrongIssuer,
    WrongAudience,
    Expired,
    NonceMismatch,
    UnknownKey,
    StateMismatch,
    /// `aud` is our client, `azp` another client.
    AzpOfAnotherClient,
    /// `aud` names us and another client, with no `azp`.
    SeveralAudiencesWithoutAzp,
}

pub struct ForgeIdp {
    issuer: Mutex<String>,
    scenario: Mutex<Scenario>,
    nonce: Mutex<String>,
    key: SigningKey,
    rogue_same_kid: SigningKey,
    rogue_other_kid: SigningKey,
    /// Published next to `key` once `rotate` is called, and then signs ID tokens.
    next_key: SigningKey,
    rotated: AtomicBool,
    jwks_fetches: AtomicUsize,
    /// When set, `/jwks` answers 500.
    jwks_broken: AtomicBool,
}

pub struct ForgeService(pub Arc<ForgeIdp>);

impl ForgeIdp {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            issuer: Mutex::new(String::new()),
            scenario: Mutex::new(Scenario::Valid),
            nonce: Mutex::new(String::new()),
            key: SigningKey::generate("forge-1").unwrap(),
            rogue_same_kid: SigningKey::generate("forge-1").unwrap(),
            rogue_other_kid: SigningKey::generate("rogue-2").unwrap(),
            next_key: SigningKey::generate("forge-next").unwrap(),
            rotated: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            jwks_broken: AtomicBool::new(false),
        })
    }

    pub fn set_issuer(&self, issuer: String) {
        *self.issuer.lock().unwrap() = issuer;
    }

    pub fn set_scenario(&self, scenario: Scenario) {
        *self.scenario.lock().unwrap() = scenario;
    }

    /// Signs anything with the key the forge publishes (so jitgate trusts the signature).
    pub fn sign_trusted(&self, header: &Value, claims: &Value) -> String {
        self.key.sign(header, claims).unwrap()
    }

    /// Signs with a key jitgate has never seen.
    pub fn sign_rogue(&self, header: &Value, claims: &Value) -> String {
        self.rogue_other_kid.sign(header, claims).unwrap()
    }

    /// Key rotation as real IdPs do it: the new key is published next to the old one and
    /// signs every ID token from now on.
    pub fn rotate(&self) {
        self.rotated.store(true, Ordering::SeqCst);
    }

    /// Makes `/jwks` answer 500 (or work again).
    pub fn break_jwks(&self, broken: bool) {
        self.jwks_broken.store(broken, Ordering::SeqCst);
    }

    /// How many times the JWKS has been fetched (discovery documents not counted).
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn issuer(&self) -> String {
        self.issuer.lock().unwrap().clone()
    }

    fn id_token(&self) -> String {
        let issuer = self.issuer.lock().unwrap().clone();
        let nonce = self.nonce.lock().unwrap().clone();
        let scenario = *self.scenario.lock().unwrap();
        let now = jitgate::util::clock::now_secs();
        let mut claims = json!({
            "iss": issuer, "sub": "forged-user", "aud": super::CLIENT_ID, "iat": now,
            "exp": now + 300, "nonce": nonce, "preferred_username": "forged",
            "groups": ["engineering", "wiki-admins"],
        });
        match scenario {
            Scenario::WrongIssuer => claims["iss"] = json!("http://127.0.0.1:1/not-the-issuer"),
            Scenario::WrongAudience => claims["aud"] = json!("someone-else"),
            Scenario::Expired => {
                claims["iat"] = json!(now - 1200);
                claims["exp"] = json!(now - 600);
            }
            Scenario::NonceMismatch => claims["nonce"] = json!("not-the-nonce"),
            Scenario::AzpOfAnotherClient => claims["azp"] = json!("another-client"),
            Scenario::SeveralAudiencesWithoutAzp => {
                claims["aud"] = json!([super::CLIENT_ID, "another-client"])
            }
            _ => {}
        }
        let typ = json!({ "typ": "JWT" });
        match scenario {
            Scenario::BadSignature => self.rogue_same_kid.sign(&typ, &claims).unwrap(),
            Scenario::UnknownKey => self.rogue_other_kid.sign(&typ, &claims).unwrap(),
            Scenario::AlgNone => format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            ),
            Scenario::Hs256 => {
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                let key =
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, super::CLIENT_SECRET.as_bytes());
                let tag = ring::hmac::sign(&key, input.as_bytes());
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
            }
            _ if self.rotated.load(Ordering::SeqCst) => self.next_key.sign(&typ, &claims).unwrap(),
            _ => self.key.sign(&typ, &claims).unwrap(),
        }
    }
}

#[async_trait]
impl ServeHttp for ForgeService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let forge = &self.0;
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let query: HashMap<String, String> =
            url::form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        while let Ok(Some(_)) = session.read_request_body().await {}
        let issuer = forge.issuer.lock().unwrap().clone();
        let (status, location, body): (u16, Option<String>, Value) = match path.as_str() {
            "/.well-known/openid-configuration" => (
                200,
                None,
                json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": format!("{issuer}/token"),
                    "jwks_uri": format!("{issuer}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                }),
            ),
            "/jwks" if forge.jwks_broken.load(Ordering::SeqCst) => {
                forge.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                (500, None, json!({ "error": "broken on purpose" }))
            }
            "/jwks" => {
                forge.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let mut keys = vec![forge.key.jwk()];
                if forge.rotated.load(Ordering::SeqCst) {
                    keys.push(forge.next_key.jwk());
                }
                (200, None, json!({ "keys": keys }))
            }
            "/authorize" => {
                *forge.nonce.lock().unwrap() = query.get("nonce").cloned().unwrap_or_default();
                let mut state = query.get("state").cloned().unwrap_or_default();
                if *forge.scenario.lock().unwrap() == Scenario::StateMismatch {
                    state = "tampered-state".into();
                }
                let redirect = query.get("redirect_uri").cloned().unwrap_or_default();
                let target = format!("{redirect}?code=forge-code&state={state}");
                (302, Some(target), json!({}))
            }
            "/token" => (
                200,
                None,
                json!({
                    "access_token": "forge-access-token", "token_type": "Bearer",
                    "expires_in": 300, "id_token": forge.id_token(),
                }),
            ),
            _ => (404, None, json!({ "error": "not found" })),
        };
        let text = body.to_string();
        let mut builder = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("content-length", text.len());
        if let Some(l) = location {
            builder = builder.header("location", l);
        }
        builder.body(text.into_bytes()).unwrap()
    }
}
