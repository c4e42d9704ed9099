//! One SSH connection to a host of the pool, with russh: the host key pinned, public-key
//! authentication, commands with their stdin, output and exit code, and SFTP uploads. Every
//! failure names the host and says why (unreachable, key refused, host key changed), which is
//! what a user reads as the run's abort message.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;

use crate::connector::{Exec, ExecInput, ExecOutput};
use crate::{Error, Result};

/// How long connecting (TCP, key exchange, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the connector knows of a host: where it is and the key it must present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAddr {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl std::fmt::Display for HostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.address, self.port)
    }
}

/// Accepts the host only if it shows the pinned key; remembers that it did not.
struct Pinned {
    expected: PublicKey,
    mismatch: Arc<std::sync::atomic::AtomicBool>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> std::result::Result<bool, Self::Error> {
        let same = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data() == self.expected.key_data(),
            PublicKeyOrCertificate::Certificate(_) => false,
        };
        if !same {
            self.mismatch.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(same)
    }
}

/// What a command gave back.
#[derive(Debug, Default)]
pub struct Output {
    pub code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last line of stderr, for an error message.
    pub fn reason(&self) -> String {
        let err = String::from_utf8_lossy(&self.stderr);
        err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output on stderr)").trim().to_string()
    }
}

pub struct Connection {
    handle: client::Handle<Pinned>,
    pub host: HostAddr,
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`).
pub fn parse_host_key(line: &str) -> std::result::Result<PublicKey, String> {
    PublicKey::from_openssh(line.trim()).map_err(|e| format!("`{}` is not an OpenSSH public key: {e}", line.trim()))
}

/// Parses a private key in OpenSSH (or PEM) form, without a passphrase.
pub fn parse_private_key(text: &str) -> std::result::Result<PrivateKey, String> {
    russh::keys::decode_secret_key(text, None).map_err(|e| format!("not a private key without a passphrase: {e}"))
}

impl Connection {
    pub async fn open(host: &HostAddr, host_key: &PublicKey, key: &Arc<PrivateKey>) -> Result<Self> {
        let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = Pinned { expected: host_key.clone(), mismatch: mismatch.clone() };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            ..Default::default()
        });
        let connect = client::connect(config, (host.address.as_str(), host.port), handler);
        let mut handle = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => return Err(Error::Unavailable(format!("SSH host {host} did not answer within {} s", CONNECT_TIMEOUT.as_secs()))),
            Ok(Err(_)) if mismatch.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(Error::Unavailable(format!(
                    "SSH host {host} presented a host key that is not the pinned one (did the host key change?); refusing to connect"
                )))
            }
            Ok(Err(e)) => return Err(Error::Unavailable(format!("SSH host {host} cannot be reached: {e}"))),
            Ok(Ok(h)) => h,
        };
        let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
        let auth = handle
            .authenticate_publickey(host.user.clone(), PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(|e| Error::Unavailable(format!("SSH host {host}: authentication failed: {e}")))?;
        if !auth.success() {
            return Err(Error::Unavailable(format!("SSH host {host} refused the key for user `{}`", host.user)));
        }
        Ok(Self { handle, host: host.clone() })
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs `command` (a shell command line) with `stdin`, and collects its output.
    pub async fn run(&self, command: &str, stdin: &[u8]) -> Result<Output> {
        let mut channel = self.channel().await?;
        let lost = |e: russh::Error| Error::Unavailable(format!("SSH host {}: {e}", self.host));
        channel.exec(true, command).await.map_err(lost)?;
        if !stdin.is_empty() {
            channel.data(stdin).await.map_err(lost)?;
        }
        channel.eof().await.map_err(lost)?;
        let mut out = Output::default();
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Opens `command` with its stdin given at once, or on a terminal of `tty` (columns, rows)
    /// fed from the returned [`Exec`]; dropping its input closes the channel (the shell on
    /// the host gets a hang-up).
    pub async fn exec(&self, command: &str, stdin: &[u8], tty: Option<(u16, u16)>) -> Result<Exec> {
        let channel = self.channel().await?;
        let host = self.host.clone();
        let lost = move |e: russh::Error| Error::Unavailable(format!("SSH host {host}: {e}"));
        if let Some((columns, rows)) = tty {
            channel.request_pty(true, "xterm-256color", columns.into(), rows.into(), 0, 0, &[]).await.map_err(&lost)?;
        }
        channel.exec(true, command).await.map_err(&lost)?;
        if tty.is_none() {
            if !stdin.is_empty() {
                channel.data(stdin).await.map_err(&lost)?;
            }
            channel.eof().await.map_err(&lost)?;
        }
        let (exec, mut input, output) = Exec::channels();
        let (mut read, write) = channel.split();
        tokio::spawn(async move {
            // Without a terminal, stdin was given at once: the command runs to its end.
            let (mut code, mut input_open) = (None, tty.is_some());
            let mut hung_up: Option<tokio::time::Instant> = None;
            loop {
                let grace = hung_up.map(|at| at + std::time::Duration::from_secs(2));
                tokio::select! {
                    m = input.recv(), if input_open => match m {
                        Some(ExecInput::Data(d)) => { let _ = write.data(&d[..]).await; }
                        Some(ExecInput::Resize(c, r)) => { let _ = write.window_change(c.into(), r.into(), 0, 0).await; }
                        None => {
                            // The terminal closed: so does the channel (sshd hangs up the shell).
                            input_open = false;
                            hung_up = Some(tokio::time::Instant::now());
                            let _ = write.close().await;
                        }
                    },
                    _ = tokio::time::sleep_until(grace.unwrap_or_else(tokio::time::Instant::now)), if grace.is_some() => break,
                    m = read.wait() => match m {
                        Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                            let _ = output.send(ExecOutput::Data(bytes::Bytes::copy_from_slice(&data))).await;
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => code = i32::try_from(exit_status).ok(),
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            let _ = output.send(ExecOutput::Exit(code)).await;
        });
        Ok(exec)
    }

    /// A fresh session channel (a command, a shell, SFTP).
    pub async fn channel(&self) -> Result<russh::Channel<client::Msg>> {
        self.handle
            .channel_open_session()
            .await
            .map_err(|e| Error::Unavailable(format!("SSH host {}: cannot open a session: {e}", self.host)))
    }

    /// Writes `bytes` to `path` on the host over SFTP (to a temporary name, then renamed), and
    /// makes it executable.
    pub async fn upload(&self, path: &str, bytes: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let failed = |what: &str, e: &dyn std::fmt::Display| Error::Unavailable(format!("SSH host {}: {what} {path}: {e}", self.host));
        let channel = self.channel().await?;
        channel.request_subsystem(true, "sftp").await.map_err(|e| failed("SFTP for", &e))?;
        let sftp = russh_sftp::client::SftpSession::new(channel.into_stream()).await.map_err(|e| failed("SFTP for", &e))?;
        let part = format!("{path}.part");
        // `write` opens without CREATE; `create` makes the file.
        let mut file = sftp.create(&part).await.map_err(|e| failed("creating", &e))?;
        file.write_all(bytes).await.map_err(|e| failed("writing", &e))?;
        file.shutdown().await.map_err(|e| failed("closing", &e))?;
        let mut attrs = russh_sftp::protocol::FileAttributes::empty();
        attrs.permissions = Some(0o755);
        sftp.set_metadata(&part, attrs).await.map_err(|e| failed("chmod", &e))?;
        let _ = sftp.remove_file(path).await;
        sftp.rename(&part, path).await.map_err(|e| failed("renaming", &e))?;
        let _ = sftp.close().await;
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_quoted_for_the_shell() {
        for (word, quoted) in [("plain", "'plain'"), ("it's", r"'it'\''s'"), ("$HOME; rm", "'$HOME; rm'"), ("", "''")] {
            assert_eq!(super::quote(word), quoted);
        }
    }

    #[test]
    fn keys_that_are_not_keys_are_refused_with_a_reason() {
        assert!(super::parse_host_key("ssh-ed25519 notbase64").unwrap_err().contains("not an OpenSSH public key"));
        assert!(super::parse_private_key("hello").unwrap_err().contains("not a private key"));
    }
}
