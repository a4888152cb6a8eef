//! Incoming webhooks of GitHub, Gitea, GitLab and Radicle: authenticate a
//! delivery against a project's webhook settings and digest its payload into
//! the trigger data the original stores (`repo_changes`), §5.10.
//!
//! This module is pure: headers, body and settings in, a [`Verdict`] out.
//! Starting flows is the engine's part (`Engine::trigger_flow`).
//!
//! Beyond the original: GitHub's `X-Hub-Signature-256` (HMAC-SHA256) is
//! taken as well as the SHA-1 one, every comparison of a signature or token
//! runs in constant time, and each verdict carries a delivery key so the
//! same delivery never starts two flows.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Payloads larger than this are refused (GitHub caps its own at 25 MB).
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;

/// A provider of webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// Gitea (and Forgejo).
    Gitea,
    /// GitLab.
    GitLab,
    /// Radicle (radicle-httpd webhooks).
    Radicle,
}

impl Provider {
    /// The provider named in a webhook URL.
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "github" => Some(Provider::GitHub),
            "gitea" => Some(Provider::Gitea),
            "gitlab" => Some(Provider::GitLab),
            "radicle" => Some(Provider::Radicle),
            _ => None,
        }
    }

    /// The name in URLs, settings and trigger names.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
            Provider::Radicle => "radicle",
        }
    }

    /// The header naming the event.
    fn event_header(self) -> &'static str {
        match self {
            Provider::GitHub => "x-github-event",
            Provider::Gitea => "x-gitea-event",
            Provider::GitLab => "x-gitlab-event",
            Provider::Radicle => "x-radicle-event-type",
        }
    }

    /// The header carrying the provider's unique id of a delivery.
    fn delivery_header(self) -> &'static str {
        match self {
            Provider::GitHub => "x-github-delivery",
            Provider::Gitea => "x-gitea-delivery",
            Provider::GitLab => "x-gitlab-event-uuid",
            Provider::Radicle => "x-radicle-delivery",
        }
    }
}

/// What to do with a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Start (or join) a flow with this trigger data.
    Trigger {
        /// The trigger record (`{trigger, ref, before, after, repo, ...}`).
        data: Value,
        /// Identifies the delivery: the provider's delivery id when it sent
        /// one (`id:<value>`), else the payload's SHA-256 (`sha256:<hex>`).
        delivery: String,
    },
    /// Accepted and ignored (answered 204): an event or action that starts
    /// nothing, with the reason.
    Ignored(String),
    /// Refused (answered 400), with the reason; nothing starts.
    Refused(String),
}

