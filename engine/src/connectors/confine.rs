//! Local instances of a server that runs as root: they run as an unprivileged user (`nobody`
//! unless the connector's `user` option names another) with resource limits, in a working
//! directory of their own outside the server's data directory (which that user cannot enter).
//!
//! Options of the local connector:
//! - `user` — who instances run as when the server is root (`root` keeps them root: only for
//!   a machine that is itself disposable);
//! - `work_dir` — where their directories are (default `/var/tmp/slipstream`);
//! - `memory` — address-space limit per process (default `4g`);
//! - `processes` — processes of that user at once (default 4096; shared by every instance of
//!   that user, as Unix counts them per user);
//! - `files` — open files per process (default 4096).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::PathBuf;

use model::confine::{ConfineSpec, Limit};

const OPTIONS: [&str; 5] = ["user", "work_dir", "memory", "processes", "files"];
const DEFAULT_USER: &str = "nobody";
const DEFAULT_WORK_DIR: &str = "/var/tmp/slipstream";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub work_dir: PathBuf,
    /// `(resource, limit)` pairs set before the user is changed.
    limits: Vec<(Limit, u64)>,
}

fn number(options: &BTreeMap<String, String>, key: &str, default: u64) -> Result<u64, String> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("{key} `{v}` is not a positive number")),
    }
}

impl Confinement {
    /// The confinement the options ask for; `None` when the server is not root (instances
    /// then run as the server's own user, who may not change it) or `user` is `root`.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Option<Self>, String> {
        if let Some(bad) = options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(format!("the local connector has no option `{bad}` (it has {OPTIONS:?})"));
        }
        let memory = match options.get("memory") {
            None => 4 << 30,
            Some(m) => super::docker::limits::parse_bytes(m).ok_or_else(|| format!("memory `{m}` is not a size (e.g. 512m, 2g)"))? as u64,
        };
        let limits = vec![
            (Limit::AddressSpace, memory),
            (Limit::Processes, number(options, "processes", 4096)?),
            (Limit::Files, number(options, "files", 4096)?),
        ];
        let user = options.get("user").map(|u| u.trim().to_string()).unwrap_or_else(|| DEFAULT_USER.into());
        // SAFETY: geteuid only reads the caller's effective user id.
        if unsafe { libc::geteuid() } != 0 || user == "root" {
            return Ok(None);
        }
        let (uid, gid) = lookup(&user)?;
        if uid == 0 {
            return Err(format!("user `{user}` is root: name an unprivileged user"));
        }
        let work_dir = options.get("work_dir").map(PathBuf::from).unwrap_or_else(|| DEFAULT_WORK_DIR.into());
        Ok(Some(Self { user, uid, gid, work_dir, limits }))
    }

    /// What the agent applies to itself before anything else (see [`model::confine`]).
    pub fn spec(&self) -> ConfineSpec {
        ConfineSpec { uid: self.uid, gid: self.gid, limits: self.limits.clone() }
    }
}

/// The uid and primary gid of a user, from the system's user database.
fn lookup(user: &str) -> Result<(u32, u32), String> {
    let name = CString::new(user).map_err(|_| format!("user `{user}` is not a user name"))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, which outlive the call; `found` is null
    // or points at `pwd`.
    let r = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if r != 0 || found.is_null() {
        return Err(format!("user `{user}` does not exist on this host (instances of a root server run as it)"));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_are_checked() {
        for bad in [("colour", "blue"), ("memory", "lots"), ("processes", "0"), ("files", "-1")] {
            assert!(Confinement::from_options(&opts(&[bad])).is_err(), "{bad:?}");
        }
        assert_eq!(Confinement::from_options(&opts(&[("user", "root")])), Ok(None));
        // SAFETY: geteuid only reads.
        if unsafe { libc::geteuid() } == 0 {
            let c = Confinement::from_options(&opts(&[("memory", "1g")])).unwrap().expect("a root server confines");
            assert_eq!((c.user.as_str(), c.uid != 0), ("nobody", true));
            assert!(c.spec().limits.contains(&(Limit::AddressSpace, 1 << 30)));
            assert!(Confinement::from_options(&opts(&[("user", "no-such-user-here")])).unwrap_err().contains("does not exist"));
        }
    }
}
