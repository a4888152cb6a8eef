//! A small JSON client for the Kraken REST API and the `/backend` agent
//! protocol: one pooled keep-alive `reqwest::Client` shared by every task.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

/// How long one ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP answer: its status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's error message (`message` here, `detail` in RFC 7807 bodies).
    pub fn message(&self) -> String {
        ["message", "detail", "title"]
            .iter()
            .find_map(|k| self.body.get(k).and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }
}

/// A client of one server, logged in (or not yet).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    token: Option<Arc<str>>,
}

impl Api {
    /// A client of the server at `base` (no trailing slash).
    pub fn new(base: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            http,
            base: base.into(),
            token: None,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Log in (`POST /api/sessions`) and keep the token.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        let a = self
            .call(
                Method::POST,
                "/api/sessions",
                Some(&json!({"user": user, "password": password})),
            )
            .await?;
        if !a.is_success() {
            bail!(
                "cannot log in as '{user}': HTTP {}: {}",
                a.status,
                a.message()
            );
        }
        let token = a.body["token"]
            .as_str()
            .with_context(|| format!("login answer has no token: {}", a.body))?;
        self.token = Some(token.into());
        Ok(())
    }

    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the token, if logged in.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, self.url(path))
            .timeout(REQUEST_TIMEOUT);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Send a request; a transport failure is an error, any status is an answer.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        answer(req, &method, path).await
    }

    /// Send a request and require a 2xx status; returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let a = self.call(method.clone(), path, body).await?;
        if !a.is_success() {
            bail!("{method} {path}: HTTP {}: {}", a.status, a.message());
        }
        Ok(a.body)
    }

    /// `GET`, 2xx required.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.ok(Method::GET, path, None).await
    }

    /// `POST` JSON, 2xx required.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.ok(Method::POST, path, Some(body)).await
    }

    /// `PUT` JSON, 2xx required.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.ok(Method::PUT, path, Some(body)).await
    }

    /// `PATCH` JSON, 2xx required.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.ok(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE`, 2xx required.
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.ok(Method::DELETE, path, None).await
    }

    /// One agent message (`POST /backend` with the agent's key as a bearer
    /// token; the original server ignores it and knows agents by address),
    /// already serialized; `timeout` bounds the whole exchange.
    pub async fn backend_raw(&self, body: Vec<u8>, key: &str, timeout: Duration) -> Result<Answer> {
        let req = self
            .http
            .post(self.url("/backend"))
            .bearer_auth(key)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        answer(req, &Method::POST, "/backend").await
    }
}

async fn answer(req: reqwest::RequestBuilder, method: &Method, path: &str) -> Result<Answer> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {path}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

/// The integer at a JSON pointer, or an error that shows the document.
pub fn id_at(v: &Value, pointer: &str) -> Result<i64> {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .with_context(|| format!("no integer at {pointer} in {}", short(v)))
}

/// A JSON value shortened for an error message.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s
    }
}