/// Judge a delivery. `header` looks a request header up by its lower-case
/// name; `settings` is the project's `webhooks` object.
pub fn judge(
    provider: Provider,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    settings: &Value,
) -> Verdict {
    let Some(event) = header(provider.event_header()) else {
        return Verdict::Refused(format!(
            "missing {} event type in request header",
            provider.name()
        ));
    };
    let supported: &[&str] = match provider {
        Provider::GitHub | Provider::Gitea => &["push", "pull_request"],
        Provider::GitLab => &["Push Hook", "Merge Request Hook"],
        Provider::Radicle => &["push", "patch"],
    };
    if !supported.contains(&event.as_str()) {
        return Verdict::Ignored(format!("unsupported event {event}"));
    }
    let setting = |k: &str| settings.get(format!("{}_{k}", provider.name()));
    if setting("enabled").and_then(Value::as_bool) != Some(true) {
        return Verdict::Refused(format!("webhooks from {} disabled", provider.name()));
    }
    let secret = setting("secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Err(v) = authenticate(provider, header, body, secret) {
        return v;
    }
    // PostgreSQL's JSON cannot hold NUL characters: refused for every store alike.
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Verdict::Refused("payload holds a NUL character (\\u0000)".into());
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Verdict::Refused("payload is not a JSON object".into()),
        Err(e) => return Verdict::Refused(format!("payload is not valid JSON: {e}")),
    };
    let digested = match provider {
        Provider::GitHub | Provider::Gitea => digest_github_like(provider, &event, &req),
        Provider::GitLab => digest_gitlab(&event, &req),
        Provider::Radicle => digest_radicle(&event, &req),
    };
    let data = match digested {
        Ok(Digested::Trigger(d)) if !is_commit_id(d.get("after")) => {
            return Verdict::Refused(format!(
                "{} {event} payload: 'after' is not a commit id (40 or 64 hexadecimal digits)",
                provider.name()
            ));
        }
        Ok(Digested::Trigger(d)) => d,
        Ok(Digested::Ignore(msg)) => return Verdict::Ignored(msg),
        Err(missing) => {
            return Verdict::Refused(format!(
                "{} {event} payload lacks '{missing}'",
                provider.name()
            ));
        }
    };
    let delivery = match header(provider.delivery_header()).filter(|d| !d.is_empty()) {
        Some(id) => format!("id:{}:{id}", provider.name()),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    };
    Verdict::Trigger { data, delivery }
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits.
pub fn is_commit_id(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| {
        (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Check the signature or token of a delivery.
fn authenticate(
    provider: Provider,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secret: Option<&str>,
) -> Result<(), Verdict> {
    match provider {
        Provider::GitHub | Provider::Radicle => {
            // GitHub: checked only when a secret is set (as the original).
            let Some(secret) = secret else {
                return Ok(());
            };
            check_signature(header, body, secret)
        }
        Provider::Gitea => {
            let Some(secret) = secret else {
                return Err(Verdict::Refused(
                    "secret not configured for gitea webhook: set webhooks.gitea_secret of the project".into(),
                ));
            };
            check_signature(header, body, secret)
        }
        Provider::GitLab => {
            let Some(secret) = secret else {
                return Err(Verdict::Refused(
                    "secret not configured for gitlab webhook: set webhooks.gitlab_secret of the project".into(),
                ));
            };
            let Some(token) = header("x-gitlab-token") else {
                return Err(Verdict::Refused("missing token in request header".into()));
            };
            if constant_time_eq(token.as_bytes(), secret.as_bytes()) {
                Ok(())
            } else {
                Err(Verdict::Refused("Invalid token".into()))
            }
        }
    }
}

/// `X-Hub-Signature-256: sha256=<hex>` (preferred) or `X-Hub-Signature:
/// sha1=<hex>`, an HMAC of the raw body, verified in constant time.
fn check_signature(
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &str,
) -> Result<(), Verdict> {
    let (algo, hexsig) = match (header("x-hub-signature-256"), header("x-hub-signature")) {
        (Some(s), _) | (None, Some(s)) => match s.split_once('=') {
            Some((a, h)) => (a.to_string(), h.to_string()),
            None => return Err(Verdict::Refused("Invalid signature".into())),
        },
        (None, None) => {
            return Err(Verdict::Refused(
                "missing signature in request header".into(),
            ));
        }
    };
    let Ok(sig) = hex::decode(hexsig.trim()) else {
        return Err(Verdict::Refused("Invalid signature".into()));
    };
    let ok = match algo.as_str() {
        "sha256" => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(body);
            mac.verify_slice(&sig).is_ok()
        }
        "sha1" => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(body);
            mac.verify_slice(&sig).is_ok()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Verdict::Refused("Invalid signature".into()))
    }
}

/// Equal bytes, compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare the HMACs of both under one key: equal-length, constant-time.
    let key = b"kraken-token-compare";
    let mac = |v: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        m.update(v);
        m
    };
    mac(a).verify(&mac(b).finalize().into_bytes()).is_ok()
}

/// The HMAC-SHA256 signature header value of a body (`sha256=<hex>`), as
/// GitHub sends it: for tests and for tools that deliver webhooks.
pub fn sign_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HMAC-SHA1 signature header value of a body (`sha1=<hex>`).
pub fn sign_sha1(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

enum Digested {
    Trigger(Value),
    Ignore(String),
}

/// A field of the payload, or the name of the missing one.
fn field<'a>(v: &'a Value, path: &'static str) -> Result<&'a Value, &'static str> {
    path.split('.').try_fold(v, |v, k| v.get(k)).ok_or(path)
}

