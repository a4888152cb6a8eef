//! Timed triggers of a stage: `interval`, `date` and `cron`.
//!
//! The original hands these to APScheduler: intervals are parsed with
//! `pytimeparse` (`"10m"`, `"1d 3h 30m 10s"`, `"1:30:00"`), dates with
//! `dateutil` (`"2021-01-14 18:00:00"`, UTC), cron with 5 fields
//! (minute hour day month day-of-week). This module parses the same forms
//! and computes the next firing time.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// A parsed timed trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Timer {
    /// Every N seconds.
    Interval(i64),
    /// Once, at a time.
    Date(DateTime<Utc>),
    /// On a cron schedule.
    Cron(Box<croner::Cron>),
}

impl Timer {
    /// The kind name stored with the timer.
    pub fn kind(&self) -> &'static str {
        match self {
            Timer::Interval(_) => "interval",
            Timer::Date(_) => "date",
            Timer::Cron(_) => "cron",
        }
    }

    /// The next firing strictly after `after`, if any.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timer::Interval(secs) => Some(after + chrono::Duration::seconds((*secs).max(1))),
            Timer::Date(at) => (*at > after).then_some(*at),
            Timer::Cron(c) => c.find_next_occurrence(&after, false).ok(),
        }
    }
}

/// Parse a duration as `pytimeparse` does; `None` when it is not one.
pub fn parse_interval(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<f64>() {
        return (n > 0.0).then_some(n.round() as i64);
    }
    if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let nums: Option<Vec<f64>> = parts.iter().map(|p| p.trim().parse::<f64>().ok()).collect();
        let nums = nums?;
        let secs = match nums.as_slice() {
            [m, sec] => m * 60.0 + sec,
            [h, m, sec] => h * 3600.0 + m * 60.0 + sec,
            [d, h, m, sec] => d * 86400.0 + h * 3600.0 + m * 60.0 + sec,
            _ => return None,
        };
        return (secs > 0.0).then_some(secs.round() as i64);
    }
    let mut total = 0.0;
    let mut rest = s.as_str();
    let mut matched = false;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "w" | "wk" | "wks" | "week" | "weeks" => 604_800.0,
            "d" | "dy" | "dys" | "day" | "days" => 86_400.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "s" | "sec" | "secs" | "second" | "seconds" | "" => 1.0,
            _ => return None,
        };
        total += n * mult;
        matched = true;
    }
    (matched && total > 0.0).then_some(total.round() as i64)
}

/// Parse a date as `dateutil` would for the usual forms; naive times are UTC.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(t) = crate::model::parse_timestamp(s) {
        return Some(t);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    for fmt in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
        }
    }
    None
}

/// Parse a 5-field cron expression.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    let fields = s.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "cron '{s}' has {fields} fields: use 5 (minute hour day month day_of_week)"
        ));
    }
    croner::Cron::from_str(s).map_err(|e| format!("invalid cron '{s}': {e}"))
}

/// The timed triggers of a schema's `triggers` object, with their specs.
/// Errors name the bad trigger.
pub fn timers_of(triggers: Option<&Value>) -> Result<Vec<(Timer, String)>, String> {
    let mut out = Vec::new();
    let Some(t) = triggers.and_then(Value::as_object) else {
        return Ok(out);
    };
    if let Some(v) = t.get("interval") {
        let spec = value_text(v);
        let secs = parse_interval(&spec).ok_or_else(|| {
            format!("incorrect interval '{spec}': use e.g. '10m' or '1d 3h 30m 10s'")
        })?;
        out.push((Timer::Interval(secs), spec));
    }
    if let Some(v) = t.get("date") {
        let spec = value_text(v);
        let at = parse_date(&spec)
            .ok_or_else(|| format!("incorrect date '{spec}': use e.g. '2021-01-14 18:00:00'"))?;
        out.push((Timer::Date(at), spec));
    }
    if let Some(v) = t.get("cron") {
        let spec = value_text(v);
        out.push((Timer::Cron(Box::new(parse_cron(&spec)?)), spec));
    }
    Ok(out)
}

/// A repository trigger (`triggers.repo`): the repositories and branches
/// to poll, how often, and how to fetch them.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoTrigger {
    /// `(url, branch)` pairs: `url`/`branch`, then each of `repos`.
    pub repos: Vec<(String, String)>,
    /// Seconds between polls.
    pub interval: i64,
    /// `-c key=value` options of git.
    pub git_cfg: Vec<(String, String)>,
    /// Name of a project secret holding an access token (HTTPS repositories).
    pub access_token: Option<String>,
}

/// Timer kind of repository triggers in `stage_timers`.
pub const REPO_TIMER: &str = "repo";

