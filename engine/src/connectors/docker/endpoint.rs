//! One engine of a Docker connector: where it is, how to connect to it, how the agent gets into
//! its containers and where those agents reach the server.
//!
//! - `unix://PATH` — a socket on this host; the agent is bind-mounted.
//! - `tcp://HOST:PORT` (or `http://`) — plain TCP, for an engine on a trusted network.
//! - `tcp://HOST:PORT` with the connector's `tls_ca` option — TLS, and **each user connects
//!   with their own client certificate**: their credential for the connector is the PEM of a
//!   private key and the certificate the engine's CA signed for it. Without one, or with one the
//!   engine refuses, the run aborts naming the connector and what is wrong.
//!
//! An engine on another host cannot see this host's files, so for `tcp://` endpoints the agent
//! is uploaded into each container (an archive) instead of mounted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::connector::Account;
use crate::{Error, Result};

/// Seconds a request to the engine may take.
const TIMEOUT_SECONDS: u64 = 120;

pub(super) struct Endpoint {
    pub url: String,
    /// The CA that signed the engine's certificate: TLS with per-user client certificates.
    tls_ca: Option<PathBuf>,
    /// Where users' client keys are written for the TLS library (which reads files): a
    /// directory only the server's user can read.
    tls_dir: PathBuf,
    /// The engine is on another host: the agent is uploaded, not mounted.
    pub remote: bool,
    /// The address of this host the server listens on for this engine's agents, as configured.
    configured_address: Option<IpAddr>,
    /// …or as found on the engine's bridge network.
    pub found_address: OnceLock<IpAddr>,
    /// Where this engine's agents reach the server.
    pub agent_url: OnceLock<String>,
    shared: Mutex<Option<bollard::Docker>>,
    /// TLS clients by the digest of the user's credential (the credential itself is not kept).
    per_user: Mutex<HashMap<String, bollard::Docker>>,
}

/// What a user's TLS credential holds: a private key and its certificate chain, in PEM.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientKey {
    pub key: String,
    pub certificates: String,
}

impl ClientKey {
    /// Splits the PEM blocks of a credential; says what is missing (never what is there).
    pub fn parse(credential: &str) -> std::result::Result<Self, String> {
        let mut key = String::new();
        let mut certificates = String::new();
        let mut rest = credential;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let label_end = block[11..].find("-----").map(|i| i + 11).ok_or("a PEM block has no closing dashes")?;
            let label = &block[11..label_end];
            let end_marker = format!("-----END {label}-----");
            let body_end = block.find(&end_marker).ok_or_else(|| format!("the PEM block {label} has no END line"))?;
            let end = body_end + end_marker.len();
            let text = pem_block(label, &block[label_end + 5..body_end]);
            if label.ends_with("PRIVATE KEY") {
                if !key.is_empty() {
                    return Err("it holds more than one private key".into());
                }
                key = text;
            } else if label == "CERTIFICATE" {
                certificates.push_str(&text);
            }
            rest = &block[end..];
        }
        match (key.is_empty(), certificates.is_empty()) {
            (true, true) => Err("it holds no PEM private key and no certificate".into()),
            (true, false) => Err("it holds no PEM private key".into()),
            (false, true) => Err("it holds no PEM certificate".into()),
            (false, false) => Ok(Self { key, certificates }),
        }
    }
}