fn text(v: &Value, path: &'static str) -> Result<String, &'static str> {
    let f = field(v, path)?;
    Ok(f.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| f.to_string()))
}

fn digest_github_like(
    provider: Provider,
    event: &str,
    req: &Value,
) -> Result<Digested, &'static str> {
    let trigger = format!("{}-{event}", provider.name());
    if event == "push" {
        return Ok(Digested::Trigger(json!({
            "trigger": trigger,
            "ref": text(req, "ref")?,
            "before": text(req, "before")?,
            "after": text(req, "after")?,
            "repo": text(req, "repository.clone_url")?,
            "pusher": field(req, "pusher")?,
            "commits": field(req, "commits")?,
        })));
    }
    let action = text(req, "action")?;
    let actions: &[&str] = if provider == Provider::GitHub {
        &["opened", "synchronize"]
    } else {
        &["opened", "synchronize", "synchronized"]
    };
    if !actions.contains(&action.as_str()) {
        return Ok(Digested::Ignore(format!("unsupported action {action}")));
    }
    let pr = field(req, "pull_request")?;
    if provider == Provider::GitHub
        && action == "opened"
        && pr.get("commits").and_then(Value::as_i64) == Some(0)
    {
        return Ok(Digested::Ignore(
            "pull request with no commits, dropped".into(),
        ));
    }
    let (before, after) = match (
        req.get("before").and_then(Value::as_str),
        req.get("after").and_then(Value::as_str),
    ) {
        (Some(b), Some(a)) => (b.to_string(), a.to_string()),
        _ => (
            text(req, "pull_request.base.sha")?,
            text(req, "pull_request.head.sha")?,
        ),
    };
    if provider == Provider::Gitea && before == after {
        return Ok(Digested::Ignore(
            "pull request with no commits, dropped".into(),
        ));
    }
    Ok(Digested::Trigger(json!({
        "trigger": trigger,
        "action": action,
        "pull_request": pr,
        "before": before,
        "after": after,
        "repo": text(req, "repository.clone_url")?,
        "sender": field(req, "sender")?,
    })))
}

fn digest_gitlab(event: &str, req: &Value) -> Result<Digested, &'static str> {
    let trigger = format!("gitlab-{event}");
    if event == "Push Hook" {
        return Ok(Digested::Trigger(json!({
            "trigger": trigger,
            "ref": text(req, "ref")?,
            "before": text(req, "before")?,
            "after": text(req, "after")?,
            "repo": text(req, "repository.git_http_url")?,
            "pusher": {
                "full_name": req.get("user_name").cloned().unwrap_or(Value::Null),
                "username": req.get("user_username").cloned().unwrap_or(Value::Null),
                "email": req.get("user_email").cloned().unwrap_or(Value::Null),
            },
            "commits": field(req, "commits")?,
        })));
    }
    let obj = field(req, "object_attributes")?;
    let action = text(obj, "action")?;
    if action != "open" && action != "update" {
        return Ok(Digested::Ignore(format!("unsupported action {action}")));
    }
    let before = obj
        .get("oldrev")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let after = text(obj, "last_commit.id")?;
    if after == before {
        return Ok(Digested::Ignore(
            "merge request with no commits, dropped".into(),
        ));
    }
    let web_url = text(req, "project.web_url")?;
    let base_url = web_url
        .rsplitn(3, '/')
        .last()
        .unwrap_or_default()
        .to_string();
    let username = text(req, "user.username")?;
    let updated_at = obj
        .get("updated_at")
        .and_then(Value::as_str)
        .map(gitlab_time)
        .unwrap_or_default();
    Ok(Digested::Trigger(json!({
        "trigger": trigger,
        "action": action,
        "pull_request": {
            "head": {"ref": text(obj, "source_branch")?},
            "base": {"ref": text(obj, "target_branch")?, "sha": before},
            "user": {"login": username, "html_url": format!("{base_url}/{username}")},
            "html_url": obj.get("url").cloned().unwrap_or(Value::Null),
            "number": obj.get("id").cloned().unwrap_or(Value::Null),
            "updated_at": updated_at,
            "title": obj.get("title").cloned().unwrap_or(Value::Null),
        },
        "before": before,
        "after": after,
        "repo": text(req, "project.git_http_url")?,
        "sender": field(req, "user")?,
    })))
}

