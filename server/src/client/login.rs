//! Where the client finds its server and token: `SLIPSTREAM_URL` and `SLIPSTREAM_TOKEN` when
//! set (CI), else what `slipstream login` stored in `$XDG_CONFIG_HOME/slipstream/login.json`
//! (`~/.config/…`), a file only its owner may read (0600).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::{Client, Failure, Result};

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub url: String,
    pub token: String,
}

/// `$XDG_CONFIG_HOME/slipstream/login.json`, or `$HOME/.config/slipstream/login.json`.
pub fn path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| Failure::usage("HOME is not set: cannot find the login file"))?)
            .join(".config"),
    };
    Ok(base.join("slipstream").join("login.json"))
}

/// The client for the server the environment or the stored login names.
pub fn client() -> Result<Client> {
    let stored = || -> Result<Option<Login>> {
        let p = path()?;
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Failure::usage(format!("{} is damaged ({e}): run `slipstream login URL` again", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::usage(format!("{}: {e}", p.display()))),
        }
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (url, token) = match (env("SLIPSTREAM_URL"), env("SLIPSTREAM_TOKEN")) {
        (Some(u), Some(t)) => (u, Some(t)),
        (url, token) => {
            let s = stored()?;
            let url = url
                .or_else(|| s.as_ref().map(|l| l.url.clone()))
                .ok_or_else(|| Failure::usage("no server: run `slipstream login URL`, or set SLIPSTREAM_URL and SLIPSTREAM_TOKEN"))?;
            (url, token.or_else(|| s.map(|l| l.token)))
        }
    };
    Client::new(&url, token)
}

/// Writes the login file, readable by its owner only (created so: never briefly wider).
pub fn store(login: &Login) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let p = path()?;
    let dir = p.parent().expect("the login file is in a directory");
    let io = |e: std::io::Error| Failure::usage(format!("{}: {e}", p.display()));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let tmp = dir.join(".login.json.part");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    f.write_all(serde_json::to_string_pretty(login).expect("serializable").as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, &p).map_err(io)?;
    Ok(p)
}

/// `slipstream login URL`: with `--token`, checks and stores it; else signs in as `user`
/// (password from `SLIPSTREAM_PASSWORD`, or asked for without echo) and stores a new API token.
pub async fn login(url: &str, user: Option<String>, token: Option<String>) -> Result<()> {
    let token = match token {
        Some(t) => t,
        None => {
            let user = match user {
                Some(u) => u,
                None => prompt("User: ", true)?,
            };
            let password = match std::env::var("SLIPSTREAM_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => prompt("Password: ", false)?,
            };
            let session = Client::new(url, None)?;
            session.send(session.request(Method::POST, "/auth/login").json(&json!({"name": user, "password": password}))).await?;
            let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
            let name = format!("cli {host}").trim().to_string();
            let made: serde_json::Value = session.json(session.request(Method::POST, "/auth/tokens").json(&json!({"name": name}))).await?;
            let _ = session.send(session.request(Method::POST, "/auth/logout")).await;
            made["token"].as_str().ok_or_else(|| Failure::unreachable("the server made no token"))?.to_string()
        }
    };
    let checked = Client::new(url, Some(token.clone()))?;
    let me: serde_json::Value = checked.get("/auth/me").await?;
    let p = store(&Login { url: checked.base.clone(), token })?;
    println!("Signed in to {} as {} (token stored in {})", checked.base, me["name"].as_str().unwrap_or("?"), p.display());
    Ok(())
}

/// Reads a line from the terminal (without echo for a password) or from standard input.
fn prompt(label: &str, echo: bool) -> Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{label}");
        let _ = std::io::stderr().flush();
    }
    let saved = (!echo && tty).then(echo_off).flatten();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the terminal settings read by `echo_off` on the same descriptor.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        eprintln!();
    }
    read.map_err(|e| Failure::usage(format!("reading {}: {e}", label.trim_end_matches(": "))))?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        return Err(Failure::usage(format!("no {} given", label.trim_end_matches(": ").to_lowercase())));
    }
    Ok(line)
}

/// Turns the terminal's echo off; returns the settings to restore.
fn echo_off() -> Option<libc::termios> {
    // SAFETY: tcgetattr fills the struct for descriptor 0; tcsetattr reads it.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &t);
        Some(saved)
    }
}
