//! The run lifecycle, decided purely: [`next`] takes what is known of a run and one event and
//! returns the actions to carry out. No I/O, no clock; the driver in [`crate::runs`] loads
//! the view, calls [`next`], persists and executes the actions.
//!
//! ```text
//! Initializing → Provisioning → Executing → SendingReports → Ready → Finalizing → Done
//!                 (each transitional state is left when every instance completed it)
//! abort: a sticky flag, not a state; the run goes on through the barriers (instances fail
//!        fast and complete) and ends Aborted. Terminate before Ready: Cancelled.
//! scale: a scalable run stays in Ready; adding or removing instances takes it round again,
//!        Ready → Provisioning → … → Ready (new instances deploy, the others run their
//!        scaling hooks), and back in Ready the leaving instances are stopped.
//! ```

use model::run::KeepRunning;
use model::RunState;

/// What the orchestrator needs to know of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub state: RunState,
    pub aborted: bool,
    pub keep_running: KeepRunning,
    /// How many instances hold back the barrier of `state` (started, not removed by a scaling).
    pub instances: usize,
    /// How many of them completed `state`.
    pub done: usize,
    /// A build: at Ready, unless aborted, its instance is kept as an image before it stops.
    pub build: bool,
    /// Stays in Ready until terminated; may be scaled there.
    pub scalable: bool,
    /// A scaling is under way (instances are being added or removed).
    pub scaling: bool,
}

