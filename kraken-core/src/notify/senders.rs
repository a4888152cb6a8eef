//! One sender per channel. Each returns what the endpoint answered (for
//! the record) or a [`SendError`] saying whether trying again may help.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Commit, Delivery, REQUEST_TIMEOUT, SIGNATURE_HEADER, SendError, Settings, Summary};

/// Send one notification.
pub async fn send(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    match d.channel {
        "github" => github(http, d).await,
        "gitlab" => gitlab(http, d).await,
        "gitea" => gitea(http, d).await,
        "slack" => slack(http, d).await,
        "email" => email(d).await,
        "discord" => discord(http, d).await,
        "radicle" => radicle(http, d).await,
        "webhook" => webhook(http, d).await,
        other => Err(SendError::Fatal(format!("unknown channel {other}"))),
    }
}

fn field<'a>(config: &'a Value, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `user:token` from the schema's `credentials`.
fn credentials(config: &Value) -> Result<(String, String), SendError> {
    let creds = field(config, "credentials");
    match creds.split_once(':') {
        Some((u, t)) if !t.is_empty() => Ok((u.to_string(), t.to_string())),
        _ => Err(SendError::Fatal(
            "credentials should have the form user:token".into(),
        )),
    }
}

fn commit(s: &Summary) -> Result<&Commit, SendError> {
    s.commit
        .as_ref()
        .ok_or_else(|| SendError::Fatal("the flow has no commit to report on".into()))
}

fn repo_parts(c: &Commit) -> Result<(String, String), SendError> {
    c.host_and_path().ok_or_else(|| {
        SendError::Fatal(format!(
            "cannot tell the host and path of repository {}",
            c.repo
        ))
    })
}

/// The API base: the setting, else derived from the repository's host.
fn api_base(setting: &str, host: &str, suffix: &str) -> String {
    if setting.trim().is_empty() {
        format!("{host}{suffix}")
    } else {
        setting.trim().trim_end_matches('/').to_string()
    }
}

/// An error of the request itself (connection, timeout): worth a retry.
/// The URL is left out: it may carry a secret (a Discord webhook).
fn request_error(e: &reqwest::Error) -> SendError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "bad answer"
    } else {
        "request failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut text = what.to_string();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    SendError::Retry(text)
}

/// Send a request and judge the answer: 2xx delivered, 408/429/5xx retried,
/// other statuses refused.
async fn exchange(req: reqwest::RequestBuilder) -> Result<(StatusCode, String), SendError> {
    let resp = req
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| request_error(&e))?;
    let status = resp.status();
    // At most 64 KiB of an answer is read (Slack's JSON is a few hundred bytes).
    let mut resp = resp;
    let mut raw = Vec::new();
    while raw.len() < 64 * 1024 {
        match resp.chunk().await {
            Ok(Some(c)) => raw.extend_from_slice(&c),
            _ => break,
        }
    }
    raw.truncate(64 * 1024);
    let body = String::from_utf8_lossy(&raw).into_owned();
    let short: String = body.chars().take(300).collect();
    if status.is_success() {
        return Ok((status, body));
    }
    let msg = format!("HTTP {}: {}", status.as_u16(), short.trim());
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(SendError::Retry(msg))
    } else {
        Err(SendError::Fatal(msg))
    }
}

fn status_word(s: &Summary, failure: &'static str) -> &'static str {
    match s.result.as_str() {
        "success" => "success",
        "failure" => failure,
        _ => "pending",
    }
}

async fn github(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let (user, token) = credentials(d.config)?;
    let c = commit(d.summary)?;
    let (_, path) = repo_parts(c)?;
    let mut parts = path.rsplitn(2, '/');
    let (repo, org) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let org = org.rsplit('/').next().unwrap_or(org);
    let url = format!(
        "{}/repos/{org}/{repo}/statuses/{}",
        api_base(&d.settings.github_api_url, "https://api.github.com", ""),
        c.sha
    );
    let body = json!({"state": status_word(d.summary, "failure"),
                      "context": d.summary.status_context(),
                      "target_url": d.summary.run.url,
                      "description": d.summary.status_description()});
    let (status, _) = exchange(
        http.post(url)
            .basic_auth(user, Some(token))
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "kraken-ci")
            .json(&body),
    )
    .await?;
    Ok(format!("HTTP {}", status.as_u16()))
}

