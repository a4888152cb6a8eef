//! Tools and the workflow schema.

use axum::Json;
use axum::extract::Multipart;
use axum::http::StatusCode;
use kraken_core::Error;
use kraken_core::model::{Empty, List, Tool, ToolInput};
use serde_json::Value;

use crate::extract::{AppError, Caller, J, P, Q, R, parse_json};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    get,
    path = "/tools",
    tag = "tools",
    summary = "List tools (the latest version of each)",
    params(crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Tool>), ReadErrors),
)]
pub async fn get_tools(Caller(k): Caller, q: Q) -> R<Json<List<Tool>>> {
    Ok(Json(k.get_tools(&q.paging()?).await?))
}

#[utoipa::path(
    post,
    path = "/tools",
    tag = "tools",
    summary = "Create a tool or a version of it, or load one from a git repository (superadmin)",
    request_body = doc::ToolInput,
    responses((status = 201, description = "Created", body = doc::Tool), WriteErrors),
)]
pub async fn create_or_update_tool(
    Caller(k): Caller,
    J(body): J<ToolInput>,
) -> R<(StatusCode, Json<Tool>)> {
    Ok((
        StatusCode::CREATED,
        Json(k.create_or_update_tool(&body).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/tools/{name}",
    tag = "tools",
    summary = "Versions of a tool",
    params(("name" = String, Path, description = "Tool name"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Tool>), ReadErrors),
)]
pub async fn get_tool_versions(Caller(k): Caller, P(name): P<String>, q: Q) -> R<Json<List<Tool>>> {
    Ok(Json(k.get_tool_versions(&name, &q.paging()?).await?))
}

#[utoipa::path(
    delete,
    path = "/tools/{name}",
    tag = "tools",
    summary = "Delete a tool version (superadmin)",
    params(("name" = String, Path, description = "The tool's id (an integer)", pattern = "^[0-9]+$")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_tool(Caller(k): Caller, P(id): P<String>) -> R<Json<Empty>> {
    let id: i64 = id.parse().map_err(|_| {
        AppError(Error::bad_request(format!(
            "incorrect tool id '{id}': expected an integer"
        )))
    })?;
    Ok(Json(k.delete_tool(id).await?))
}

/// `POST /tools/{name}/zip`: multipart with `meta` (JSON) and `file` (zip).
#[utoipa::path(
    post,
    path = "/tools/{name}/zip",
    tag = "tools",
    summary = "Upload a tool package: multipart `meta` (JSON) and `file` (zip) (superadmin)",
    params(("name" = String, Path, description = "Tool name")),
    request_body(content = doc::ToolUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "Created", body = doc::Tool), WriteErrors),
)]
pub async fn upload_tool(
    Caller(k): Caller,
    P(name): P<String>,
    mut form: Multipart,
) -> R<(StatusCode, Json<Tool>)> {
    let bad = |m: String| AppError(Error::BadRequest(m));
    let mut meta: Option<ToolInput> = None;
    let mut file: Option<Vec<u8>> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("invalid multipart body: {e}")))?
    {
        match field.name() {
            Some("meta") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("cannot read meta: {e}")))?;
                meta = Some(parse_json(&bytes)?);
            }
            Some("file") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("cannot read file: {e}")))?;
                file = Some(bytes.to_vec());
            }
            _ => {}
        }
    }
    let meta =
        meta.ok_or_else(|| bad("missing 'meta' part (the tool's JSON description)".into()))?;
    let file = file.ok_or_else(|| bad("missing 'file' part (the tool's zip package)".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(k.upload_tool(&name, &meta, &file).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/workflow-schema",
    tag = "tools",
    summary = "The JSON schema of workflow schemas",
    responses((status = 200, description = "OK", body = doc::JsonMap), ReadErrors),
)]
pub async fn get_workflow_schema(Caller(k): Caller) -> R<Json<Value>> {
    Ok(Json(k.get_workflow_schema().await?))
}
