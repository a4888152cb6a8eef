//! Notifications of run results (§5.11 of the original, and more): commit
//! statuses on GitHub, GitLab and Gitea, Slack messages, e-mail, Discord,
//! Radicle patch comments and a generic signed webhook.
//!
//! This module knows what to send and how; *when* is the engine's business
//! (`engine/notify.rs` queues one background task per run, event and
//! channel, and retries it with backoff). Everything here works on a stage
//! schema's `notification` section already substituted (secrets in it
//! resolved) and on a [`Summary`] of the run, which carries no secret.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

mod senders;

pub use senders::{check_slack, check_smtp, send};

/// Every channel, in the order a run's notifications are queued.
pub const CHANNELS: [&str; 8] = [
    "github", "gitlab", "gitea", "slack", "email", "discord", "radicle", "webhook",
];

/// The header carrying the HMAC-SHA256 of a webhook's body.
pub const SIGNATURE_HEADER: &str = "X-Kraken-Signature-256";

/// How long one request to an endpoint may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// When a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A run started (commit statuses become `pending`; webhooks).
    Start,
    /// A run ended and its results were analysed.
    End,
}

impl Event {
    /// `start` or `end`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::End => "end",
        }
    }

    /// From [`Event::name`].
    pub fn parse(s: &str) -> Option<Event> {
        match s {
            "start" => Some(Event::Start),
            "end" => Some(Event::End),
            _ => None,
        }
    }
}

/// The settings senders read (group `notification`, and `general.server_url`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Base of the links to runs (`general.server_url`).
    pub server_url: String,
    /// GitHub's API (`https://api.github.com`, or a GitHub Enterprise one).
    pub github_api_url: String,
    /// GitLab's API (empty: `https://<host of the repository>/api/v4`).
    pub gitlab_api_url: String,
    /// Gitea's API (empty: `https://<host of the repository>/api/v1`).
    pub gitea_api_url: String,
    /// Radicle's HTTP API (empty: `https://<host of the repository>`).
    pub radicle_api_url: String,
    /// Slack's Web API (`https://slack.com/api`).
    pub slack_api_url: String,
    /// Slack bot token.
    pub slack_token: String,
    /// `host[:port]` of the SMTP server.
    pub smtp_server: String,
    /// Implicit TLS (SMTPS) rather than plain SMTP.
    pub smtp_tls: bool,
    /// Sender address.
    pub smtp_from: String,
    /// SMTP user (no login when empty).
    pub smtp_user: String,
    /// SMTP password.
    pub smtp_password: String,
}

/// The commit a flow was triggered by (the first record of its trigger data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// Repository URL as the trigger names it (`clone_url`, ...).
    pub repo: String,
    /// The commit (`after`).
    pub sha: String,
    /// The ref pushed, or the pull request's head ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// `github-push`, `gitlab-pull_request`, ...
    pub trigger: String,
    /// The pull request / patch id, when the trigger is one.
    pub pull_request: Option<String>,
    /// The patch revision (Radicle), when the trigger names one.
    #[serde(skip)]
    pub revision: Option<String>,
}

