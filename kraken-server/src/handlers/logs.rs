//! Logs: job and step logs, filtered and services logs, plain-text
//! downloads, and live following over SSE.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{Stream, StreamExt};
use kraken_core::api::FollowEvent;
use kraken_core::api::logs::{LogPaging, Logs};
use kraken_core::model::LogFilter;

use crate::extract::{Caller, P, Q, R};
use crate::openapi::ReadErrors;
use crate::openapi::schemas as doc;

fn log_paging(q: &Q) -> R<LogPaging> {
    Ok(LogPaging {
        start: q.int("start")?,
        limit: q.int("limit")?,
        order: q.str("order").map(str::to_string),
    })
}

#[utoipa::path(
    get,
    path = "/jobs/{id}/logs",
    tag = "logs",
    summary = "Log lines of a job",
    params(("id" = i64, Path, description = "Job id"), ("internals" = Option<bool>, Query, description = "Also the agent's own lines"), ("filters" = Option<String>, Query, description = "Substring of the message"), crate::openapi::LogPaging),
    responses((status = 200, description = "OK", body = doc::Logs), ReadErrors),
)]
pub async fn get_job_logs(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<Logs>> {
    let internals = q.bool("internals")?.unwrap_or(false);
    Ok(Json(
        k.get_job_logs(id, &log_paging(&q)?, internals, q.str("filters"))
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/jobs/{id}/{step}/logs",
    tag = "logs",
    summary = "Log lines of a job step",
    params(("id" = i64, Path, description = "Job id"), ("step" = i64, Path, description = "Step index, from 0"), ("filters" = Option<String>, Query, description = "Substring of the message"), crate::openapi::LogPaging),
    responses((status = 200, description = "OK", body = doc::Logs), ReadErrors),
)]
pub async fn get_step_logs(Caller(k): Caller, P((id, step)): P<(i64, i64)>, q: Q) -> R<Json<Logs>> {
    Ok(Json(
        k.get_step_logs(id, step, &log_paging(&q)?, q.str("filters"))
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/logs",
    tag = "logs",
    summary = "Log lines by branch, flow, run, job, step, agent, service or level",
    params(("branch_id" = Option<i64>, Query, description = "Branch"), ("flow_kind" = Option<i64>, Query, description = "0 ci, 1 dev"), ("flow_id" = Option<i64>, Query, description = "Flow"), ("run_id" = Option<i64>, Query, description = "Run"), ("job_id" = Option<i64>, Query, description = "Job"), ("step_idx" = Option<i64>, Query, description = "Step index"), ("agent_id" = Option<i64>, Query, description = "Agent"), ("services" = Option<Vec<String>>, Query, description = "Services (any of; also comma-separated)"), ("level" = Option<String>, Query, description = "This level and more severe"), crate::openapi::LogPaging),
    responses((status = 200, description = "OK", body = doc::Logs), ReadErrors),
)]
pub async fn get_logs(Caller(k): Caller, q: Q) -> R<Json<Logs>> {
    let f = LogFilter {
        branch_id: q.int("branch_id")?,
        flow_kind: q.int("flow_kind")?,
        flow_id: q.int("flow_id")?,
        run_id: q.int("run_id")?,
        job_id: q.int("job_id")?,
        step: q.int("step_idx")?,
        agent_id: q.int("agent_id")?,
        services: q.list("services"),
        level: q.str("level").map(str::to_string),
        ..Default::default()
    };
    Ok(Json(k.get_logs(&f, &log_paging(&q)?).await?))
}

#[utoipa::path(
    get,
    path = "/services-logs",
    tag = "logs",
    summary = "Logs of the server's own services",
    params(("services" = Option<Vec<String>>, Query, description = "Services (any of; also comma-separated)"), ("level" = Option<String>, Query, description = "This level and more severe")),
    responses((status = 200, description = "OK", body = doc::Logs), ReadErrors),
)]
pub async fn get_services_logs(Caller(k): Caller, q: Q) -> R<Json<Logs>> {
    Ok(Json(
        k.get_services_logs(&q.list("services"), q.str("level"))
            .await?,
    ))
}

fn text_attachment(name: &str, body: String) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename={name}"),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn job_log_text(Caller(k): Caller, P(id): P<i64>) -> R<Response> {
    Ok(text_attachment(
        &format!("job_log_{id}.txt"),
        k.job_log_text(id, None).await?,
    ))
}

