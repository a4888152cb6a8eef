//! Reading logs: job and step logs, filtered logs, services logs, plain
//! text downloads, and following a job's log from a cursor.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::Local;
use super::client::FollowEvent;
use crate::error::{Error, Result};
use crate::events::Event;
pub use crate::model::{LogChunk, LogLine, LogPaging, Logs};
use crate::model::{LogFilter, Timestamp, job_state};
use crate::store::logs::LogRow;
pub use crate::store::logs::NewLog;

impl From<LogRow> for LogLine {
    fn from(r: LogRow) -> Self {
        LogLine {
            id: r.id,
            time: Timestamp(r.time),
            message: r.message,
            service: r.service,
            host: r.host,
            level: r.level,
            job: r.job_id,
            step: r.step,
            tool: r.tool,
            branch: r.branch_id,
            flow: r.flow_id,
            run: r.run_id,
            agent: r.agent_id,
        }
    }
}

fn paging(p: &LogPaging) -> Result<(i64, i64, bool)> {
    let desc = match p.order.as_deref() {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(Error::bad_request(format!(
                "incorrect order value '{o}': use asc or desc"
            )));
        }
    };
    let start = p.start.unwrap_or(0);
    if start < 0 {
        return Err(Error::bad_request(
            "incorrect start value: it must be 0 or more",
        ));
    }
    let limit = p.limit.unwrap_or(200);
    if limit < 0 {
        return Err(Error::bad_request(
            "incorrect limit value: it must be 0 or more",
        ));
    }
    Ok((start, limit.clamp(1, 100_000), desc))
}

impl Local {
    async fn viewable_job(&self, job_id: i64) -> Result<crate::store::jobs::JobRow> {
        let job = self.store().require_job(job_id).await?;
        self.who.require_view(self.job_project(&job).await?)?;
        Ok(job)
    }

    /// `GET /jobs/{id}/logs`: the output of the job's tools (with `internals`,
    /// the agent's own lines too), and the job.
    pub async fn get_job_logs(
        &self,
        job_id: i64,
        p: &LogPaging,
        internals: bool,
        text: Option<&str>,
    ) -> Result<Logs> {
        let job = self.viewable_job(job_id).await?;
        let (start, limit, desc) = paging(p)?;
        let f = LogFilter {
            job_id: Some(job_id),
            tool_output_only: !internals,
            text: text.map(str::to_string),
            ..Default::default()
        };
        let (rows, total) = self.store().query_logs(&f, start, limit, desc).await?;
        let job_json = crate::view::jobs_json(self.store(), std::slice::from_ref(&job), true)
            .await?
            .pop();
        Ok(Logs {
            items: rows.into_iter().map(LogLine::from).collect(),
            total,
            job: job_json,
        })
    }

    /// `GET /jobs/{id}/{step_idx}/logs`.
    pub async fn get_step_logs(
        &self,
        job_id: i64,
        step_idx: i64,
        p: &LogPaging,
        text: Option<&str>,
    ) -> Result<Logs> {
        self.viewable_job(job_id).await?;
        let (start, limit, desc) = paging(p)?;
        let f = LogFilter {
            job_id: Some(job_id),
            step: Some(step_idx),
            text: text.map(str::to_string),
            ..Default::default()
        };
        let (rows, total) = self.store().query_logs(&f, start, limit, desc).await?;
        Ok(Logs {
            items: rows.into_iter().map(LogLine::from).collect(),
            total,
            job: None,
        })
    }

    /// `GET /logs`: filtered logs. A job, run, flow or branch filter needs
    /// `view` on its project; no such filter (or an agent filter) needs superadmin.
    pub async fn get_logs(&self, f: &LogFilter, p: &LogPaging) -> Result<Logs> {
        if f.flow_kind.is_some() && f.branch_id.is_none() {
            return Err(Error::bad_request("flow_kind needs branch_id"));
        }
        if f.step.is_some() && f.job_id.is_none() {
            return Err(Error::bad_request("step_idx needs job_id"));
        }
        if let Some(j) = f.job_id {
            self.viewable_job(j).await?;
        } else if let Some(r) = f.run_id {
            let run = self.store().require_run(r).await?;
            let flow = self.store().require_flow(run.flow_id).await?;
            self.who
                .require_view(self.branch_project(flow.branch_id).await?)?;
        } else if let Some(fl) = f.flow_id {
            let flow = self.store().require_flow(fl).await?;
            self.who
                .require_view(self.branch_project(flow.branch_id).await?)?;
        } else if let Some(b) = f.branch_id {
            let branch = self.branch_row(b).await?;
            self.who.require_view(branch.project_id)?;
        } else {
            self.who.require_superadmin(
                "only superadmin can read logs without a job, run, flow or branch filter",
            )?;
        }
        if f.agent_id.is_some() {
            self.who
                .require_superadmin("only superadmin can read the logs of an agent")?;
        }
        let (start, limit, desc) = paging(p)?;
        let (rows, total) = self.store().query_logs(f, start, limit, desc).await?;
        Ok(Logs {
            items: rows.into_iter().map(LogLine::from).collect(),
            total,
            job: None,
        })
    }