/// GitLab's `2021-11-01 06:15:26 UTC` (or RFC 3339) as ISO 8601.
fn gitlab_time(s: &str) -> String {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.to_rfc3339();
    }
    chrono::NaiveDateTime::parse_from_str(s.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc().format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_else(|_| s.to_string())
}

fn digest_radicle(event: &str, req: &Value) -> Result<Digested, &'static str> {
    let repo = text(req, "repository.clone_url")?;
    let default_branch = req
        .pointer("/repository/default_branch")
        .or_else(|| req.pointer("/repository/defaultBranch"))
        .and_then(Value::as_str)
        .unwrap_or("main")
        .to_string();
    let alias = req.pointer("/author/alias").cloned().unwrap_or(Value::Null);
    if event == "push" {
        let branch = req
            .get("branch")
            .and_then(Value::as_str)
            .map(|b| b.trim_start_matches("refs/heads/").to_string())
            .unwrap_or(default_branch);
        return Ok(Digested::Trigger(json!({
            "trigger": "radicle-push",
            "ref": format!("refs/heads/{branch}"),
            "before": text(req, "before")?,
            "after": text(req, "after")?,
            "repo": repo,
            "pusher": {"username": alias},
            "commits": req.get("commits").cloned().unwrap_or_else(|| json!([])),
        })));
    }
    let action = text(req, "action")?;
    if action != "created" && action != "updated" {
        return Ok(Digested::Ignore(format!("unsupported action {action}")));
    }
    let patch = field(req, "patch")?;
    let mut pr = Map::new();
    pr.insert(
        "head".into(),
        json!({"ref": patch.get("id").cloned().unwrap_or(Value::Null)}),
    );
    pr.insert("base".into(), json!({"ref": default_branch, "sha": ""}));
    let login = patch
        .pointer("/author/alias")
        .cloned()
        .unwrap_or_else(|| alias.clone());
    pr.insert("user".into(), json!({"login": login}));
    pr.insert(
        "html_url".into(),
        patch.get("url").cloned().unwrap_or(Value::Null),
    );
    pr.insert(
        "number".into(),
        patch.get("id").cloned().unwrap_or(Value::Null),
    );
    pr.insert(
        "title".into(),
        patch.get("title").cloned().unwrap_or(Value::Null),
    );
    pr.insert(
        "commits".into(),
        json!(
            patch
                .get("commits")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
    );
    Ok(Digested::Trigger(json!({
        "trigger": "radicle-patch",
        "action": action,
        "pull_request": pr,
        "before": patch.get("before").cloned().unwrap_or(Value::Null),
        "after": text(patch, "after")?,
        "repo": repo,
        "sender": {"login": login},
    })))
}

/// What a trigger record starts: the flow kind (`"ci"` for pushes, `"dev"`
/// for pull/merge requests and patches) and the branch (`branch_name`) it
/// runs on, or why it starts nothing.
pub fn target(trigger: &Value) -> Result<(&'static str, String), String> {
    let name = trigger.get("trigger").and_then(Value::as_str).unwrap_or("");
    if let Some(r) = trigger.get("pull_request") {
        let base = r
            .pointer("/base/ref")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{name}: the pull request names no base branch"))?;
        return Ok(("dev", base.to_string()));
    }
    let r = trigger
        .get("ref")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name}: the push names no ref"))?;
    match r.strip_prefix("refs/heads/") {
        Some(b) => Ok(("ci", b.to_string())),
        None if r.starts_with("refs/") => {
            Err(format!("{name}: {r} is not a branch, nothing to build"))
        }
        None => Ok(("ci", r.to_string())),
    }
}