async fn gitlab(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let (_, token) = credentials(d.config)?;
    let c = commit(d.summary)?;
    let (host, path) = repo_parts(c)?;
    let project: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    let url = format!(
        "{}/projects/{project}/statuses/{}",
        api_base(&d.settings.gitlab_api_url, &host, "/api/v4"),
        c.sha
    );
    let mut body = json!({"state": status_word(d.summary, "failed"),
                          "name": d.summary.status_context(),
                          "target_url": d.summary.run.url,
                          "description": d.summary.status_description()});
    if !c.git_ref.is_empty() && c.pull_request.is_none() {
        body["ref"] = json!(c.git_ref.trim_start_matches("refs/heads/"));
    }
    let (status, _) = exchange(http.post(url).header("PRIVATE-TOKEN", token).json(&body)).await?;
    Ok(format!("HTTP {}", status.as_u16()))
}

async fn gitea(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let (user, token) = credentials(d.config)?;
    let c = commit(d.summary)?;
    let (host, path) = repo_parts(c)?;
    let url = format!(
        "{}/repos/{path}/statuses/{}",
        api_base(&d.settings.gitea_api_url, &host, "/api/v1"),
        c.sha
    );
    let body = json!({"state": status_word(d.summary, "failure"),
                      "context": d.summary.status_context(),
                      "target_url": d.summary.run.url,
                      "description": d.summary.status_description()});
    let (status, _) = exchange(http.post(url).basic_auth(user, Some(token)).json(&body)).await?;
    Ok(format!("HTTP {}", status.as_u16()))
}

async fn slack(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let channel = field(d.config, "channel");
    if channel.is_empty() {
        return Err(SendError::Fatal("no Slack channel in the schema".into()));
    }
    let token = d.settings.slack_token.trim();
    if token.is_empty() {
        return Err(SendError::Fatal(
            "the setting notification.slack_token is empty".into(),
        ));
    }
    let s = d.summary;
    let mut text = format!("{} <{}|{}>", s.headline(), s.run.url, s.run.url);
    for (k, v) in s.counters() {
        text.push_str(&format!(", {k}: {v}"));
    }
    let url = format!(
        "{}/chat.postMessage",
        api_base(&d.settings.slack_api_url, "https://slack.com/api", "")
    );
    let (_, body) = exchange(
        http.post(url)
            .bearer_auth(token)
            .json(&json!({"channel": channel, "text": text})),
    )
    .await?;
    slack_answer(&body)?;
    Ok("ok".into())
}

/// Slack answers 200 with `{"ok": false, "error": ...}` when it refuses.
fn slack_answer(body: &str) -> Result<(), SendError> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let err = v
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no answer")
        .to_string();
    if err == "ratelimited" {
        Err(SendError::Retry(format!("Slack: {err}")))
    } else {
        Err(SendError::Fatal(format!("Slack: {err}")))
    }
}

/// `GET /settings/slack/working-state`: the token is accepted by Slack's `auth.test`.
pub async fn check_slack(http: &reqwest::Client, settings: &Settings) -> Result<(), String> {
    let token = settings.slack_token.trim();
    if token.is_empty() {
        return Err("Slack token is empty".into());
    }
    let url = format!(
        "{}/auth.test",
        api_base(&settings.slack_api_url, "https://slack.com/api", "")
    );
    let (_, body) = exchange(http.post(url).bearer_auth(token))
        .await
        .map_err(|e| e.to_string())?;
    slack_answer(&body).map_err(|e| e.to_string())
}

