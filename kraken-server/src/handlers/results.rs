//! Test results, issues, flow analysis and history, artifact downloads,
//! background tasks.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kraken_core::Error;
use kraken_core::model::{CommentInput, Issue, List, TestCaseResult};
use kraken_core::model::{IssueFilter, TcrFilter};
use serde_json::Value;

use crate::extract::{AppError, Caller, J, P, Q, R};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    get,
    path = "/runs/{id}/results",
    tag = "results",
    summary = "Test case results of a run",
    params(("id" = i64, Path, description = "Run id"), ("statuses" = Option<Vec<i64>>, Query, description = "Results (any of): 0 not run, 1 passed, 2 failed, 3 error, 4 disabled, 5 unsupported"), ("changes" = Option<Vec<i64>>, Query, description = "Changes (any of): 0 none, 1 fix, 2 regression, 3 new"), ("min_age" = Option<i64>, Query, description = "Minimum age"), ("max_age" = Option<i64>, Query, description = "Maximum age"), ("min_instability" = Option<i64>, Query, description = "Minimum instability"), ("max_instability" = Option<i64>, Query, description = "Maximum instability"), ("test_case_text" = Option<String>, Query, description = "Substring of the test case name"), ("job" = Option<String>, Query, description = "A job id or a substring of the job name"), ("systems" = Option<Vec<i64>>, Query, description = "System ids (any of)"), ("groups" = Option<Vec<i64>>, Query, description = "Agents group ids (any of)"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::TestCaseResult>), ReadErrors),
)]
pub async fn get_run_results(
    Caller(k): Caller,
    P(id): P<i64>,
    q: Q,
) -> R<Json<List<TestCaseResult>>> {
    let f = TcrFilter {
        statuses: q.ints("statuses")?,
        changes: q.ints("changes")?,
        min_age: q.int("min_age")?,
        max_age: q.int("max_age")?,
        min_instability: q.int("min_instability")?,
        max_instability: q.int("max_instability")?,
        text: q.str("test_case_text").map(str::to_string),
        job: q.str("job").map(str::to_string),
        systems: q.ints("systems")?,
        groups: q.ints("groups")?,
    };
    Ok(Json(k.get_run_results(id, &f, &q.paging()?).await?))
}

#[utoipa::path(
    get,
    path = "/test_case_results/{id}",
    tag = "results",
    summary = "A test case result and where it ran",
    params(("id" = i64, Path, description = "Test case result id")),
    responses((status = 200, description = "OK", body = doc::TestCaseResult), ReadErrors),
)]
pub async fn get_result(Caller(k): Caller, P(id): P<i64>) -> R<Json<TestCaseResult>> {
    Ok(Json(k.get_result(id).await?))
}

#[utoipa::path(
    get,
    path = "/test_case_results/{id}/history",
    tag = "results",
    summary = "Earlier results of the same test case on the same branch",
    params(("id" = i64, Path, description = "Test case result id"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::TestCaseResult>), ReadErrors),
)]
pub async fn get_result_history(
    Caller(k): Caller,
    P(id): P<i64>,
    q: Q,
) -> R<Json<List<TestCaseResult>>> {
    Ok(Json(k.get_result_history(id, &q.paging()?).await?))
}

#[utoipa::path(
    post,
    path = "/test_case_results/{id}/comment",
    tag = "results",
    summary = "Comment on a test case result (pwrusr)",
    params(("id" = i64, Path, description = "Test case result id")),
    request_body = doc::CommentInput,
    responses((status = 200, description = "OK", body = doc::TestCaseResult), WriteErrors),
)]
pub async fn create_comment(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<CommentInput>,
) -> R<Json<TestCaseResult>> {
    Ok(Json(k.create_or_update_test_case_comment(id, &body).await?))
}

