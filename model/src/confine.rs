//! How a local instance of a root server is confined, as the connector tells the agent. The
//! server starts the agent without forking itself (a fork of a large server copies its page
//! tables and makes all its memory copy-on-write: 1,000 starts took ~30 s), so the agent
//! applies the confinement itself, first thing, before it reads or runs anything: limits,
//! then no supplementary groups, the group, the user. Encoded in one environment variable.

/// The variable the agent reads (and removes from what its scripts see).
pub const CONFINE_ENV: &str = "SLIPSTREAM_CONFINE";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// RLIMIT_AS, bytes.
    AddressSpace,
    /// RLIMIT_NPROC.
    Processes,
    /// RLIMIT_NOFILE.
    Files,
}

impl Limit {
    fn word(self) -> &'static str {
        match self {
            Limit::AddressSpace => "as",
            Limit::Processes => "nproc",
            Limit::Files => "nofile",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfineSpec {
    pub uid: u32,
    pub gid: u32,
    pub limits: Vec<(Limit, u64)>,
}

impl ConfineSpec {
    /// `uid=65534 gid=65534 as=4294967296 nproc=4096 nofile=4096`.
    pub fn encode(&self) -> String {
        let mut out = format!("uid={} gid={}", self.uid, self.gid);
        for (l, v) in &self.limits {
            out.push_str(&format!(" {}={v}", l.word()));
        }
        out
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let (mut uid, mut gid, mut limits) = (None, None, Vec::new());
        for pair in s.split_whitespace() {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
            let n: u64 = v.parse().map_err(|_| format!("`{pair}`: not a number"))?;
            let id = || u32::try_from(n).map_err(|_| format!("`{pair}`: not an id"));
            match k {
                "uid" => uid = Some(id()?),
                "gid" => gid = Some(id()?),
                "as" => limits.push((Limit::AddressSpace, n)),
                "nproc" => limits.push((Limit::Processes, n)),
                "nofile" => limits.push((Limit::Files, n)),
                _ => return Err(format!("`{k}` is not a confinement setting")),
            }
        }
        match (uid, gid) {
            (Some(uid), Some(gid)) if uid != 0 => Ok(Self { uid, gid, limits }),
            (Some(0), _) => Err("uid 0 is not a confinement".into()),
            _ => Err(format!("`{s}` names no uid and gid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_survives_its_encoding_and_bad_ones_are_refused() {
        let spec =
            ConfineSpec { uid: 65534, gid: 65534, limits: vec![(Limit::AddressSpace, 1 << 30), (Limit::Processes, 64), (Limit::Files, 9)] };
        assert_eq!(spec.encode(), "uid=65534 gid=65534 as=1073741824 nproc=64 nofile=9");
        assert_eq!(ConfineSpec::parse(&spec.encode()), Ok(spec));
        for bad in ["", "uid=1", "uid=0 gid=0", "uid=1 gid=1 colour=3", "uid=x gid=1", "uid=1 gid=1 as", "uid=99999999999 gid=1"] {
            assert!(ConfineSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
