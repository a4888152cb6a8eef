//! Secrets never leave in the clear: log lines that agents send (this
//! project's agent masks them already; the original's agent masks only whole
//! values, so a multi-line key printed line by line got through) are masked
//! again on arrival with the one rule of [`crate::mask`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::Value;

use super::Core;
use crate::error::Result;
use crate::model::secret_kind;
use crate::store::logs::NewLog;
use crate::store::projects::SecretRow;

/// The values of a project's secrets that must never be shown.
pub(crate) fn secret_values(secrets: &[SecretRow]) -> Vec<String> {
    let mut out = Vec::new();
    for s in secrets {
        let d = &s.data.0;
        let keys: &[&str] = if s.kind == secret_kind::SIMPLE {
            &["secret"]
        } else {
            &["key", "password"]
        };
        for k in keys {
            if let Some(v) = d.get(*k).and_then(Value::as_str)
                && !v.trim().is_empty()
            {
                out.push(v.to_string());
            }
        }
    }
    out
}

impl Core {
    /// Mask the secrets of `project_id` in log lines of one of its jobs.
    pub(crate) async fn mask_project_logs(
        &self,
        project_id: i64,
        rows: &mut [NewLog],
    ) -> Result<()> {
        let values = secret_values(&self.store().project_secrets(project_id).await?);
        if !values.is_empty() {
            for row in rows {
                row.message = crate::mask::mask_secrets(&row.message, &values);
            }
        }
        Ok(())
    }

    /// Mask the secrets of each line's project in log lines of any jobs.
    pub(crate) async fn mask_job_logs(&self, rows: &mut [NewLog]) -> Result<()> {
        let mut by_job: HashMap<i64, Vec<String>> = HashMap::new();
        for row in rows.iter_mut() {
            if row.job_id == 0 {
                continue;
            }
            if let Entry::Vacant(e) = by_job.entry(row.job_id) {
                let values = match self.store().job_place(row.job_id).await? {
                    Some(place) => {
                        secret_values(&self.store().project_secrets(place.project_id).await?)
                    }
                    None => Vec::new(),
                };
                e.insert(values);
            }
            if let Some(values) = by_job.get(&row.job_id)
                && !values.is_empty()
            {
                row.message = crate::mask::mask_secrets(&row.message, values);
            }
        }
        Ok(())
    }
}