#[utoipa::path(
    get,
    path = "/runs/{id}/issues",
    tag = "results",
    summary = "Issues found in a run",
    params(("id" = i64, Path, description = "Run id"), ("issue_types" = Option<Vec<i64>>, Query, description = "Types (any of): 0 error, 1 warning, 2 convention, 3 refactor"), ("location" = Option<String>, Query, description = "Substring of the path"), ("message" = Option<String>, Query, description = "Substring of the message"), ("symbol" = Option<String>, Query, description = "Substring of the symbol"), ("min_age" = Option<i64>, Query, description = "Minimum age"), ("max_age" = Option<i64>, Query, description = "Maximum age"), ("job" = Option<String>, Query, description = "A job id or a substring of the job name"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Issue>), ReadErrors),
)]
pub async fn get_run_issues(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Issue>>> {
    let f = IssueFilter {
        types: q.ints("issue_types")?,
        location: q.str("location").map(str::to_string),
        message: q.str("message").map(str::to_string),
        symbol: q.str("symbol").map(str::to_string),
        min_age: q.int("min_age")?,
        max_age: q.int("max_age")?,
        job: q.str("job").map(str::to_string),
    };
    Ok(Json(k.get_run_issues(id, &f, &q.paging()?).await?))
}

#[utoipa::path(
    get,
    path = "/flows/{id}/analysis",
    tag = "results",
    summary = "Results analysis of a flow",
    params(("id" = i64, Path, description = "Flow id")),
    responses((status = 200, description = "OK", body = doc::JsonMap), ReadErrors),
)]
pub async fn get_flow_analysis(Caller(k): Caller, P(id): P<i64>) -> R<Json<Value>> {
    Ok(Json(k.get_flow_analysis(id).await?))
}

#[utoipa::path(
    get,
    path = "/flows/{id}/history",
    tag = "results",
    summary = "Earlier flows of the flow's branch",
    params(("id" = i64, Path, description = "Flow id"), ("limit" = Option<i64>, Query, description = "How many (10 by default)", minimum = 0, maximum = 100)),
    responses((status = 200, description = "OK", body = doc::List<doc::JsonMap>), ReadErrors),
)]
pub async fn get_branch_history(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Value>>> {
    Ok(Json(k.get_branch_history(id, q.int("limit")?).await?))
}

fn content_type(name: &str) -> &'static str {
    match name
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// `GET /artifacts/{public|report}/{f|r}/{id}/{path}`.
pub async fn download_artifact(
    Caller(k): Caller,
    P((store, scope, id, path)): P<(String, String, i64, String)>,
) -> R<Response> {
    if store != "public" && store != "report" {
        return Err(AppError(Error::bad_request(format!(
            "incorrect store type '{store}': use public or report"
        ))));
    }
    let (blob, name) = k.open_artifact(&scope, id, &path).await?;
    // Agents upload artifacts: never active content of the server's origin.
    // Reports open in the browser, sandboxed (an opaque origin, no scripts);
    // other artifacts are downloads; no type sniffing either way.
    let name = name.replace(['"', '\\', '\r', '\n'], "_");
    let disposition = if store == "report" {
        format!("inline; filename=\"{name}\"")
    } else {
        format!("attachment; filename=\"{name}\"")
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type(&name).to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
                    .to_string(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_LENGTH, blob.size.to_string()),
        ],
        axum::body::Body::from_stream(blob.body),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
pub struct RqEntry {
    #[serde(default)]
    func_name: Option<String>,
    #[serde(default)]
    args: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/rq/queue",
    tag = "results",
    summary = "Queue a background task (superadmin)",
    request_body = doc::RqEntry,
    responses((status = 201, description = "Created", body = doc::JsonMap), WriteErrors),
)]
pub async fn create_rq_entry(
    Caller(k): Caller,
    J(body): J<RqEntry>,
) -> R<(StatusCode, Json<Value>)> {
    let func = body
        .func_name
        .ok_or_else(|| AppError(Error::bad_request("Missing func_name")))?;
    let args = match body.args {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        None | Some(Value::Null) => String::new(),
        Some(other) => {
            return Err(AppError(Error::bad_request(format!(
                "incorrect args: {other}"
            ))));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(k.create_rq_entry(&func, &args).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/last-rq-jobs",
    tag = "results",
    summary = "The server's latest background tasks",
    responses((status = 200, description = "OK", body = doc::List<doc::JsonMap>), ReadErrors),
)]
pub async fn get_last_rq_jobs(Caller(k): Caller) -> R<Json<Value>> {
    Ok(Json(k.get_last_rq_jobs().await?))
}
