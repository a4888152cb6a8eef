//! What state an item is in, in one word and one colour, and how long it
//! took: the same vocabulary on every view.
//!
//! In progress is yellow (running) or blue (waiting), passed green, failed
//! red, cancelled and skipped grey.

use kraken_core::model::{
    Branch, Flow, Job, Outcome, Project, Run, Step, Timestamp, job_state, step_status, tc_change,
    tc_result,
};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

/// The state of a project, branch, flow, run, job or step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Waiting for an agent or for its turn.
    Waiting,
    /// Running.
    Running,
    /// Waiting for a person to start it.
    Manual,
    /// Ended well.
    Passed,
    /// Ended badly.
    Failed,
    /// Stopped by a person.
    Cancelled,
    /// Not run.
    Skipped,
    /// Nothing to show (no flow yet).
    None,
}

impl Status {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Manual => "manual",
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
            Status::None => "-",
        }
    }

    /// Its colour.
    pub fn color(self) -> Color {
        match self {
            Status::Waiting => Color::Blue,
            Status::Running => Color::Yellow,
            Status::Manual => Color::Magenta,
            Status::Passed => Color::Green,
            Status::Failed => Color::Red,
            Status::Cancelled | Status::Skipped | Status::None => Color::DarkGray,
        }
    }

    /// Its style (failures are bold).
    pub fn style(self) -> Style {
        let s = Style::new().fg(self.color());
        if self == Status::Failed {
            s.add_modifier(Modifier::BOLD)
        } else {
            s
        }
    }

    /// The word in its colour.
    pub fn span(self) -> Span<'static> {
        Span::styled(self.word(), self.style())
    }

    /// Whether it is still going (durations move, the screen ticks).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Waiting | Status::Running)
    }
}

impl Status {
    /// The status of a decided (or manual) verdict; `live` is the status to
    /// show while it is still running (waiting or running).
    fn of(outcome: &Outcome, live: Status) -> Status {
        match outcome {
            Outcome::Running => live,
            Outcome::Manual => Status::Manual,
            Outcome::Passed => Status::Passed,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Cancelled(_) => Status::Cancelled,
        }
    }
}

/// A job's status.
pub fn job_status(job: &Job) -> Status {
    let live = match job.state {
        job_state::ASSIGNED | job_state::EXECUTING_FINISHED => Status::Running,
        _ => Status::Waiting,
    };
    Status::of(&job.outcome(), live)
}

/// A step's status within its job.
pub fn step_status_of(step: &Step, job: &Job) -> Status {
    match step.status {
        Some(step_status::IN_PROGRESS) => {
            if job.state == job_state::COMPLETED {
                Status::Cancelled
            } else {
                Status::Running
            }
        }
        Some(step_status::DONE) => Status::Passed,
        Some(step_status::ERROR) => Status::Failed,
        Some(step_status::SKIPPED) => Status::Skipped,
        _ => {
            if job.state == job_state::COMPLETED {
                Status::Skipped
            } else {
                Status::Waiting
            }
        }
    }
}

/// A run's status: its [`Run::outcome`], and while it runs whether any of
/// its jobs is running or all wait.
pub fn run_status(run: &Run) -> Status {
    let live = if run.jobs_executing > 0 || run.jobs_processing > 0 {
        Status::Running
    } else if run.jobs_waiting > 0 || run.jobs_total == 0 {
        Status::Waiting
    } else {
        Status::Running
    };
    Status::of(&run.outcome(), live)
}

/// A flow's status: its [`Flow::outcome`]; while it runs, waiting when all
/// its runs wait.
pub fn flow_status(flow: &Flow) -> Status {
    let waiting =
        !flow.runs.is_empty() && flow.runs.iter().all(|r| run_status(r) == Status::Waiting);
    let live = if waiting {
        Status::Waiting
    } else {
        Status::Running
    };
    Status::of(&flow.outcome(), live)
}

/// A branch's status: its latest CI flow's.
pub fn branch_status(b: &Branch) -> Status {
    if matches!(&b.last_incomplete_flow, Some(Some(_))) {
        return Status::Running;
    }
    match &b.last_completed_flow {
        Some(Some(f)) if f.errors => Status::Failed,
        Some(Some(_)) => Status::Passed,
        _ => Status::None,
    }
}

/// A project's status: running if any branch runs, else failed if any
/// branch failed, else passed if any passed.
pub fn project_status(p: &Project) -> Status {
    let all: Vec<Status> = p.branches.iter().map(branch_status).collect();
    [Status::Running, Status::Failed, Status::Passed]
        .into_iter()
        .find(|s| all.contains(s))
        .unwrap_or(Status::None)
}

/// Duration from `start` to `end` (or now): `45s`, `1m 0s`, `2h 3m 4s`, `1d 2h 3m`.
pub fn duration(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match start {
        Some(s) => secs_to_txt(s.secs_until(end.unwrap_or_else(Timestamp::now))),
        None => String::new(),
    }
}

/// Seconds as `1m 5s`. Unlike the API's `duration` text (which keeps the
/// original's quirk of writing exactly 60 s as `0s`), every unit from the
/// largest one on is shown.
pub fn secs_to_txt(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {sec}s")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// How long ago a time was (`12s ago`, `5m ago`, `3h ago`, `2d ago`).
pub fn ago(t: Timestamp) -> String {
    let s = t.secs_until(Timestamp::now());
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else if s < 86_400 {
        format!("{}h ago", s / 3600)
    } else {
        format!("{}d ago", s / 86_400)
    }
}

/// A test result's word and colour.
pub fn result_span(result: i64) -> Span<'static> {
    let status = match result {
        tc_result::PASSED => Status::Passed,
        tc_result::FAILED | tc_result::ERROR => Status::Failed,
        _ => Status::Skipped,
    };
    Span::styled(tc_result::name(result), status.style())
}

/// A test result change (`new`, `regr`, `fix`) in its colour.
pub fn change_span(change: i64) -> Span<'static> {
    match change {
        tc_change::REGR => Span::styled("regr", Status::Failed.style()),
        tc_change::FIX => Span::styled("fix", Style::new().fg(Color::Green)),
        tc_change::NEW => Span::styled("new", Style::new().fg(Color::Cyan)),
        _ => Span::styled("", Style::new()),
    }
}

/// Whether a test result counts as a failure.
pub fn result_failed(result: i64) -> bool {
    matches!(result, tc_result::FAILED | tc_result::ERROR)
}

/// Style of secondary text.
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Style of headers.
pub fn header() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Style of the selected row.
pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_whole_minutes() {
        assert_eq!(secs_to_txt(0), "0s");
        assert_eq!(secs_to_txt(59), "59s");
        assert_eq!(secs_to_txt(60), "1m 0s");
        assert_eq!(secs_to_txt(3600), "1h 0m 0s");
        assert_eq!(secs_to_txt(90_061), "1d 1h 1m");
        let t = Timestamp(1_000_000);
        assert_eq!(duration(Some(t), Some(Timestamp(1_060_000))), "1m 0s");
        assert_eq!(duration(None, Some(t)), "");
    }
}
