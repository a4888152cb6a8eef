//! `POST /webhooks/{project_id}/{github|gitea|gitlab|radicle}` (also under
//! `/bk`): deliveries from code hosts start builds (see
//! `kraken_core::webhooks` for what each provider sends and how it is
//! authenticated). Answers as the original: 204 when taken or ignored (the
//! reason of an ignored or duplicate delivery in the `X-Kraken-Webhook`
//! header, as a 204 has no body), 400 `{code, message}` when refused, and
//! beyond it 413 for a payload over the limit.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kraken_core::ApiError;
use kraken_core::api::webhooks::Delivery;
use kraken_core::webhooks::MAX_PAYLOAD;

use crate::extract::{AppState, P, R, error_response};

/// Take a delivery.
pub async fn receive(
    State(st): State<AppState>,
    P((project_id, provider)): P<(i64, String)>,
    headers: HeaderMap,
    body: Body,
) -> R<Response> {
    // Refused before the payload is read: unknown provider or project, off.
    st.core.webhook_accepted(project_id, &provider).await?;
    // A bounded number of payloads in memory at once.
    static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);
    let Ok(_permit) = READING.acquire().await else {
        return Ok(StatusCode::SERVICE_UNAVAILABLE.into_response());
    };
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(e) if e.to_string().contains("length limit") => {
            return Ok(error_response(&ApiError::new(
                413,
                format!("webhook payload is over the limit of {MAX_PAYLOAD} bytes"),
            )));
        }
        Err(e) => {
            return Ok(error_response(&ApiError::new(
                400,
                format!("cannot read the webhook payload: {e}"),
            )));
        }
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let outcome = st
        .core
        .receive_webhook(project_id, &provider, &header, &body)
        .await;
    let note = match outcome {
        Ok(Delivery::Queued) => None,
        Ok(Delivery::Duplicate) => Some("duplicate delivery, ignored".to_string()),
        Ok(Delivery::Ignored(msg)) => Some(msg),
        Err(e) => return Err(e.into()),
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(n) = note
        && let Ok(v) = HeaderValue::from_str(&n)
    {
        resp.headers_mut().insert("x-kraken-webhook", v);
    }
    Ok(resp)
}