pub async fn step_log_text(Caller(k): Caller, P((id, step)): P<(i64, i64)>) -> R<Response> {
    Ok(text_attachment(
        &format!("step_log_{id}_{step}.txt"),
        k.job_log_text(id, Some(step)).await?,
    ))
}

/// `GET /jobs/{id}/logs/stream`: server-sent events of a job's log from a
/// cursor (`Last-Event-ID` or `?after=`): `log` events (id = cursor), `state`
/// events when the job changes, and a final `end` event once the job is
/// completed and every line was sent. A client that reconnects with the last
/// id it saw gets the rest, without gaps or duplicates.
#[utoipa::path(
    get,
    path = "/jobs/{id}/logs/stream",
    tag = "logs",
    summary = "Follow a job's log: server-sent events",
    params(("id" = i64, Path, description = "Job id"), ("after" = Option<i64>, Query, description = "Only lines after this cursor (or send `Last-Event-ID`)"), ("last-event-id" = Option<i64>, Header, description = "Resume after this line id")),
    responses((status = 200, description = "Events `log` (data: a log line, id: its cursor), `state` and a final `end`", content_type = "text/event-stream", body = doc::JobLogEvent), ReadErrors),
)]
pub async fn stream_job_log(
    Caller(k): Caller,
    P(id): P<i64>,
    q: Q,
    headers: HeaderMap,
) -> R<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let header_cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = header_cursor.or(q.int("after")?).unwrap_or(0).max(0);
    // Access (and existence) is checked before the stream starts.
    let events = k.follow_job_stream(id, after).await?;
    let s = events.map(|e| {
        Ok::<_, Infallible>(match e {
            Ok(FollowEvent::Line(line)) => Event::default()
                .event("log")
                .id(line.id.to_string())
                .data(serde_json::to_string(&line).unwrap_or_default()),
            Ok(FollowEvent::State {
                state,
                completion_status,
            }) => Event::default().event("state").data(
                serde_json::json!({"state": state, "completion_status": completion_status})
                    .to_string(),
            ),
            Ok(FollowEvent::End { completion_status }) => Event::default().event("end").data(
                serde_json::json!({"state": kraken_core::model::job_state::COMPLETED,
                                   "completion_status": completion_status})
                .to_string(),
            ),
            Err(e) => Event::default().event("error").data(e.to_string()),
        })
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /any_log` (the original UI's *Flat logs* download): the log lines a
/// filter selects (`branch_id`, `flow_kind`, `flow_id`, `run_id`, `job_id`,
/// `step_id`, `agent_id`, `services`, `level`), oldest first, as text — at
/// most 100,000 lines, the same access rules as `GET /logs`.
pub async fn any_log(Caller(k): Caller, q: Q) -> R<Response> {
    let f = LogFilter {
        branch_id: q.int("branch_id")?,
        flow_kind: q.int("flow_kind")?,
        flow_id: q.int("flow_id")?,
        run_id: q.int("run_id")?,
        job_id: q.int("job_id")?,
        step: match q.int("step_id")? {
            Some(s) => Some(s),
            None => q.int("step_idx")?,
        },
        agent_id: q.int("agent_id")?,
        services: q.list("services"),
        level: q.str("level").map(str::to_string),
        ..Default::default()
    };
    let paging = LogPaging {
        start: Some(0),
        limit: Some(100_000),
        order: Some("asc".into()),
    };
    let logs = k.get_logs(&f, &paging).await?;
    let mut text = String::new();
    for l in &logs.items {
        text.push_str(&format!(
            "{} {:<7} {}: {}\n",
            l.time, l.level, l.service, l.message
        ));
    }
    Ok(text_attachment("logs.txt", text))
}
