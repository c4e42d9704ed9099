//! Connector credentials sealed at rest: ChaCha20-Poly1305 with a key kept outside the
//! database — `SLIPSTREAM_SECRET_KEY` (64 hex digits; the same on every server sharing a
//! PostgreSQL database) or `<data-dir>/secret.key` (made on first start, `0600`). A stolen
//! database or backup alone reveals no credential. Each sealed value is bound to its row
//! (user and connector), so one cannot be moved into another user's account.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

use crate::{Error, Result};

/// Marks a sealed value; anything else is a value stored before sealing existed.
const SEALED: &str = "v1:";
pub const KEY_ENV: &str = "SLIPSTREAM_SECRET_KEY";
const KEY_FILE: &str = "secret.key";

pub struct SecretBox {
    key: LessSafeKey,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

impl SecretBox {
    pub fn from_key(bytes: &[u8]) -> Result<Self> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| Error::Internal("a secret key has 32 bytes".into()))?;
        Ok(Self { key: LessSafeKey::new(key) })
    }

    /// The key from the environment, else from the data directory's key file (made if absent).
    pub fn load(data_dir: &std::path::Path) -> Result<Self> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            let bytes = unhex(text.trim()).filter(|b| b.len() == 32);
            let bytes = bytes.ok_or_else(|| Error::invalid("", KEY_ENV, "must be 64 hexadecimal digits (32 bytes)"))?;
            return Self::from_key(&bytes);
        }
        let path = data_dir.join(KEY_FILE);
        let io = |e: std::io::Error| Error::Internal(format!("secret key {}: {e}", path.display()));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = unhex(text.trim()).filter(|b| b.len() == 32);
                let bytes = bytes.ok_or_else(|| Error::Internal(format!("secret key {}: not 64 hexadecimal digits", path.display())))?;
                Self::from_key(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| Error::Internal(e.to_string()))?;
                // create_new: two processes starting at once never overwrite each other's key.
                match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                    Ok(mut f) => {
                        f.write_all(hex(&bytes).as_bytes()).and_then(|_| f.sync_all()).map_err(io)?;
                        Self::from_key(&bytes)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(data_dir),
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// `plain` sealed for the row named by `context`; empty stays empty (no credential).
    pub fn seal(&self, context: &str, plain: &str) -> Result<String> {
        if plain.is_empty() {
            return Ok(String::new());
        }
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Internal(e.to_string()))?;
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| Error::Internal("sealing a credential failed".into()))?;
        Ok(format!("{SEALED}{}{}", hex(&nonce), hex(&data)))
    }

    /// The plain value of `stored` (a value from before sealing is returned as it is).
    pub fn open(&self, context: &str, stored: &str) -> Result<String> {
        let Some(body) = stored.strip_prefix(SEALED) else { return Ok(stored.to_string()) };
        let bad =
            || Error::Internal(format!("a stored credential cannot be opened with this server's key ({KEY_ENV} or {KEY_FILE} changed?)"));
        let bytes = unhex(body).filter(|b| b.len() > NONCE_LEN).ok_or_else(bad)?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut data = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut data).map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    }

    pub fn is_sealed(stored: &str) -> bool {
        stored.is_empty() || stored.starts_with(SEALED)
    }
}

/// The row a connector credential is bound to.
pub fn credential_context(user: &str, connector: &str) -> String {
    format!("connector-credential\0{user}\0{connector}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let b = SecretBox::from_key(&[7u8; 32]).unwrap();
        let ctx = credential_context("olivia", "lab");
        let sealed = b.seal(&ctx, "-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(sealed.starts_with(SEALED) && !sealed.contains("PRIVATE"));
        assert_ne!(sealed, b.seal(&ctx, "-----BEGIN PRIVATE KEY-----").unwrap(), "a fresh nonce each time");
        assert_eq!(b.open(&ctx, &sealed).unwrap(), "-----BEGIN PRIVATE KEY-----");
        assert!(b.open(&credential_context("oscar", "lab"), &sealed).is_err(), "moved to another row");
        assert!(SecretBox::from_key(&[8u8; 32]).unwrap().open(&ctx, &sealed).is_err(), "another key");
        assert!(b.open(&ctx, "v1:zz").is_err());
        assert_eq!(b.open(&ctx, "legacy clear value").unwrap(), "legacy clear value");
        assert_eq!(b.seal(&ctx, "").unwrap(), "");
    }

    #[test]
    fn the_key_file_is_made_once_private_and_reused() {
        let dir = crate::testing::temp_dir("secret");
        let a = SecretBox::load(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = a.seal("x", "secret").unwrap();
        assert_eq!(SecretBox::load(&dir).unwrap().open("x", &sealed).unwrap(), "secret");
    }
}