async fn discord(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let url = field(d.config, "webhook");
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(SendError::Fatal(
            "the Discord webhook must be an http(s) URL".into(),
        ));
    }
    let s = d.summary;
    let color = if s.failed() { 0xE0_3C_3C } else { 0x2E_B8_4B };
    let fields: Vec<Value> = s
        .counters()
        .into_iter()
        .map(|(k, v)| json!({"name": k, "value": v, "inline": true}))
        .collect();
    let mut description = format!("project {}, branch {}", s.project.name, s.branch.name);
    if !s.reason.is_empty() {
        description.push_str(&format!("\n{}", s.reason));
    }
    let body = json!({
        "username": "Kraken CI",
        "embeds": [{
            "title": format!("{}: {} [{}]", s.result, s.stage, s.flow.label),
            "url": s.run.url,
            "description": description,
            "color": color,
            "fields": fields,
        }]
    });
    let (status, _) = exchange(http.post(url).json(&body)).await?;
    Ok(format!("HTTP {}", status.as_u16()))
}

/// Radicle (as the original): a comment with the results on the patch
/// that triggered the flow, through the node's HTTP API
/// (`PATCH /api/v1/projects/<rid>/patches/<patch>` with a session token).
async fn radicle(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let (_, token) = credentials(d.config)?;
    let c = commit(d.summary)?;
    let patch = c
        .pull_request
        .clone()
        .ok_or_else(|| SendError::Fatal("the flow was not triggered by a patch".into()))?;
    let (host, path) = repo_parts(c)?;
    let rid = path.rsplit('/').next().unwrap_or(&path);
    let rid = if rid.starts_with("rad:") {
        rid.to_string()
    } else {
        format!("rad:{rid}")
    };
    let url = format!(
        "{}/api/v1/projects/{rid}/patches/{patch}",
        api_base(&d.settings.radicle_api_url, &host, "")
    );
    let revision = c.revision.clone().unwrap_or_else(|| patch.clone());
    let body = json!({"type": "revision.comment", "revision": revision, "body": d.summary.text()});
    let (status, _) = exchange(http.patch(url).bearer_auth(token).json(&body)).await?;
    Ok(format!("HTTP {}", status.as_u16()))
}

/// The generic webhook: the summary as JSON, signed with the secret.
async fn webhook(http: &reqwest::Client, d: Delivery<'_>) -> Result<String, SendError> {
    let url = field(d.config, "url");
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(SendError::Fatal(
            "the webhook url must be an http(s) URL".into(),
        ));
    }
    let body = serde_json::to_vec(&d.summary.to_json())
        .map_err(|e| SendError::Fatal(format!("cannot encode the summary: {e}")))?;
    let mut req = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", "kraken-ci")
        .header("X-Kraken-Event", format!("run.{}", d.summary.event));
    let secret = field(d.config, "secret");
    if !secret.is_empty() {
        req = req.header(SIGNATURE_HEADER, super::signature(secret, &body));
    }
    let (status, _) = exchange(req.body(body)).await?;
    Ok(format!("HTTP {}", status.as_u16()))
}