/// A PEM block laid out again: a password field in a browser drops the line breaks of what is
/// pasted into it, and the TLS library needs them.
fn pem_block(label: &str, body: &str) -> String {
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Endpoint {
    pub fn new(url: &str, tls_ca: Option<PathBuf>, tls_dir: PathBuf, agent_address: Option<IpAddr>) -> std::result::Result<Self, String> {
        let remote = url.starts_with("tcp://") || url.starts_with("http://");
        if !(remote || url.starts_with("unix://")) {
            return Err(format!("endpoint `{url}` is not unix://PATH or tcp://HOST:PORT"));
        }
        if tls_ca.is_some() && !url.starts_with("tcp://") {
            return Err(format!("endpoint `{url}`: tls_ca applies to tcp:// endpoints"));
        }
        Ok(Self {
            url: url.to_string(),
            tls_ca,
            tls_dir,
            remote,
            configured_address: agent_address,
            found_address: OnceLock::new(),
            agent_url: OnceLock::new(),
            shared: Mutex::new(None),
            per_user: Mutex::new(HashMap::new()),
        })
    }

    pub fn tls(&self) -> bool {
        self.tls_ca.is_some()
    }

    pub fn configured_address(&self) -> Option<IpAddr> {
        self.configured_address
    }

    /// Where the server listens for this engine's agents.
    pub fn agent_address(&self) -> Option<IpAddr> {
        self.configured_address.or_else(|| self.found_address.get().copied())
    }

    /// A failed call, where a TLS engine that cannot be talked to most likely refused the
    /// user's certificate (the TLS library's message says which way it failed).
    pub fn refused(&self, connector: &str, what: &str, e: bollard::errors::Error) -> Error {
        match e {
            bollard::errors::Error::DockerResponseServerError { .. } => super::failed(what, e),
            other if self.tls() => Error::Forbidden(format!(
                "connector `{connector}`: {what} at {}: the engine refused the TLS connection; is your credential a client \
                 certificate its CA signed? ({other})",
                self.url
            )),
            other => super::failed(&format!("{what} at {}", self.url), other),
        }
    }

    /// The API client for `account` on this engine, connected on first use (the engine may
    /// start after the server).
    pub fn client(&self, connector: &str, account: &Account) -> Result<bollard::Docker> {
        let Some(ca) = &self.tls_ca else { return self.shared_client(connector) };
        let credential = account.credential.as_deref().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            Error::Forbidden(format!(
                "connector `{connector}` ({}) needs your TLS client certificate: put its private key and certificate (PEM) in your \
                 profile's credential for `{connector}`",
                self.url
            ))
        })?;
        let digest = format!("{:x}", Sha256::digest(credential.as_bytes()));
        let mut held = self.per_user.lock().expect("not poisoned");
        if let Some(c) = held.get(&digest) {
            return Ok(c.clone());
        }
        let key = ClientKey::parse(credential)
            .map_err(|why| Error::Forbidden(format!("your credential for connector `{connector}` is not a TLS client key: {why}")))?;
        let dir = self.tls_dir.join(&digest[..16]);
        write_private(&dir, &key).map_err(|e| Error::Internal(format!("keeping a TLS client key: {e}")))?;
        install_crypto();
        let c = bollard::Docker::connect_with_ssl(
            &self.url,
            &dir.join("key.pem"),
            &dir.join("cert.pem"),
            ca,
            TIMEOUT_SECONDS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| Error::Unavailable(format!("connector `{connector}`: cannot connect to {}: {e}", self.url)))?;
        held.insert(digest, c.clone());
        Ok(c)
    }

    fn shared_client(&self, connector: &str) -> Result<bollard::Docker> {
        let mut held = self.shared.lock().expect("not poisoned");
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = if self.url.starts_with("unix://") {
            bollard::Docker::connect_with_unix(&self.url, TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
        } else {
            bollard::Docker::connect_with_http(&self.url.replacen("tcp://", "http://", 1), TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| Error::Unavailable(format!("connector `{connector}`: cannot connect to {}: {e}", self.url)))?;
        *held = Some(c.clone());
        Ok(c)
    }
}

/// The TLS library reads the key from files on each handshake: they live in a directory only
/// the server's user may enter.
fn write_private(dir: &Path, key: &ClientKey) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for (name, text) in [("key.pem", &key.key), ("cert.pem", &key.certificates)] {
        let tmp = dir.join(format!(".{name}.part"));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

/// rustls needs a process-wide crypto provider; ring is the one compiled in.
fn install_crypto() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----";

    #[test]
    fn credentials_are_split_into_key_and_certificates() {
        let both = ClientKey::parse(&format!("{CERT}\n{KEY}\n{CERT}\n")).unwrap();
        assert_eq!(both.key, format!("{KEY}\n"));
        assert_eq!(both.certificates, format!("{CERT}\n{CERT}\n"));
        let flat = ClientKey::parse(&format!("{KEY}{CERT}").replace('\n', "")).unwrap();
        assert_eq!((flat.key, flat.certificates), (format!("{KEY}\n"), format!("{CERT}\n")), "line breaks put back");
        let ec = ClientKey::parse(&format!("-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----\n{CERT}")).unwrap();
        assert!(ec.key.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let table: [(&str, &str); 5] = [
            ("", "no PEM private key and no certificate"),
            ("hunter2", "no PEM private key and no certificate"),
            (CERT, "no PEM private key"),
            (KEY, "no PEM certificate"),
            ("-----BEGIN PRIVATE KEY-----\nMIIB\n", "has no END line"),
        ];
        for (credential, why) in table {
            let got = ClientKey::parse(credential).unwrap_err();
            assert!(got.contains(why), "{credential:?}: {got}");
        }
        let two = format!("{KEY}\n{KEY}\n{CERT}");
        assert!(ClientKey::parse(&two).unwrap_err().contains("more than one private key"));
    }

    #[test]
    fn endpoints_are_checked() {
        let dir = PathBuf::from("/nonexistent");
        assert!(Endpoint::new("unix:///run/d.sock", None, dir.clone(), None).is_ok_and(|e| !e.remote));
        assert!(Endpoint::new("tcp://10.0.0.5:2376", Some("/ca.pem".into()), dir.clone(), None).is_ok_and(|e| e.remote && e.tls()));
        assert!(Endpoint::new("ssh://host", None, dir.clone(), None).is_err());
        assert!(Endpoint::new("unix:///run/d.sock", Some("/ca.pem".into()), dir, None).is_err());
    }

    #[test]
    fn a_missing_credential_names_the_connector_and_not_a_secret() {
        let e = Endpoint::new("tcp://10.0.0.5:2376", Some("/ca.pem".into()), "/nonexistent".into(), None).unwrap();
        let err = e.client("far", &Account::default()).unwrap_err().to_string();
        assert!(err.contains("connector `far`") && err.contains("TLS client certificate"), "{err}");
        let bad = Account { credential: Some("hunter2".into()), ..Default::default() };
        let err = e.client("far", &bad).unwrap_err().to_string();
        assert!(err.contains("not a TLS client key") && !err.contains("hunter2"), "{err}");
    }
}
