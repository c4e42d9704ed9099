//! Run states (`docs/runs.md`). Transitions are decided by the engine's orchestrator;
//! this is only the vocabulary and its order.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RunState {
    Initializing,
    Provisioning,
    Executing,
    SendingReports,
    Ready,
    Finalizing,
    Done,
    Aborted,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 9] = [
        Self::Initializing,
        Self::Provisioning,
        Self::Executing,
        Self::SendingReports,
        Self::Ready,
        Self::Finalizing,
        Self::Done,
        Self::Aborted,
        Self::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Aborted | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::Provisioning => "Provisioning",
            Self::Executing => "Executing",
            Self::SendingReports => "SendingReports",
            Self::Ready => "Ready",
            Self::Finalizing => "Finalizing",
            Self::Done => "Done",
            Self::Aborted => "Aborted",
            Self::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_three_states_are_terminal() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
        let terminal: Vec<_> = RunState::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [RunState::Done, RunState::Aborted, RunState::Cancelled]);
    }
}
