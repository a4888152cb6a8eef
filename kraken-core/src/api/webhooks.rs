//! `POST /webhooks/{project_id}/{provider}`: deliveries of GitHub, Gitea,
//! GitLab and Radicle. Not a user's request: the delivery authenticates
//! with the project's webhook secret (see [`crate::webhooks`]).

use serde_json::{Value, json};

use super::Core;
use crate::engine::tasks::TRIGGER_FLOW;
use crate::error::{Error, Result};
use crate::store::now_ms;
use crate::webhooks::{Provider, Verdict, judge};

/// The same payload hash within this window is the same delivery.
const SAME_PAYLOAD_WINDOW_MS: i64 = 60_000;

/// What became of an accepted delivery (answered 204).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Taken: a flow starts (or joins) in the background.
    Queued,
    /// Taken before (same delivery id, or same payload within a minute).
    Duplicate,
    /// An event or action that starts nothing, with the reason.
    Ignored(String),
}

impl Core {
    /// Whether a project takes a provider's webhooks, checked before a
    /// delivery's payload is read: an unknown provider is a 404, an unknown
    /// project or a provider turned off a 400.
    pub async fn webhook_accepted(&self, project_id: i64, provider: &str) -> Result<()> {
        let provider = Provider::parse(provider).ok_or_else(|| {
            Error::not_found(format!(
                "unknown webhook provider '{provider}': use github, gitea, gitlab or radicle"
            ))
        })?;
        let Some(project) = self.store().project(project_id).await? else {
            return Err(Error::bad_request("Invalid project id"));
        };
        let on = project
            .webhooks
            .as_ref()
            .and_then(|w| w.0.get(format!("{}_enabled", provider.name())))
            .and_then(Value::as_bool)
            == Some(true);
        if on {
            Ok(())
        } else {
            Err(Error::bad_request(format!(
                "webhooks from {} disabled",
                provider.name()
            )))
        }
    }

    /// Take a webhook delivery for a project. Refusals (unknown project,
    /// webhooks disabled, missing or wrong signature, malformed payload)
    /// are 400s and start nothing. (The server refuses payloads over
    /// [`crate::webhooks::MAX_PAYLOAD`] before they get here.)
    pub async fn receive_webhook(
        &self,
        project_id: i64,
        provider: &str,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &[u8],
    ) -> Result<Delivery> {
        let provider = Provider::parse(provider).ok_or_else(|| {
            Error::not_found(format!(
                "unknown webhook provider '{provider}': use github, gitea, gitlab or radicle"
            ))
        })?;
        let Some(project) = self.store().project(project_id).await? else {
            return Err(Error::bad_request("Invalid project id"));
        };
        let settings = project
            .webhooks
            .as_ref()
            .map(|w| w.0.clone())
            .unwrap_or(Value::Null);
        match judge(provider, header, body, &settings) {
            Verdict::Refused(msg) => {
                tracing::warn!(
                    project = project_id,
                    "{} webhook refused: {msg}",
                    provider.name()
                );
                Err(Error::bad_request(msg))
            }
            Verdict::Ignored(msg) => {
                tracing::info!(project = project_id, "{} webhook: {msg}", provider.name());
                Ok(Delivery::Ignored(msg))
            }
            Verdict::Trigger { data, delivery } => {
                let since = if delivery.starts_with("id:") {
                    i64::MIN
                } else {
                    now_ms() - SAME_PAYLOAD_WINDOW_MS
                };
                let taken = self
                    .store()
                    .take_webhook_delivery(
                        project_id,
                        &delivery,
                        since,
                        TRIGGER_FLOW,
                        &json!([project_id, data, delivery]),
                    )
                    .await?;
                if !taken {
                    tracing::info!(
                        project = project_id,
                        "{} webhook: delivery {delivery} was taken before, ignored",
                        provider.name()
                    );
                    return Ok(Delivery::Duplicate);
                }
                self.engine().events().tasks.notify_one();
                Ok(Delivery::Queued)
            }
        }
    }
}