/// The reason of a flow started by a trigger, as the original words it
/// (`github push`, `gitlab Merge Request`, ...).
pub fn reason(trigger: &Value) -> String {
    trigger
        .get("trigger")
        .and_then(Value::as_str)
        .unwrap_or("webhook")
        .replace(['-', '_'], " ")
        .replace(" Hook", "")
}

/// The `https` form of a repository URL, as the original compares them
/// (`git@host:org/repo.git` → `https://host/org/repo.git`); other URLs
/// (https, file, paths) are returned as they are.
pub fn http_url(url: &str) -> String {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("git@")
        && let Some((host, path)) = rest.split_once(':')
    {
        return format!("https://{host}/{}", path.trim_start_matches('/'));
    }
    if let Some(rest) = url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        if let Some((host, path)) = rest.split_once('/') {
            let host = host.split(':').next().unwrap_or(host);
            return format!("https://{host}/{path}");
        }
    }
    url.to_string()
}

/// Whether two repository URLs name the same repository (ignoring the
/// scheme of SSH forms, a trailing `.git` and `/`, and credentials).
pub fn same_repo(a: &str, b: &str) -> bool {
    fn norm(u: &str) -> String {
        let u = http_url(u);
        let u = match u.split_once("://") {
            Some((scheme, rest)) => {
                let rest = match rest.split_once('@') {
                    Some((creds, r)) if !creds.contains('/') => r,
                    _ => rest,
                };
                let scheme = if scheme == "http" { "https" } else { scheme };
                format!("{scheme}://{rest}")
            }
            None => u,
        };
        u.trim_end_matches('/')
            .trim_end_matches(".git")
            .to_ascii_lowercase()
    }
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        move |k: &str| map.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    const B2: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

    fn push_body() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "ref": "refs/heads/main", "before": "a1", "after": B2,
            "repository": {"clone_url": "https://github.com/o/r.git"},
            "pusher": {"name": "me"}, "commits": [{"id": "b2"}]
        }))
        .unwrap()
    }

    #[test]
    fn github_push_with_sha256_and_sha1_signatures() {
        let body = push_body();
        let settings = json!({"github_enabled": true, "github_secret": "s3"});
        for (h, sig) in [
            ("X-Hub-Signature-256", sign_sha256("s3", &body)),
            ("X-Hub-Signature", sign_sha1("s3", &body)),
        ] {
            let v = judge(
                Provider::GitHub,
                &headers(&[
                    ("X-GitHub-Event", "push"),
                    (h, &sig),
                    ("X-GitHub-Delivery", "d1"),
                ]),
                &body,
                &settings,
            );
            let Verdict::Trigger { data, delivery } = v else {
                panic!("{v:?}")
            };
            assert_eq!(delivery, "id:github:d1");
            assert_eq!(data["trigger"], "github-push");
            assert_eq!(data["after"], B2);
            assert_eq!(data["repo"], "https://github.com/o/r.git");
            assert_eq!(target(&data).unwrap(), ("ci", "main".to_string()));
            assert_eq!(reason(&data), "github push");
        }
    }

    #[test]
    fn bad_signatures_and_settings_are_refused() {
        let body = push_body();
        let on = json!({"github_enabled": true, "github_secret": "s3"});
        let cases = [
            (
                json!({}),
                vec![("X-GitHub-Event", "push".to_string())],
                "disabled",
            ),
            (
                on.clone(),
                vec![("X-GitHub-Event", "push".to_string())],
                "missing signature",
            ),
            (
                on.clone(),
                vec![
                    ("X-GitHub-Event", "push".into()),
                    ("X-Hub-Signature-256", sign_sha256("other", &body)),
                ],
                "Invalid signature",
            ),
            (
                on.clone(),
                vec![
                    ("X-GitHub-Event", "push".into()),
                    ("X-Hub-Signature-256", "sha256=zz".into()),
                ],
                "Invalid signature",
            ),
            (on.clone(), vec![], "missing github event"),
        ];
        for (settings, hs, want) in cases {
            let pairs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match judge(Provider::GitHub, &headers(&pairs), &body, &settings) {
                Verdict::Refused(m) => assert!(m.contains(want), "{m} / {want}"),
                v => panic!("{v:?} / {want}"),
            }
        }
        // Unsupported events are answered, not refused.
        assert!(matches!(
            judge(
                Provider::GitHub,
                &headers(&[("X-GitHub-Event", "issues")]),
                &body,
                &on
            ),
            Verdict::Ignored(_)
        ));
    }

    #[test]
    fn gitlab_token_and_merge_requests() {
        let body = serde_json::to_vec(&json!({
            "object_kind": "merge_request",
            "user": {"username": "root", "name": "Admin"},
            "project": {"web_url": "http://gl.example/root/demo", "git_http_url": "http://gl.example/root/demo.git"},
            "object_attributes": {"action": "open", "oldrev": "o1", "last_commit": {"id": B2},
                "source_branch": "feat", "target_branch": "main", "url": "http://gl.example/root/demo/-/merge_requests/2",
                "id": 2, "title": "T", "updated_at": "2021-11-01 06:15:26 UTC"}
        }))
        .unwrap();
        let settings = json!({"gitlab_enabled": true, "gitlab_secret": "tok"});
        let v = judge(
            Provider::GitLab,
            &headers(&[
                ("X-Gitlab-Event", "Merge Request Hook"),
                ("X-Gitlab-Token", "tok"),
            ]),
            &body,
            &settings,
        );
        let Verdict::Trigger { data, delivery } = v else {
            panic!("{v:?}")
        };
        assert!(delivery.starts_with("sha256:"));
        assert_eq!(data["pull_request"]["base"]["ref"], "main");
        assert_eq!(
            data["pull_request"]["user"]["html_url"],
            "http://gl.example/root"
        );
        assert_eq!(
            data["pull_request"]["updated_at"],
            "2021-11-01T06:15:26+00:00"
        );
        assert_eq!(target(&data).unwrap(), ("dev", "main".to_string()));
        assert_eq!(reason(&data), "gitlab Merge Request");
        let wrong = judge(
            Provider::GitLab,
            &headers(&[
                ("X-Gitlab-Event", "Merge Request Hook"),
                ("X-Gitlab-Token", "tok2"),
            ]),
            &body,
            &settings,
        );
        assert_eq!(wrong, Verdict::Refused("Invalid token".into()));
    }

    #[test]
    fn payloads_naming_no_commit_or_holding_nul_are_refused() {
        let settings = json!({"github_enabled": true});
        let h = headers(&[("X-GitHub-Event", "push")]);
        for (after, want) in [("../../x", "not a commit id"), ("abc", "not a commit id")] {
            let body = serde_json::to_vec(
                &json!({"ref": "refs/heads/main", "before": "0", "after": after,
                "repository": {"clone_url": "https://h/o/r.git"}, "pusher": {}, "commits": []}),
            )
            .unwrap();
            match judge(Provider::GitHub, &h, &body, &settings) {
                Verdict::Refused(m) => assert!(m.contains(want), "{m}"),
                v => panic!("{v:?}"),
            }
        }
        let nul = br#"{"ref": "refs/heads/main\u0000", "after": "x"}"#;
        assert!(
            matches!(judge(Provider::GitHub, &h, nul, &settings), Verdict::Refused(m) if m.contains("NUL"))
        );
    }

    #[test]
    fn urls_compare_like_the_original() {
        assert_eq!(
            http_url("git@github.com:o/r.git"),
            "https://github.com/o/r.git"
        );
        assert!(same_repo(
            "git@github.com:o/r.git",
            "https://github.com/o/r"
        ));
        assert!(same_repo(
            "https://tok@github.com/o/r.git/",
            "https://github.com/O/r.git"
        ));
        assert!(!same_repo(
            "https://github.com/o/r.git",
            "https://github.com/o/r2.git"
        ));
        assert!(target(&json!({"trigger": "github-push", "ref": "refs/tags/v1"})).is_err());
    }
}