    /// `GET /services-logs`: the last 1000 lines of the server's own services (superadmin).
    pub async fn get_services_logs(
        &self,
        services: &[String],
        level: Option<&str>,
    ) -> Result<Logs> {
        self.who
            .require_superadmin("only superadmin can read services logs")?;
        let services = if services.is_empty() {
            vec![
                "server".to_string(),
                "engine".to_string(),
                "watchdog".to_string(),
                "scheduler".to_string(),
            ]
        } else {
            services.to_vec()
        };
        let f = LogFilter {
            services,
            level: level.map(str::to_string),
            job_id: Some(0),
            ..Default::default()
        };
        let (mut rows, total) = self.store().query_logs(&f, 0, 1000, true).await?;
        rows.reverse();
        Ok(Logs {
            items: rows.into_iter().map(LogLine::from).collect(),
            total,
            job: None,
        })
    }

    /// The plain text of a job's (or step's) log: a `message` header line,
    /// then one line per log line (the original's download format).
    pub async fn job_log_text(&self, job_id: i64, step_idx: Option<i64>) -> Result<String> {
        self.viewable_job(job_id).await?;
        let f = LogFilter {
            job_id: Some(job_id),
            step: step_idx,
            tool_output_only: step_idx.is_none(),
            ..Default::default()
        };
        let mut out = String::from("message\n");
        let mut after = 0;
        loop {
            let rows = self
                .store()
                .logs_after(
                    &LogFilter {
                        after: Some(after),
                        ..f.clone()
                    },
                    10_000,
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for r in &rows {
                out.push_str(&r.message);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Lines of a job's log after cursor `after` (all lines, tool output and
    /// the agent's own), and whether the job is completed. A follower reads
    /// until it gets no lines and `job_completed`.
    pub async fn follow_job_log(&self, job_id: i64, after: i64, limit: i64) -> Result<LogChunk> {
        let job = self.viewable_job(job_id).await?;
        // Read the state first: lines stored before completion are then surely visible.
        let completed = job.state == job_state::COMPLETED;
        let f = LogFilter {
            job_id: Some(job_id),
            after: Some(after),
            ..Default::default()
        };
        let rows = self.store().logs_after(&f, limit.clamp(1, 10_000)).await?;
        Ok(LogChunk {
            lines: rows.into_iter().map(LogLine::from).collect(),
            job_completed: completed,
            job_state: job.state,
            completion_status: job.completion_status,
        })
    }

    /// Follow a job's log from cursor `after`: lines as they come, state
    /// changes, then [`FollowEvent::End`] once the job is completed and every
    /// line was delivered (the one follower: the server's SSE stream and
    /// in-process handles both use it). Access is checked before the stream
    /// starts; an error later ends the stream with it.
    pub async fn follow_job_stream(
        &self,
        job_id: i64,
        after: i64,
    ) -> Result<BoxStream<'static, Result<FollowEvent>>> {
        let first = self.follow_job_log(job_id, after, FOLLOW_CHUNK).await?;
        let state = Follow {
            rx: self.core.subscribe(),
            k: self.clone(),
            job_id,
            cursor: after,
            pending: Some(first),
            last_state: None,
            done: false,
        };
        Ok(futures_util::stream::unfold(state, Follow::next)
            .flat_map(futures_util::stream::iter)
            .boxed())
    }
}

/// Lines read per step of a follower.
const FOLLOW_CHUNK: i64 = 1000;

struct Follow {
    k: Local,
    job_id: i64,
    cursor: i64,
    rx: tokio::sync::broadcast::Receiver<Event>,
    pending: Option<LogChunk>,
    last_state: Option<(i64, Option<i64>)>,
    done: bool,
}

impl Follow {
    /// The events of the next chunk with something in it (waiting for a
    /// change of the job, or a second, between empty ones).
    async fn next(mut self) -> Option<(Vec<Result<FollowEvent>>, Follow)> {
        if self.done {
            return None;
        }
        loop {
            let chunk = match self.pending.take() {
                Some(c) => Ok(c),
                None => {
                    self.k
                        .follow_job_log(self.job_id, self.cursor, FOLLOW_CHUNK)
                        .await
                }
            };
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    self.done = true;
                    return Some((vec![Err(e)], self));
                }
            };
            let mut out = Vec::new();
            let state = (chunk.job_state, chunk.completion_status);
            if self.last_state != Some(state) {
                self.last_state = Some(state);
                out.push(Ok(FollowEvent::State {
                    state: state.0,
                    completion_status: state.1,
                }));
            }
            let empty = chunk.lines.is_empty();
            for l in chunk.lines {
                self.cursor = l.id;
                out.push(Ok(FollowEvent::Line(l)));
            }
            if empty && chunk.job_completed {
                out.push(Ok(FollowEvent::End {
                    completion_status: state.1,
                }));
                self.done = true;
                return Some((out, self));
            }
            if !out.is_empty() {
                return Some((out, self));
            }
            let job_id = self.job_id;
            let rx = &mut self.rx;
            let wait = async {
                loop {
                    match rx.recv().await {
                        Ok(Event::Logs { job_id: j, .. } | Event::Job { job_id: j, .. })
                            if j == job_id =>
                        {
                            return;
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            return;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        }
    }
}
