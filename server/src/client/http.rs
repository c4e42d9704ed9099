//! The client's one door to a server: its URL and API token, JSON calls, and the errors a
//! command ends with — each with the exit code that is its verdict for a pipeline.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Exit codes of the client commands (documented in `docs/cli.md`).
pub mod exit {
    pub const DONE: u8 = 0;
    pub const ABORTED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const TIMEOUT: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
}

/// Why a command failed, and its exit code. The message never holds a token.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: exit::USAGE, message: message.into() }
    }
    pub fn aborted(message: impl Into<String>) -> Self {
        Self { code: exit::ABORTED, message: message.into() }
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self { code: exit::TIMEOUT, message: message.into() }
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self { code: exit::UNREACHABLE, message: message.into() }
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

pub struct Client {
    /// `https://slipstream.example.org` (no trailing slash).
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::usage(format!("`{base}` is not a server URL (http://HOST:PORT or https://HOST)")));
        }
        install_crypto();
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .map_err(|e| Failure::unreachable(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and reads a JSON answer; an error answer becomes a [`Failure`] naming what the
    /// server said.
    pub async fn json<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
        let answer = self.send(r).await?;
        answer.json().await.map_err(|e| Failure::unreachable(format!("the server's answer is not what this client expects: {e}")))
    }

    pub async fn text(&self, r: reqwest::RequestBuilder) -> Result<String> {
        let answer = self.send(r).await?;
        answer.text().await.map_err(|e| Failure::unreachable(format!("reading the server's answer: {e}")))
    }

    pub async fn bytes(&self, r: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        let answer = self.send(r).await?;
        answer.bytes().await.map(|b| b.to_vec()).map_err(|e| Failure::unreachable(format!("reading the server's answer: {e}")))
    }

    pub async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let answer = r.send().await.map_err(|e| Failure::unreachable(format!("cannot reach {}: {}", self.base, without_url(&e))))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(answer);
        }
        let body = answer.text().await.unwrap_or_default();
        Err(refusal(status, &body))
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(self.request(Method::GET, path)).await
    }
}

/// A reqwest error without the URL it carries (a URL may hold a query the user typed).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s = format!("{s}: {inner}");
        source = inner.source();
    }
    s
}

/// What an error answer means for the user, and its exit code.
pub fn refusal(status: StatusCode, body: &str) -> Failure {
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?.as_str()?.to_string();
            Some(match v.get("field").and_then(Value::as_str) {
                Some(field) if !error.contains(field) => format!("{error} (field `{field}`)"),
                _ => error,
            })
        })
        .unwrap_or_else(|| body.trim().chars().take(300).collect());
    let message = match status {
        StatusCode::UNAUTHORIZED => format!("not signed in, or the token was revoked: {said} (run `slipstream login URL`)"),
        StatusCode::FORBIDDEN => format!("not allowed: {said}"),
        StatusCode::NOT_FOUND => format!("not found: {said}"),
        StatusCode::TOO_MANY_REQUESTS => format!("over a quota: {said}"),
        s if s.is_server_error() => format!("the server failed ({s}): {said}"),
        s => format!("{said} ({s})"),
    };
    Failure { code: if status.is_server_error() { exit::UNREACHABLE } else { exit::USAGE }, message }
}

/// rustls needs a process-wide crypto provider for https servers; ring is the one compiled in.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_say_what_the_server_said_with_a_verdict() {
        let table: [(u16, &str, u8, &str); 6] = [
            (400, r#"{"error":"bad value","field":"multiplicity.web"}"#, exit::USAGE, "bad value (field `multiplicity.web`)"),
            (401, r#"{"error":"token revoked"}"#, exit::USAGE, "not signed in, or the token was revoked: token revoked"),
            (404, r#"{"error":"no module `x/y`"}"#, exit::USAGE, "not found: no module `x/y`"),
            (429, r#"{"error":"quota of 2 on local"}"#, exit::USAGE, "over a quota: quota of 2 on local"),
            (503, "engine down", exit::UNREACHABLE, "the server failed (503 Service Unavailable): engine down"),
            (409, r#"{"error":"run is aborted"}"#, exit::USAGE, "run is aborted (409 Conflict)"),
        ];
        for (status, body, code, want) in table {
            let f = refusal(StatusCode::from_u16(status).unwrap(), body);
            assert_eq!(f.code, code, "{status}");
            assert!(f.message.starts_with(want), "{status}: {}", f.message);
        }
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(Client::new("localhost:8080", None).is_err());
        assert_eq!(Client::new("http://127.0.0.1:8080/", None).unwrap().base, "http://127.0.0.1:8080");
    }
}