/// The repository trigger of a schema's `triggers`, if any; errors name
/// what is wrong with it.
pub fn repo_trigger_of(triggers: Option<&Value>) -> Result<Option<RepoTrigger>, String> {
    let Some(r) = triggers.and_then(|t| t.get("repo")) else {
        return Ok(None);
    };
    let Some(o) = r.as_object() else {
        return Err("triggers.repo must be an object: {\"url\": ..., \"branch\": ..., \"interval\": \"60s\"}".into());
    };
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
    let mut repos = Vec::new();
    let branch_of =
        |m: &serde_json::Map<String, Value>| text(m.get("branch")).unwrap_or("master").to_string();
    if let Some(url) = text(o.get("url")) {
        repos.push((url.to_string(), branch_of(o)));
    }
    for r in o
        .get("repos")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let m = r
            .as_object()
            .ok_or("triggers.repo.repos items must be objects with url and branch")?;
        let url = text(m.get("url")).ok_or("triggers.repo.repos items need a url")?;
        repos.push((url.to_string(), branch_of(m)));
    }
    if repos.is_empty() {
        return Err("triggers.repo needs a url (or repos: [{url, branch}])".into());
    }
    if let Some((bad, _)) = repos
        .iter()
        .find(|(u, _)| !crate::engine::repo::is_git_url(u))
    {
        return Err(format!(
            "triggers.repo: '{bad}' is not a git repository URL (https, http, ssh, git, file, user@host:path or an absolute path)"
        ));
    }
    let spec = o
        .get("interval")
        .map(value_text)
        .unwrap_or_else(|| "60s".into());
    let interval = parse_interval(&spec).ok_or_else(|| {
        format!("incorrect triggers.repo.interval '{spec}': use e.g. '60s' or '10m'")
    })?;
    let git_cfg: Vec<(String, String)> = o
        .get("git_cfg")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect())
        .unwrap_or_default();
    if let Some((k, _)) = git_cfg
        .iter()
        .find(|(k, _)| !crate::engine::repo::server_git_key_allowed(k))
    {
        return Err(format!(
            "triggers.repo.git_cfg: git config '{k}' is not allowed on the server; only http.* transfer settings (e.g. http.lowSpeedTime, http.sslVerify, http.proxy)"
        ));
    }
    let access_token = text(o.get("access-token")).map(str::to_string);
    Ok(Some(RepoTrigger {
        repos,
        interval,
        git_cfg,
        access_token,
    }))
}

fn value_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Rebuild a timer from its stored kind and spec.
pub fn timer_from_stored(kind: &str, spec: &str) -> Option<Timer> {
    match kind {
        "interval" => parse_interval(spec).map(Timer::Interval),
        "date" => parse_date(spec).map(Timer::Date),
        "cron" => parse_cron(spec).ok().map(|c| Timer::Cron(Box::new(c))),
        crate::engine::stage_repo::SCHEMA_REPO_TIMER => parse_interval(spec).map(Timer::Interval),
        REPO_TIMER => serde_json::from_str::<Value>(spec)
            .ok()
            .and_then(|v| {
                repo_trigger_of(Some(&serde_json::json!({ "repo": v })))
                    .ok()
                    .flatten()
            })
            .map(|r| Timer::Interval(r.interval)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intervals_like_pytimeparse() {
        assert_eq!(parse_interval("10m"), Some(600));
        assert_eq!(parse_interval("60m"), Some(3600));
        assert_eq!(parse_interval("10h"), Some(36_000));
        assert_eq!(
            parse_interval("1d 3h 30m 10s"),
            Some(86_400 + 3 * 3600 + 1800 + 10)
        );
        assert_eq!(parse_interval("2h32m"), Some(2 * 3600 + 32 * 60));
        assert_eq!(parse_interval("1.5 hours"), Some(5400));
        assert_eq!(parse_interval("4:13"), Some(253));
        assert_eq!(parse_interval("1:00:00"), Some(3600));
        assert_eq!(parse_interval("45"), Some(45));
        assert_eq!(parse_interval("1w"), Some(604_800));
        for bad in ["", "abc", "10 parsecs", "0", "-5m"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_and_crons() {
        let d = parse_date("2021-01-14 18:00:00").unwrap();
        assert_eq!(d, Utc.with_ymd_and_hms(2021, 1, 14, 18, 0, 0).unwrap());
        assert!(parse_date("14th of never").is_none());
        let c = parse_cron("0 13 */2 * *").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 29, 14, 0, 0).unwrap();
        let next = Timer::Cron(Box::new(c)).next_after(from).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 1, 13, 0, 0).unwrap());
        assert!(parse_cron("0 1 * * * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn past_dates_never_fire() {
        let t = Timer::Date(Utc.with_ymd_and_hms(2021, 1, 14, 18, 0, 0).unwrap());
        assert_eq!(t.next_after(Utc::now()), None);
    }

    #[test]
    fn timers_of_a_schema() {
        let trig =
            serde_json::json!({"parent": true, "interval": "10m", "cron": "*/15 9-17 * * MON-FRI"});
        let timers = timers_of(Some(&trig)).unwrap();
        assert_eq!(timers.len(), 2);
        assert_eq!(timers[0].0, Timer::Interval(600));
        assert!(timers_of(Some(&serde_json::json!({"interval": "soon"}))).is_err());
    }
}
