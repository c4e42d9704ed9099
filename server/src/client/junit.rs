//! A run as a JUnit XML report, the format CI systems display: one `testsuite` for the run,
//! one `testcase` per instance (`classname` the node, `name` the instance). An instance whose
//! abort ended the run is a `failure` with its message and last lines of output; every case
//! carries the instance's output in `system-out`. A run that aborted with no instance to blame
//! (a timeout, a server restart) gets one more failed case, `run`.

use std::collections::BTreeMap;
use std::fmt::Write;

use model::run::{LogLine, RunDetail};
use model::RunState;

/// Lines of output in a failure's text.
const FAILURE_LINES: usize = 20;

pub fn report(run: &RunDetail, logs: &[LogLine]) -> String {
    let mut output: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in logs {
        output.entry(l.instance.as_str()).or_default().push(l.line.as_str());
    }
    let aborted = run.summary.state == RunState::Aborted;
    let blamed = run.instances.iter().any(|i| i.abort.is_some());
    let seconds = run.summary.ended_at.unwrap_or(run.summary.state_changed_at).saturating_sub(run.summary.created_at) as f64 / 1000.0;
    let mut cases = String::new();
    let mut failures = 0;
    for i in &run.instances {
        let lines = output.get(i.name.as_str()).map(Vec::as_slice).unwrap_or_default();
        let _ = writeln!(cases, "    <testcase classname=\"{}\" name=\"{}\" time=\"{seconds:.3}\">", xml(&i.node), xml(&i.name));
        if let Some(why) = &i.abort {
            failures += 1;
            let tail = lines[lines.len().saturating_sub(FAILURE_LINES)..].join("\n");
            let _ = writeln!(cases, "      <failure message=\"{}\" type=\"abort\">{}</failure>", xml(why), xml(&tail));
        }
        if !lines.is_empty() {
            let _ = writeln!(cases, "      <system-out>{}</system-out>", xml(&lines.join("\n")));
        }
        cases.push_str("    </testcase>\n");
    }
    if aborted && !blamed {
        failures += 1;
        let why = run.summary.abort.as_deref().unwrap_or("the run was aborted");
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"run\" time=\"{seconds:.3}\">\n      <failure message=\"{}\" type=\"abort\"/>\n    </testcase>\n",
            xml(&run.summary.module),
            xml(why)
        );
    }
    let tests = run.instances.len() + usize::from(aborted && !blamed);
    let name = format!("{} {}", run.summary.module, run.summary.id);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"slipstream\" tests=\"{tests}\" failures=\"{failures}\" time=\"{seconds:.3}\">\n  \
         <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">\n{cases}  \
         </testsuite>\n</testsuites>\n",
        xml(&name)
    )
}

/// Text as XML character data or an attribute value; characters XML 1.0 cannot hold (most
/// control characters, which script output may contain) become U+FFFD.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::run::{InstanceView, KeepRunning, RunSummary};

    fn instance(name: &str, abort: Option<&str>) -> InstanceView {
        InstanceView {
            name: name.into(),
            node: name.split('.').next().unwrap().into(),
            index: 1,
            connector: "local".into(),
            address: String::new(),
            completed: None,
            statecustom: None,
            abort: abort.map(String::from),
            running: false,
            scale: String::new(),
        }
    }

    fn run(state: RunState, abort: Option<&str>, instances: Vec<InstanceView>) -> RunDetail {
        RunDetail {
            summary: RunSummary {
                id: "r1".into(),
                owner: "olivia".into(),
                module: "m/d".into(),
                module_version: 1,
                state,
                abort: abort.map(String::from),
                keep_running: KeepRunning::Never,
                tags: vec![],
                created_at: 1_000,
                state_changed_at: 3_500,
                ended_at: Some(3_500),
                connectors: BTreeMap::new(),
                instance_states: BTreeMap::new(),
                scalable: false,
            },
            instances,
            params: BTreeMap::new(),
        }
    }

    fn line(instance: &str, text: &str) -> LogLine {
        LogLine { seq: 0, at: 0, instance: instance.into(), stream: "stdout".into(), line: text.into() }
    }

    #[test]
    fn one_case_per_instance_and_the_blamed_one_fails() {
        let r = run(RunState::Aborted, Some("web.1: exit 3"), vec![instance("db.1", None), instance("web.1", Some("exit code 3 <disk>"))]);
        let xml = report(&r, &[line("web.1", "starting"), line("web.1", "the disk is full & \u{1b}[31mred"), line("db.1", "up")]);
        assert!(xml.contains(r#"<testsuite name="m/d r1" tests="2" failures="1" errors="0" skipped="0" time="2.500">"#), "{xml}");
        assert!(xml.contains(r#"<testcase classname="db" name="db.1" time="2.500">"#), "{xml}");
        assert!(xml.contains(r#"<failure message="exit code 3 &lt;disk&gt;" type="abort">starting"#), "{xml}");
        assert!(xml.contains("the disk is full &amp; \u{FFFD}[31mred</failure>"), "control characters replaced: {xml}");
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert_eq!(xml.matches("<system-out>").count(), 2);
    }

    #[test]
    fn an_abort_with_nobody_to_blame_is_a_failed_run_case_and_done_has_none() {
        let r = run(RunState::Aborted, Some("timed out in Executing"), vec![instance("a.1", None)]);
        let xml = report(&r, &[]);
        assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
        assert!(xml.contains(r#"<testcase classname="m/d" name="run""#) && xml.contains(r#"message="timed out in Executing""#), "{xml}");
        let done = report(&run(RunState::Done, None, vec![instance("a.1", None)]), &[]);
        assert!(done.contains(r#"tests="1" failures="0""#) && !done.contains("<failure"), "{done}");
    }
}