// ------------------------------------------------------------------ e-mail

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// The SMTP transport of the settings: `smtp_tls` is implicit TLS (SMTPS,
/// port 465 by default, as the original's `SMTP_SSL`), else plain SMTP
/// (port 25 by default); a login when `smtp_user` is set.
fn mailer(s: &Settings) -> Result<Mailer, SendError> {
    let server = s.smtp_server.trim();
    if server.is_empty() {
        return Err(SendError::Fatal(
            "the setting notification.smtp_server is empty".into(),
        ));
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| SendError::Fatal(format!("bad port in smtp_server '{server}'")))?,
            ),
        ),
        None => (server, None),
    };
    let builder = if s.smtp_tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| SendError::Fatal(format!("SMTP over TLS to {host}: {e}")))?
            .port(port.unwrap_or(465))
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port.unwrap_or(25))
    };
    let mut builder = builder.timeout(Some(REQUEST_TIMEOUT));
    if !s.smtp_user.is_empty() {
        builder = builder.credentials(Credentials::new(
            s.smtp_user.clone(),
            s.smtp_password.clone(),
        ));
    }
    Ok(builder.build())
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> SendError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    if e.is_permanent() {
        SendError::Fatal(format!("SMTP: {text}"))
    } else {
        SendError::Retry(format!("SMTP: {text}"))
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn email(d: Delivery<'_>) -> Result<String, SendError> {
    let to = match d.config {
        Value::String(s) => s.clone(),
        _ => {
            return Err(SendError::Fatal(
                "the e-mail recipient must be a string".into(),
            ));
        }
    };
    let s = d.summary;
    let from = if d.settings.smtp_from.trim().is_empty() {
        "kraken@kraken"
    } else {
        d.settings.smtp_from.trim()
    };
    let from: Mailbox = from
        .parse()
        .map_err(|e| SendError::Fatal(format!("bad smtp_from address '{from}': {e}")))?;
    let mut msg = Message::builder().from(from);
    let mut any = false;
    for addr in to
        .split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let mb: Mailbox = addr
            .parse()
            .map_err(|e| SendError::Fatal(format!("bad recipient '{addr}': {e}")))?;
        msg = msg.to(mb);
        any = true;
    }
    if !any {
        return Err(SendError::Fatal("no e-mail recipient".into()));
    }
    let kind = if s.flow.kind == "dev" { "DEV" } else { "CI" };
    let mut subject = format!(
        "[Kraken] {}: project {}, branch {} {}, flow {}, run {} {}",
        s.result, s.project.name, s.branch.name, kind, s.flow.label, s.stage, s.run.id
    );
    if s.tests.regressions > 0 {
        subject.push_str(&format!(", regressions: {}", s.tests.regressions));
    }
    if s.tests.fixes > 0 {
        subject.push_str(&format!(", fixes: {}", s.tests.fixes));
    }
    if s.issues.new > 0 {
        subject.push_str(&format!(", new issues: {}", s.issues.new));
    }
    let mut html = format!(
        "<p>{} <a href=\"{}\">run {}</a></p><ul>",
        html_escape(&s.headline()),
        html_escape(&s.run.url),
        s.run.id
    );
    if !s.reason.is_empty() {
        html.push_str(&format!("<li>reason: {}</li>", html_escape(&s.reason)));
    }
    for (k, v) in s.counters() {
        html.push_str(&format!("<li>{k}: {}</li>", html_escape(&v)));
    }
    html.push_str("</ul><p>-- Kraken</p>");
    let message = msg
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(s.text(), html))
        .map_err(|e| SendError::Fatal(format!("cannot build the e-mail: {e}")))?;
    let mailer = mailer(d.settings)?;
    let resp = tokio::time::timeout(3 * REQUEST_TIMEOUT, mailer.send(message))
        .await
        .map_err(|_| SendError::Retry("SMTP: timed out".into()))?
        .map_err(|e| smtp_error(&e))?;
    Ok(format!("SMTP {}", resp.code()))
}

/// `GET /settings/email/working-state`: connect to the SMTP server (and log
/// in when a user is set).
pub async fn check_smtp(settings: &Settings) -> Result<(), String> {
    if settings.smtp_server.trim().is_empty() {
        // The original's words, typo included.
        return Err("STMP server address is empty".into());
    }
    let m = mailer(settings).map_err(|e| e.to_string())?;
    // Bounded as a whole: a server that accepts and never speaks.
    match tokio::time::timeout(REQUEST_TIMEOUT, m.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("SMTP: the server did not answer as expected".into()),
        Ok(Err(e)) => Err(smtp_error(&e).to_string()),
        Err(_) => Err(format!(
            "SMTP: no answer in {} s",
            REQUEST_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// SMTPS (`smtp_tls`) goes through rustls over ring: the client opens
    /// with a TLS handshake, and a server answering in plain text is an
    /// SMTP error, not a panic for want of a crypto provider.
    #[tokio::test]
    async fn smtps_speaks_tls_and_reports_a_server_that_does_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut first = [0u8; 1];
            sock.read_exact(&mut first)
                .await
                .expect("the client's first byte");
            let _ = sock.write_all(b"220 plain text only\r\n").await;
            first[0]
        });
        let settings = Settings {
            smtp_server: format!("127.0.0.1:{port}"),
            smtp_tls: true,
            ..Settings::default()
        };
        let e = check_smtp(&settings).await.expect_err("not a TLS server");
        assert!(e.starts_with("SMTP"), "{e}");
        // 0x16: a TLS handshake record (the ClientHello).
        assert_eq!(server.await.expect("server"), 0x16);
    }
}