impl Commit {
    /// The commit of trigger data (a list of trigger records, or one record);
    /// `None` when it names no commit.
    pub fn from_trigger_data(data: &Value) -> Option<Commit> {
        let first = match data {
            Value::Array(a) => a.first()?,
            other => other,
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        let sha = text(first.get("after"));
        let repo = text(first.get("repo"));
        if sha.is_empty() || repo.is_empty() {
            return None;
        }
        let pr = first.get("pull_request");
        let pull_request = pr.and_then(|p| {
            ["number", "id"].iter().find_map(|k| match p.get(*k) {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
        });
        let git_ref = match pr
            .and_then(|p| p.pointer("/head/ref"))
            .and_then(Value::as_str)
        {
            Some(r) => r.to_string(),
            None => text(first.get("ref")),
        };
        let revision = pr
            .and_then(|p| p.get("revision").or_else(|| p.pointer("/head/revision")))
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(Commit {
            repo,
            sha,
            git_ref,
            trigger: text(first.get("trigger")),
            pull_request,
            revision,
        })
    }

    /// The repository's host URL (`https://host[:port]`) and its path
    /// without the leading `/` and a trailing `.git` (`org/repo`).
    pub fn host_and_path(&self) -> Option<(String, String)> {
        // SSH forms (`git@host:org/repo`, `ssh://host:2222/org/repo`) as https.
        let repo = crate::webhooks::http_url(&self.repo);
        let (scheme, rest) = repo.split_once("://")?;
        let (host, path) = rest.split_once('/')?;
        let host = host.rsplit('@').next().unwrap_or(host);
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        if host.is_empty() || path.is_empty() {
            return None;
        }
        let scheme = if scheme == "http" { "http" } else { "https" };
        Some((format!("{scheme}://{host}"), path.to_string()))
    }
}

/// What a notification says about a run: its JSON is the generic
/// webhook's body, and the other channels take their text from it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `start` or `end`.
    pub event: &'static str,
    /// `pending` (start), `success` or `failure`.
    pub result: String,
    /// Why it failed (failed jobs, regressions, new issues), or empty.
    pub reason: String,
    /// Project.
    pub project: Named,
    /// Branch.
    pub branch: Named,
    /// Flow.
    pub flow: FlowInfo,
    /// Stage name.
    pub stage: String,
    /// Run.
    pub run: RunInfo,
    /// Test counters.
    pub tests: Tests,
    /// Issue counters.
    pub issues: Issues,
    /// Job counters.
    pub jobs: Jobs,
    /// The commit that triggered the flow, when any.
    pub commit: Option<Commit>,
}

/// An id and a name.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// The flow of a notified run.
#[derive(Debug, Clone, Serialize)]
pub struct FlowInfo {
    /// Id.
    pub id: i64,
    /// Label (`12.` by default).
    pub label: String,
    /// `ci` or `dev`.
    pub kind: String,
    /// Link to it.
    pub url: String,
}

/// The notified run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Id.
    pub id: i64,
    /// Label.
    pub label: Option<String>,
    /// State (`in-progress`, `processed`, ...).
    pub state: String,
    /// Link to it (`<server_url>/runs/<id>`).
    pub url: String,
    /// Started (RFC 3339), when it did.
    pub started: Option<String>,
    /// Finished (RFC 3339), when it did.
    pub finished: Option<String>,
    /// Duration as the API shows it (`1m 3s`).
    pub duration: String,
    /// Duration in seconds.
    pub duration_s: i64,
}

/// Test counters of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tests {
    /// All.
    pub total: i64,
    /// Passed.
    pub passed: i64,
    /// Not run.
    pub not_run: i64,
    /// Seen for the first time.
    pub new: i64,
    /// Passed before, not now.
    pub regressions: i64,
    /// Failed before, pass now.
    pub fixes: i64,
}

/// Issue counters of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Issues {
    /// All.
    pub total: i64,
    /// New since the previous run.
    pub new: i64,
}

/// Job counters of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Jobs {
    /// All.
    pub total: i64,
    /// Failed.
    pub failed: i64,
}

impl Summary {
    /// Whether the run failed (failed jobs, regressions or new issues).
    pub fn failed(&self) -> bool {
        self.result == "failure"
    }

    /// The commit status description: `regressions: N, fixes: N, new issues: N`
    /// at the end, `waiting for results` at the start.
    pub fn status_description(&self) -> String {
        match self.event {
            "start" => "waiting for results".to_string(),
            _ => format!(
                "regressions: {}, fixes: {}, new issues: {}",
                self.tests.regressions, self.tests.fixes, self.issues.new
            ),
        }
    }

    /// The commit status context: `kraken / <stage> [<flow label>]`.
    pub fn status_context(&self) -> String {
        format!("kraken / {} [{}]", self.stage, self.flow.label)
    }

    /// One line: where, what, the verdict and the counters.
    pub fn headline(&self) -> String {
        let kind = if self.flow.kind == "dev" { "DEV" } else { "CI" };
        let mut s = format!(
            "{} {}: project {}, branch {} {}, flow {}, stage {}, run {}",
            self.verdict_word(),
            self.event_word(),
            self.project.name,
            self.branch.name,
            kind,
            self.flow.label,
            self.stage,
            self.run.id
        );
        if self.event == "end" {
            s.push_str(&format!(" in {}", self.run.duration));
        }
        s
    }

    /// The counters as lines `name: value` (end only).
    pub fn counters(&self) -> Vec<(&'static str, String)> {
        if self.event == "start" {
            return Vec::new();
        }
        vec![
            (
                "jobs",
                format!("{} ({} failed)", self.jobs.total, self.jobs.failed),
            ),
            (
                "tests",
                format!(
                    "{} ({} passed, {} not run, {} new)",
                    self.tests.total, self.tests.passed, self.tests.not_run, self.tests.new
                ),
            ),
            ("regressions", self.tests.regressions.to_string()),
            ("fixes", self.tests.fixes.to_string()),
            (
                "issues",
                format!("{} ({} new)", self.issues.total, self.issues.new),
            ),
        ]
    }

    fn verdict_word(&self) -> &'static str {
        match self.result.as_str() {
            "success" => "Passed",
            "failure" => "Failed",
            _ => "Started",
        }
    }

    fn event_word(&self) -> &'static str {
        if self.event == "start" {
            "run"
        } else {
            "run ended"
        }
    }

    /// The whole message as plain text (e-mail, Radicle comments).
    pub fn text(&self) -> String {
        let mut s = self.headline();
        s.push('\n');
        if !self.reason.is_empty() {
            s.push_str(&format!("reason: {}\n", self.reason));
        }
        for (k, v) in self.counters() {
            s.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(c) = &self.commit {
            s.push_str(&format!("commit: {} {}\n", c.repo, c.sha));
        }
        s.push_str(&format!("{}\n", self.run.url));
        s
    }

    /// The JSON body of the generic webhook.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

/// What a notification needs beyond the summary: the channel's section of
/// the substituted `notification` config, and the settings.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The channel (`github`, ...).
    pub channel: &'a str,
    /// The channel's config (`notification.<channel>`), secrets resolved.
    pub config: &'a Value,
    /// The run summary.
    pub summary: &'a Summary,
    /// Settings.
    pub settings: &'a Settings,
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection refused, timeout, 5xx, 429).
    #[error("{0}")]
    Retry(String),
    /// Trying again would not help (bad configuration, refused request).
    #[error("{0}")]
    Fatal(String),
}