impl RunView {
    fn barrier_met(&self) -> bool {
        self.done >= self.instances
    }
    fn final_state(&self) -> RunState {
        if self.aborted {
            RunState::Aborted
        } else {
            RunState::Done
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The run was created and its parameters written.
    Created,
    /// An instance completed the run's current state.
    Completed,
    /// The abort flag was raised just now (first writer).
    Aborted,
    /// The user terminated the run.
    Terminate,
    /// Instances were added to or removed from a scalable run in Ready.
    Scale,
    /// The server restarted with the run unfinished; `unstarted`: some of its instances were
    /// never started (their agent token was in memory only, so they cannot be now).
    Recovered { unstarted: bool },
    /// The run stayed too long in its state; `pending` names the instances not done.
    /// `repeated`: the state already timed out once and the run is still stuck in it.
    Timeout { pending: Vec<String>, minutes: i64, repeated: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    SetState(RunState),
    StartInstances,
    StopInstances,
    RaiseAbort(String),
    /// Keep the build instance's file system as the image's built image.
    CommitImage,
    /// The scaling cycle is over: stop the leaving instances, settle the new ones.
    FinishScaling,
}

/// The abort message of a run the server restarted under before all its instances started.
pub const RESTARTED_BEFORE_STARTS: &str = "The server restarted before all of the run's instances were started";

/// The transitional states and their successors.
fn successor(s: RunState) -> Option<RunState> {
    use RunState::*;
    match s {
        Provisioning => Some(Executing),
        Executing => Some(SendingReports),
        SendingReports => Some(Ready),
        _ => None,
    }
}

/// The actions that follow `event` on `run`.
pub fn next(run: &RunView, event: &Event) -> Vec<Action> {
    use RunState::*;
    if run.state.is_terminal() {
        // Stopping again is harmless and cleans up anything a crash left running.
        return if *event == Event::Terminate { vec![Action::StopInstances] } else { vec![] };
    }
    match event {
        Event::Created if run.state == Initializing => {
            let mut out = vec![Action::SetState(Provisioning), Action::StartInstances];
            out.extend(advance(&RunView { state: Provisioning, done: 0, ..run.clone() }));
            out
        }
        Event::Completed | Event::Aborted => advance(run),
        Event::Terminate => match run.state {
            Ready => finalize(run),
            Finalizing => vec![],
            // Terminated while scaling: it had reached Ready; it ends as a finished run does.
            _ if run.scaling => finalize(run),
            _ => vec![Action::SetState(Cancelled), Action::StopInstances],
        },
        Event::Recovered { unstarted: true } if run.state != Ready && run.state != Finalizing => vec![
            Action::RaiseAbort(RESTARTED_BEFORE_STARTS.into()),
            Action::SetState(Finalizing),
            Action::StopInstances,
            Action::SetState(Aborted),
        ],
        // Caught between Finalizing and the end: finish it.
        Event::Recovered { .. } if run.state == Finalizing => vec![Action::StopInstances, Action::SetState(run.final_state())],
        // Caught on its way through Ready: go on as the barrier would have.
        Event::Recovered { .. } if run.state == Ready => {
            if run.scalable || run.keep_running.keeps(run.aborted) {
                vec![]
            } else {
                finalize(run)
            }
        }
        Event::Recovered { .. } => advance(run),
        Event::Scale if run.state == Ready && run.scalable => {
            let mut out = vec![Action::SetState(Provisioning), Action::StartInstances];
            out.extend(advance(&RunView { state: Provisioning, done: 0, ..run.clone() }));
            out
        }
        Event::Timeout { pending, minutes, repeated } => {
            if run.state == Ready || run.state == Finalizing {
                vec![]
            } else if !run.aborted {
                vec![Action::RaiseAbort(format!(
                    "The run timed out: it stayed in {} longer than {minutes} min; not completed: {}",
                    run.state.as_str(),
                    if pending.is_empty() { "none".into() } else { pending.join(", ") }
                ))]
            } else if *repeated {
                // Aborted and still stuck a period later: the instances cannot finish; stop them.
                vec![Action::SetState(Finalizing), Action::StopInstances, Action::SetState(Aborted)]
            } else {
                // Aborted earlier (maybe by the previous state's timeout): the instances are
                // stopping their scripts and sending reports; give them one more period.
                vec![]
            }
        }
        _ => vec![],
    }
}

/// Passes every barrier that is met, from the current state on.
fn advance(run: &RunView) -> Vec<Action> {
    let mut out = Vec::new();
    let mut view = run.clone();
    while let Some(to) = successor(view.state).filter(|_| view.barrier_met()) {
        out.push(Action::SetState(to));
        view.state = to;
        view.done = 0; // nobody completed the state just entered
        if to == RunState::Ready {
            if view.build && !view.aborted {
                out.push(Action::CommitImage);
            }
            if view.scaling {
                out.push(Action::FinishScaling);
            }
            if !(view.scalable || view.keep_running.keeps(view.aborted)) {
                out.extend(finalize(&view));
            }
            break;
        }
    }
    out
}

fn finalize(run: &RunView) -> Vec<Action> {
    vec![Action::SetState(RunState::Finalizing), Action::StopInstances, Action::SetState(run.final_state())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use RunState::*;

    fn view(state: RunState, aborted: bool, keep: KeepRunning, completed: &[Option<RunState>]) -> RunView {
        let done = completed.iter().filter(|c| **c == Some(state)).count();
        RunView { state, aborted, keep_running: keep, instances: completed.len(), done, build: false, scalable: false, scaling: false }
    }

    #[test]
    fn transitions() {
        use KeepRunning::*;
        let p = Some(Provisioning);
        let e = Some(Executing);
        let r = Some(SendingReports);
        let timeout = Event::Timeout { pending: vec!["web.1".into()], minutes: 30, repeated: false };
        let again = Event::Timeout { pending: vec!["web.1".into()], minutes: 30, repeated: true };
        let restarted_abort = vec![RaiseAbort(RESTARTED_BEFORE_STARTS.into()), SetState(Finalizing), StopInstances, SetState(Aborted)];
        let cases: Vec<(&str, RunView, Event, Vec<Action>)> = vec![
            (
                "creation starts the instances",
                view(Initializing, false, Never, &[None, None]),
                Event::Created,
                vec![SetState(Provisioning), StartInstances],
            ),
            (
                "a run without instances goes straight through",
                view(Initializing, false, Never, &[]),
                Event::Created,
                vec![
                    SetState(Provisioning),
                    StartInstances,
                    SetState(Executing),
                    SetState(SendingReports),
                    SetState(Ready),
                    SetState(Finalizing),
                    StopInstances,
                    SetState(Done),
                ],
            ),
            ("the barrier waits for every instance", view(Provisioning, false, Never, &[p, None]), Event::Completed, vec![]),
            (
                "the last completion passes the barrier",
                view(Provisioning, false, Never, &[p, p]),
                Event::Completed,
                vec![SetState(Executing)],
            ),
            ("a late completion of the previous state does not count", view(Executing, false, Never, &[e, p]), Event::Completed, vec![]),
            (
                "reports done, nothing kept: finalize to Done",
                view(SendingReports, false, Never, &[r, r]),
                Event::Completed,
                vec![SetState(Ready), SetState(Finalizing), StopInstances, SetState(Done)],
            ),
            (
                "on-success keeps a successful run in Ready",
                view(SendingReports, false, OnSuccess, &[r]),
                Event::Completed,
                vec![SetState(Ready)],
            ),
            (
                "on-success does not keep an aborted run",
                view(SendingReports, true, OnSuccess, &[r]),
                Event::Completed,
                vec![SetState(Ready), SetState(Finalizing), StopInstances, SetState(Aborted)],
            ),
            ("on-error keeps an aborted run", view(SendingReports, true, OnError, &[r]), Event::Completed, vec![SetState(Ready)]),
            ("abort does not jump states", view(Executing, true, Never, &[None]), Event::Aborted, vec![]),
            (
                "terminate before Ready cancels",
                view(Executing, false, Never, &[None]),
                Event::Terminate,
                vec![SetState(Cancelled), StopInstances],
            ),
            (
                "terminate in Ready finalizes",
                view(Ready, true, Always, &[r]),
                Event::Terminate,
                vec![SetState(Finalizing), StopInstances, SetState(Aborted)],
            ),
            ("terminate after the end only stops", view(Done, false, Never, &[r]), Event::Terminate, vec![StopInstances]),
            ("nothing happens after the end", view(Aborted, true, Never, &[None]), Event::Completed, vec![]),
            (
                "a timeout raises the abort naming the instances",
                view(Executing, false, Never, &[None]),
                timeout.clone(),
                vec![RaiseAbort("The run timed out: it stayed in Executing longer than 30 min; not completed: web.1".into())],
            ),
            (
                "a first timeout of an already aborted run waits one more period",
                view(SendingReports, true, Never, &[None]),
                timeout.clone(),
                vec![],
            ),
            (
                "a repeated timeout stops an aborted run",
                view(Executing, true, Never, &[None]),
                again,
                vec![SetState(Finalizing), StopInstances, SetState(Aborted)],
            ),
            ("Ready never times out", view(Ready, false, Always, &[r]), timeout, vec![]),
            (
                "a build keeps its image at Ready, then stops",
                RunView { build: true, ..view(SendingReports, false, Never, &[r]) },
                Event::Completed,
                vec![SetState(Ready), CommitImage, SetState(Finalizing), StopInstances, SetState(Done)],
            ),
            (
                "an aborted build keeps nothing",
                RunView { build: true, ..view(SendingReports, true, Never, &[r]) },
                Event::Completed,
                vec![SetState(Ready), SetState(Finalizing), StopInstances, SetState(Aborted)],
            ),
            (
                "a scalable run stays in Ready whatever keep-running says",
                RunView { scalable: true, ..view(SendingReports, false, Never, &[r]) },
                Event::Completed,
                vec![SetState(Ready)],
            ),
            (
                "scaling takes a scalable run round again",
                RunView { scalable: true, scaling: true, ..view(Ready, false, Never, &[r, None]) },
                Event::Scale,
                vec![SetState(Provisioning), StartInstances],
            ),
            ("a run that is not scalable is not scaled", view(Ready, false, Always, &[r]), Event::Scale, vec![]),
            (
                "scaling only from Ready",
                RunView { scalable: true, scaling: true, ..view(Executing, false, Never, &[None]) },
                Event::Scale,
                vec![],
            ),
            (
                "back in Ready the scaling finishes and the run stays",
                RunView { scalable: true, scaling: true, ..view(SendingReports, false, Never, &[r, r]) },
                Event::Completed,
                vec![SetState(Ready), FinishScaling],
            ),
            (
                "a restart before every instance started aborts (not cancels) the run",
                view(Provisioning, false, Never, &[p, None]),
                Event::Recovered { unstarted: true },
                restarted_abort.clone(),
            ),
            (
                "a restart in Initializing aborts too",
                view(Initializing, false, Never, &[None]),
                Event::Recovered { unstarted: true },
                restarted_abort,
            ),
            (
                "a restart in Finalizing finishes it",
                view(Finalizing, false, Never, &[r]),
                Event::Recovered { unstarted: false },
                vec![StopInstances, SetState(Done)],
            ),
            (
                "a restart in Ready of a run that keeps nothing ends it",
                view(Ready, false, Never, &[r]),
                Event::Recovered { unstarted: false },
                vec![SetState(Finalizing), StopInstances, SetState(Done)],
            ),
            (
                "a restart in Ready of a kept run leaves it there",
                view(Ready, false, Always, &[r]),
                Event::Recovered { unstarted: false },
                vec![],
            ),
            (
                "a restart with a met barrier passes it",
                view(Executing, false, Never, &[e, e]),
                Event::Recovered { unstarted: false },
                vec![SetState(SendingReports)],
            ),
            (
                "terminated while scaling, it finalizes",
                RunView { scalable: true, scaling: true, ..view(Executing, false, Never, &[None]) },
                Event::Terminate,
                vec![SetState(Finalizing), StopInstances, SetState(Done)],
            ),
        ];
        for (what, run, event, want) in cases {
            assert_eq!(next(&run, &event), want, "{what}");
        }
    }
}
