//! Resource limits of a Docker connector's containers, from its options.

/// Resource limits of every container of the connector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
}

impl Limits {
    /// Reads `memory`, `cpus` and `pids` from connector options.
    pub fn parse(options: &std::collections::BTreeMap<String, String>) -> std::result::Result<Self, String> {
        let mut l = Limits::default();
        if let Some(m) = options.get("memory") {
            l.memory = Some(parse_bytes(m).ok_or_else(|| format!("memory `{m}` is not a size (e.g. 512m, 2g)"))?);
        }
        if let Some(c) = options.get("cpus") {
            let cpus: f64 =
                c.parse().ok().filter(|c: &f64| *c > 0.0 && *c <= 1024.0).ok_or_else(|| format!("cpus `{c}` is not a number of CPUs"))?;
            l.nano_cpus = Some((cpus * 1e9) as i64);
        }
        if let Some(p) = options.get("pids") {
            l.pids = Some(p.parse().ok().filter(|p: &i64| *p > 0).ok_or_else(|| format!("pids `{p}` is not a positive number"))?);
        }
        Ok(l)
    }
}

/// `512m` → 536870912; plain numbers are bytes.
pub(crate) fn parse_bytes(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s.as_str(), ""),
    };
    let n: i64 = digits.parse().ok()?;
    let mult: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|b| *b > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_from_options() {
        let opts = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(
            Limits::parse(&opts(&[("memory", "512m"), ("cpus", "1.5"), ("pids", "256")])),
            Ok(Limits { memory: Some(512 << 20), nano_cpus: Some(1_500_000_000), pids: Some(256) })
        );
        assert_eq!(Limits::parse(&opts(&[])), Ok(Limits::default()));
        for bad in [("memory", "lots"), ("memory", "0"), ("cpus", "-1"), ("cpus", "x"), ("pids", "0")] {
            assert!(Limits::parse(&opts(&[bad])).is_err(), "{bad:?}");
        }
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        assert_eq!(parse_bytes("64MB"), Some(64 << 20));
        assert_eq!(parse_bytes("1000"), Some(1000));
    }
}