/// Whether `channel` sends anything for `event` given its `config` and the
/// flow's commit (commit statuses need one; Radicle a patch).
pub fn applies(channel: &str, event: Event, config: &Value, commit: Option<&Commit>) -> bool {
    if config.is_null() {
        return false;
    }
    match channel {
        "github" | "gitlab" | "gitea" => commit.is_some(),
        "radicle" => event == Event::End && commit.is_some_and(|c| c.pull_request.is_some()),
        "slack" | "email" | "discord" => event == Event::End,
        "webhook" => true,
        _ => false,
    }
}

/// Where a notification goes, for people: from the masked config, so no
/// secret is shown.
pub fn target(channel: &str, masked: &Value, commit: Option<&Commit>) -> String {
    let field = |k: &str| {
        masked
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let commit_of = |c: Option<&Commit>| {
        c.map(|c| format!("{} {}", c.repo, c.sha))
            .unwrap_or_default()
    };
    match channel {
        "github" | "gitlab" | "gitea" => format!("{channel} status of {}", commit_of(commit)),
        "radicle" => format!(
            "radicle patch {} of {}",
            commit
                .and_then(|c| c.pull_request.clone())
                .unwrap_or_default(),
            commit.map(|c| c.repo.as_str()).unwrap_or("")
        ),
        "slack" => format!("slack channel {}", field("channel")),
        "email" => match masked {
            Value::String(s) => format!("e-mail to {s}"),
            _ => String::new(),
        },
        "discord" => format!("discord webhook {}", field("webhook")),
        "webhook" => format!("webhook {}", field("url")),
        _ => String::new(),
    }
}

/// The signature header value of a webhook body: `sha256=<hex HMAC-SHA256>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length: the `else` is never taken.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The delay before attempt `attempt + 1` (1-based attempts made so far):
/// `first`, doubled each time, at most 10 minutes.
pub fn backoff(first_ms: i64, attempt: i64) -> i64 {
    let first = first_ms.max(1);
    let shift = attempt.clamp(1, 20) - 1;
    first.saturating_mul(1_i64 << shift).min(600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1000, 1), 1000);
        assert_eq!(backoff(1000, 2), 2000);
        assert_eq!(backoff(1000, 4), 8000);
        assert_eq!(backoff(1000, 40), 600_000);
    }

    #[test]
    fn the_commit_of_a_push_and_of_a_pull_request() {
        let push = json!([{"trigger": "github-push", "ref": "refs/heads/main", "before": "a",
                           "after": "b1", "repo": "https://github.com/org/repo.git"}]);
        let c = Commit::from_trigger_data(&push).unwrap();
        assert_eq!(
            (c.sha.as_str(), c.git_ref.as_str()),
            ("b1", "refs/heads/main")
        );
        assert_eq!(
            c.host_and_path(),
            Some(("https://github.com".into(), "org/repo".into()))
        );
        let pr = json!([{"trigger": "github-pull_request", "action": "opened", "after": "c2",
                         "repo": "https://gitlab.example.com/group/sub/proj.git",
                         "pull_request": {"number": 7, "head": {"ref": "feature"}}}]);
        let c = Commit::from_trigger_data(&pr).unwrap();
        assert_eq!(c.pull_request.as_deref(), Some("7"));
        assert_eq!(c.git_ref, "feature");
        assert_eq!(c.host_and_path().unwrap().1, "group/sub/proj");
        assert!(Commit::from_trigger_data(&json!([{"trigger": "x"}])).is_none());
        assert!(Commit::from_trigger_data(&json!([])).is_none());
    }

    #[test]
    fn commit_statuses_need_a_commit_and_chat_only_tells_the_end() {
        let cfg = json!({"credentials": "u:t"});
        let c = Commit::default();
        assert!(applies("github", Event::Start, &cfg, Some(&c)));
        assert!(!applies("github", Event::End, &cfg, None));
        assert!(!applies(
            "slack",
            Event::Start,
            &json!({"channel": "x"}),
            None
        ));
        assert!(applies("slack", Event::End, &json!({"channel": "x"}), None));
        assert!(applies("webhook", Event::Start, &json!({"url": "x"}), None));
        assert!(!applies("radicle", Event::End, &cfg, Some(&c)));
        assert!(!applies("email", Event::End, &Value::Null, None));
    }
}
