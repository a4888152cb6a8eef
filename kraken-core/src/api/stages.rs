//! Stages: create, read, update, delete, schema preview and schedule.

use chrono::Utc;
use serde_json::Value;

use super::Kraken;
use crate::error::{Error, Result};
use crate::model::{Schedule, StageSchedule, Timestamp};
use crate::triggers::timers_of;

impl Kraken {
    /// Store the timed triggers (interval, date, cron) of a stage's schema;
    /// unchanged triggers keep their schedule.
    pub(crate) async fn register_stage_timers(&self, stage_id: i64, schema: &Value) -> Result<()> {
        let timers = timers_of(schema.get("triggers")).map_err(Error::BadRequest)?;
        let now = Utc::now();
        let rows: Vec<(String, String, Option<i64>)> = timers
            .iter()
            .map(|(t, spec)| {
                (
                    t.kind().to_string(),
                    spec.clone(),
                    t.next_after(now).map(|n| n.timestamp_millis()),
                )
            })
            .collect();
        self.store().set_stage_timers(stage_id, &rows).await
    }

    /// `GET /stages/{id}/schedule`: next run times of the stage's timed triggers.
    pub async fn get_stage_schedule(&self, id: i64) -> Result<StageSchedule> {
        let stage = self
            .store()
            .stage(id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))?;
        let project = self.branch_project(stage.branch_id).await?;
        self.who.require_view(project)?;
        let schedules = self
            .store()
            .stage_timers(id)
            .await?
            .into_iter()
            .map(|t| Schedule {
                name: format!("{}: {}", t.kind, t.spec),
                job_id: format!("{}_planner_job_{}", t.kind, t.id),
                next_run_time: t.next_run_time.map(Timestamp),
            })
            .collect();
        Ok(StageSchedule { schedules })
    }
}
