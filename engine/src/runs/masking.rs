//! Secret parameters stay secret: their values are masked wherever a run is shown (pages,
//! API answers, the websocket) unless the run's owner asks for them, and are redacted from
//! the run's output when a script prints them — before the line is stored, so neither the
//! database nor any reader ever holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sqlx::Row;

use crate::{Engine, Result};

/// What a masked value or a redacted secret shows.
pub const MASK: &str = "********";
/// Shorter values are not redacted from output (a secret `1` would blank every digit); they
/// are still masked where parameters are shown.
pub const MIN_REDACTED_LEN: usize = 4;

/// `line` with every secret value in `values` replaced by [`MASK`] (longest first, so a
/// secret containing another is redacted whole).
pub fn redact(line: &str, values: &[String]) -> String {
    let mut out = line.to_string();
    for v in values {
        if v.len() >= MIN_REDACTED_LEN && out.contains(v.as_str()) {
            out = out.replace(v.as_str(), MASK);
        }
    }
    out
}

/// The values worth redacting, longest first.
pub fn redactable(mut values: Vec<String>) -> Vec<String> {
    values.retain(|v| v.len() >= MIN_REDACTED_LEN);
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// `params` with the values of `secret` keys masked (unset ones stay unset).
pub fn mask(params: &mut BTreeMap<String, Option<String>>, secret: &BTreeSet<String>) {
    for (k, v) in params.iter_mut() {
        if v.is_some() && secret.contains(k) {
            *v = Some(MASK.to_string());
        }
    }
}

impl Engine {
    /// The run's secret parameter keys (`instance:param`), kept while the run is live.
    pub async fn secret_keys(&self, run: &str) -> Result<Arc<BTreeSet<String>>> {
        if let Some(k) = self.rt.params.secret_keys.lock().expect("not poisoned").get(run) {
            return Ok(k.clone());
        }
        let plan = self.plan_of(run).await?;
        let mut keys = BTreeSet::new();
        if plan.values().any(|n| !n.secrets.is_empty()) {
            let rows = sqlx::query("SELECT name, node FROM run_instances WHERE run_id = $1").bind(run).fetch_all(&self.db.pool).await?;
            for r in rows {
                let (name, node): (String, String) = (r.try_get("name")?, r.try_get("node")?);
                if let Some(n) = plan.get(&node) {
                    keys.extend(n.secret_keys(std::iter::once(name.as_str())));
                }
            }
        }
        let keys = Arc::new(keys);
        if self.rt.params.get(run).is_some_and(|l| !l.ended) {
            self.rt.params.secret_keys.lock().expect("not poisoned").insert(run.to_string(), keys.clone());
        }
        Ok(keys)
    }

    /// The values of the run's secret parameters that output must not show.
    pub(crate) async fn secret_values(&self, run: &str) -> Result<Vec<String>> {
        let keys = self.secret_keys(run).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values = match self.rt.params.get(run) {
            Some(live) => keys
                .iter()
                .filter_map(|k| match live.slot(k) {
                    crate::params::Slot::Set(v) => Some(v),
                    _ => None,
                })
                .collect(),
            None => {
                let all = self.params(run).await?;
                keys.iter().filter_map(|k| all.get(k).cloned().flatten()).collect()
            }
        };
        Ok(redactable(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_secrets_are_redacted_whole_and_short_ones_left() {
        let values = redactable(vec!["hunter2".into(), "hunter2-extra".into(), "ab".into(), "hunter2".into()]);
        assert_eq!(values, ["hunter2-extra", "hunter2"]);
        let table = [
            ("password is hunter2", "password is ********"),
            ("hunter2-extra and hunter2", "******** and ********"),
            ("ab stays", "ab stays"),
            ("nothing here", "nothing here"),
        ];
        for (line, want) in table {
            assert_eq!(redact(line, &values), want, "{line}");
        }
    }

    #[test]
    fn masking_hides_set_secrets_and_keeps_unset_ones_unset() {
        let mut p: BTreeMap<String, Option<String>> =
            [("db.1:password", Some("pw")), ("db.1:port", Some("5432")), ("web.1:password", None)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map(String::from)))
                .collect();
        let secret: BTreeSet<String> = ["db.1:password".to_string(), "web.1:password".to_string()].into();
        mask(&mut p, &secret);
        assert_eq!(p["db.1:password"].as_deref(), Some(MASK));
        assert_eq!(p["db.1:port"].as_deref(), Some("5432"));
        assert_eq!(p["web.1:password"], None);
    }
}
