//! Local instances of a server that runs as root: each runs as a user of its own (a uid and
//! gid from the `uids` range, which no account on the host should use) with resource limits,
//! in a working directory of its own outside the server's data directory (which it cannot
//! enter). Its own uid keeps other instances out of its directory and its processes'
//! environments (the run token among them).
//!
//! Options of the local connector:
//! - `uids` — the range instances' uids (and gids) come from, `FIRST-LAST` (default
//!   `1000000000-1000999999`); a uid comes back after the whole range went round;
//! - `user` — instead, every instance runs as this one user (they can then read each other's
//!   files and environments; `root` keeps them root: only for a machine that is itself
//!   disposable);
//! - `work_dir` — where their directories are (default `/var/tmp/slipstream`);
//! - `memory` — address-space limit per process (default `4g`);
//! - `processes` — processes of the instance's user at once (default 4096; with `user`, shared
//!   by every instance, as Unix counts them per user);
//! - `files` — open files per process (default 4096).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::PathBuf;

use model::confine::{ConfineSpec, Limit};

const OPTIONS: [&str; 6] = ["uids", "user", "work_dir", "memory", "processes", "files"];
const DEFAULT_UIDS: (u32, u32) = (1_000_000_000, 1_000_000);
const DEFAULT_WORK_DIR: &str = "/var/tmp/slipstream";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// Who instances run as: their own uids, or one user for all.
    pub users: Users,
    pub work_dir: PathBuf,
    /// `(resource, limit)` pairs set before the user is changed.
    limits: Vec<(Limit, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Users {
    /// Each instance its own uid (and the same number as gid): `first + n % count`.
    Own { first: u32, count: u32 },
    /// Every instance as this user (the `user` option).
    Shared { name: String, uid: u32, gid: u32 },
}

/// `FIRST-LAST` → (first, count), unprivileged and within 32 bits.
fn uid_range(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("uids `{text}` is not a range FIRST-LAST of unprivileged uids (e.g. 1000000000-1000999999)");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (first, last): (u32, u32) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    // 65534 and up to 65535 are nobody and the "no uid" marker; 2^32-1 is (uid_t)-1.
    if first < 1000 || last < first || last == u32::MAX {
        return Err(bad());
    }
    Ok((first, last - first + 1))
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
        // SAFETY: geteuid only reads the caller's effective user id.
        let root = unsafe { libc::geteuid() } == 0;
        let users = match options.get("user").map(|u| u.trim()) {
            Some(_) if options.contains_key("uids") => return Err("give uids or user, not both".into()),
            Some("root") => return Ok(None),
            Some(user) => {
                let (uid, gid) = if root { lookup(user)? } else { (0, 0) };
                if root && uid == 0 {
                    return Err(format!("user `{user}` is root: name an unprivileged user"));
                }
                Users::Shared { name: user.into(), uid, gid }
            }
            None => {
                let (first, count) = options.get("uids").map(|r| uid_range(r)).transpose()?.unwrap_or(DEFAULT_UIDS);
                Users::Own { first, count }
            }
        };
        if !root {
            return Ok(None);
        }
        let work_dir = options.get("work_dir").map(PathBuf::from).unwrap_or_else(|| DEFAULT_WORK_DIR.into());
        Ok(Some(Self { users, work_dir, limits }))
    }

    /// The uid and gid of the `n`th instance started.
    pub fn ids(&self, n: u64) -> (u32, u32) {
        match &self.users {
            Users::Own { first, count } => {
                let uid = first + (n % u64::from(*count)) as u32;
                (uid, uid)
            }
            Users::Shared { uid, gid, .. } => (*uid, *gid),
        }
    }

    /// What the agent applies to itself before anything else (see [`model::confine`]), for
    /// an instance running as `uid`/`gid`.
    pub fn spec(&self, (uid, gid): (u32, u32)) -> ConfineSpec {
        ConfineSpec { uid, gid, limits: self.limits.clone() }
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
        for bad in [("colour", "blue"), ("memory", "lots"), ("processes", "0"), ("files", "-1"), ("uids", "5-1"), ("uids", "0-99999")] {
            assert!(Confinement::from_options(&opts(&[bad])).is_err(), "{bad:?}");
        }
        assert!(Confinement::from_options(&opts(&[("uids", "2000-3000"), ("user", "nobody")])).is_err(), "one or the other");
        assert_eq!(Confinement::from_options(&opts(&[("user", "root")])), Ok(None));
        // SAFETY: geteuid only reads.
        if unsafe { libc::geteuid() } == 0 {
            let c = Confinement::from_options(&opts(&[("memory", "1g")])).unwrap().expect("a root server confines");
            assert_eq!(c.users, Users::Own { first: 1_000_000_000, count: 1_000_000 });
            assert!(c.spec(c.ids(0)).limits.contains(&(Limit::AddressSpace, 1 << 30)));
            let shared = Confinement::from_options(&opts(&[("user", "nobody")])).unwrap().unwrap();
            assert!(matches!(shared.users, Users::Shared { uid, .. } if uid != 0));
            assert_eq!(shared.ids(0), shared.ids(7), "one user for all");
            assert!(Confinement::from_options(&opts(&[("user", "no-such-user-here")])).unwrap_err().contains("does not exist"));
        }
    }

    #[test]
    fn each_instance_gets_its_own_uid_from_the_range_and_it_comes_round() {
        assert_eq!(uid_range("2000-2999"), Ok((2000, 1000)));
        assert_eq!(uid_range(" 5000 - 5000 "), Ok((5000, 1)));
        for bad in ["", "2000", "2000-", "x-3000", "999-3000", "3000-2000", "2000-4294967295"] {
            assert!(uid_range(bad).is_err(), "{bad}");
        }
        let c = Confinement { users: Users::Own { first: 2000, count: 3 }, work_dir: PathBuf::new(), limits: Vec::new() };
        let ids: Vec<(u32, u32)> = (0..4).map(|n| c.ids(n)).collect();
        assert_eq!(ids, [(2000, 2000), (2001, 2001), (2002, 2002), (2000, 2000)]);
    }
}
