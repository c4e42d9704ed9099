//! Differences between two versions of a module: which fields changed, and for scripts which
//! lines (a longest-common-subsequence line diff; scripts are small).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineChange {
    Same,
    Removed,
    Added,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub change: LineChange,
    pub text: String,
}

/// One field that differs: its dotted name, both values (`None`: absent), and a line diff
/// when either value spans several lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub lines: Vec<DiffLine>,
}

/// Line diff of `a` → `b`.
pub fn diff_lines(a: &str, b: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    let line = |change, text: &str| DiffLine { change, text: text.to_string() };
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(line(LineChange::Same, a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(line(LineChange::Removed, a[i]));
            i += 1;
        } else {
            out.push(line(LineChange::Added, b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|t| line(LineChange::Removed, t)));
    out.extend(b[j..].iter().map(|t| line(LineChange::Added, t)));
    out
}

/// Compares two flattened documents (dotted field → value), in field order.
pub fn compare_fields(before: &[(String, String)], after: &[(String, String)]) -> Vec<FieldChange> {
    let mut fields: Vec<&String> = before.iter().chain(after.iter()).map(|(k, _)| k).collect();
    fields.sort();
    fields.dedup();
    let get = |doc: &[(String, String)], k: &str| doc.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    fields
        .into_iter()
        .filter_map(|f| {
            let (b, a) = (get(before, f), get(after, f));
            if b == a {
                return None;
            }
            let multiline = b.as_deref().is_some_and(|s| s.contains('\n')) || a.as_deref().is_some_and(|s| s.contains('\n'));
            let lines = if multiline { diff_lines(b.as_deref().unwrap_or(""), a.as_deref().unwrap_or("")) } else { vec![] };
            Some(FieldChange { field: f.clone(), before: b, after: a, lines })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(d: &[DiffLine]) -> Vec<String> {
        d.iter()
            .map(|l| {
                format!(
                    "{}{}",
                    match l.change {
                        LineChange::Same => ' ',
                        LineChange::Removed => '-',
                        LineChange::Added => '+',
                    },
                    l.text
                )
            })
            .collect()
    }

    #[test]
    fn line_diffs_keep_common_lines() {
        let d = diff_lines("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(render(&d), [" a", "-b", "+x", " c", "+d"]);
        assert_eq!(render(&diff_lines("", "new")), ["+new"]);
        assert_eq!(render(&diff_lines("same", "same")), [" same"]);
    }

    #[test]
    fn only_changed_fields_are_reported() {
        let kv = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let before = kv(&[("description", "old"), ("targets.execute", "#!/bin/sh\necho a\n"), ("kind", "image")]);
        let after = kv(&[("description", "new"), ("targets.execute", "#!/bin/sh\necho b\n"), ("kind", "image"), ("recipe", "x")]);
        let changes = compare_fields(&before, &after);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["description", "recipe", "targets.execute"]);
        assert_eq!(changes[1].before, None);
        assert_eq!(render(&changes[2].lines), [" #!/bin/sh", "-echo a", "+echo b"]);
    }
}
