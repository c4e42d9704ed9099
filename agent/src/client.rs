//! Calls to the server. Network errors and 502/503/504 are retried with backoff for up to
//! `SLIPSTREAM_RETRY_SECONDS` (default 600), so a server restart does not fail a script; every
//! call the agent makes is idempotent. Failures map to the exit codes of the original commands.

use std::time::{Duration, Instant};

pub const EXIT_VALUE: u8 = 3;
pub const EXIT_NETWORK: u8 = 4;
pub const EXIT_SERVER: u8 = 5;
pub const EXIT_SECURITY: u8 = 6;
pub const EXIT_USAGE: u8 = 7;
pub const EXIT_ABORTED: u8 = 8;
pub const EXIT_TIMEOUT: u8 = 9;

pub struct Client {
    base: String,
    pub run: String,
    pub instance: String,
    token: String,
    agent: ureq::Agent,
    retry_for: Duration,
}

#[derive(Debug)]
pub enum Failure {
    /// The server answered with this status and message.
    Status(u16, String),
    /// The server could not be reached, even after retrying.
    Network(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Status(409, _) => EXIT_ABORTED,
            Failure::Status(408, _) => EXIT_TIMEOUT,
            Failure::Status(401 | 403, _) => EXIT_SECURITY,
            Failure::Status(400 | 404 | 413, _) => EXIT_VALUE,
            Failure::Status(_, _) => EXIT_SERVER,
            Failure::Network(_) => EXIT_NETWORK,
        }
    }
    pub fn message(&self) -> String {
        match self {
            Failure::Status(code, body) => {
                let msg = serde_json::from_str::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                    .unwrap_or_else(|| body.trim().to_string());
                format!("{msg} (HTTP {code})")
            }
            Failure::Network(e) => format!("cannot reach the server: {e}"),
        }
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run this on a Slipstream node (or export it)"))
}

impl Client {
    /// The local address this host uses to reach the server (a UDP "connect" only picks the
    /// route; nothing is sent).
    pub fn own_address(&self) -> Option<String> {
        let host_port = self.base.split("://").nth(1)?.split('/').next()?;
        let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
        socket.connect(host_port).ok()?;
        Some(socket.local_addr().ok()?.ip().to_string())
    }

    pub fn from_env() -> Result<Self, String> {
        let retry_for = std::env::var("SLIPSTREAM_RETRY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
        Ok(Self {
            base: env("SLIPSTREAM_SERVICEURL")?.trim_end_matches('/').to_string(),
            run: env("SLIPSTREAM_DIID")?,
            instance: env("SLIPSTREAM_NODE_INSTANCE_NAME")?,
            token: env("SLIPSTREAM_RUN_TOKEN")?,
            agent: ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).build(),
            retry_for: Duration::from_secs(retry_for),
        })
    }

    /// This instance's node and index (`web.2` → ("web", 2)).
    pub fn node_index(&self) -> (String, u32) {
        match self.instance.rsplit_once('.') {
            Some((n, i)) => (n.to_string(), i.parse().unwrap_or(1)),
            None => (self.instance.clone(), 1),
        }
    }

    /// `path` is below `/api/v1/runs/<run>`.
    pub fn call(&self, method: &str, path: &str, body: Option<&[u8]>, read_timeout: Duration) -> Result<String, Failure> {
        let url = format!("{}/api/v1/runs/{}{path}", self.base, self.run);
        let start = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let req = self
                .agent
                .request(method, &url)
                .set("Authorization", &format!("Bearer {}", self.token))
                .timeout(read_timeout + Duration::from_secs(10));
            let res = match body {
                Some(b) => req.set("Content-Type", "application/octet-stream").send_bytes(b),
                None => req.call(),
            };
            let retry = match res {
                Ok(r) => return r.into_string().map_err(|e| Failure::Network(e.to_string())),
                Err(ureq::Error::Status(code, r)) if !matches!(code, 502..=504) => {
                    return Err(Failure::Status(code, r.into_string().unwrap_or_default()));
                }
                Err(ureq::Error::Status(code, _)) => format!("HTTP {code}"),
                Err(ureq::Error::Transport(t)) => t.to_string(),
            };
            if start.elapsed() >= self.retry_for {
                return Err(Failure::Network(retry));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    pub fn get(&self, path: &str, read_timeout: Duration) -> Result<String, Failure> {
        self.call("GET", path, None, read_timeout)
    }
}

/// Percent-encodes a parameter key for a URL path.
pub fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
