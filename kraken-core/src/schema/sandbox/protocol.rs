//! What the parent and a worker process say to each other: one JSON
//! document per line. The worker greets with [`Hello`], then answers each
//! [`Request`] with one [`Answer`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::schema::{Limits, SchemaError, SchemaErrorKind};

/// Version of this protocol; a worker of another version is not used.
pub(super) const VERSION: u32 = 1;

/// The longest answer line the parent reads; the worker answers an error
/// instead of a longer schema.
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The worker's first line.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Hello {
    /// [`VERSION`].
    pub kraken_schema_worker: u32,
}

/// One evaluation, as the parent sends it.
#[derive(Debug, Serialize)]
pub(super) struct RequestRef<'a> {
    pub code: &'a str,
    pub ctx: &'a Json,
    pub limits: WireLimits,
}

/// One evaluation, as the worker reads it.
#[derive(Debug, Deserialize)]
pub(super) struct Request {
    pub code: String,
    pub ctx: Json,
    pub limits: WireLimits,
}

/// [`Limits`] on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct WireLimits {
    pub timeout_ms: u64,
    pub max_callstack: usize,
    pub max_heap_bytes: usize,
}

impl From<&Limits> for WireLimits {
    fn from(l: &Limits) -> Self {
        WireLimits {
            timeout_ms: u64::try_from(l.timeout.as_millis()).unwrap_or(u64::MAX),
            max_callstack: l.max_callstack,
            max_heap_bytes: l.max_heap_bytes,
        }
    }
}

impl From<WireLimits> for Limits {
    fn from(l: WireLimits) -> Self {
        Limits {
            timeout: Duration::from_millis(l.timeout_ms),
            max_callstack: l.max_callstack,
            max_heap_bytes: l.max_heap_bytes,
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Answer {
    /// The schema.
    #[serde(rename = "ok")]
    Ok(Json),
    /// Why there is none.
    #[serde(rename = "err")]
    Err(WireError),
}

/// A [`SchemaError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireError {
    pub kind: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// All kinds with their names on the wire.
const KINDS: [(SchemaErrorKind, &str); 8] = [
    (SchemaErrorKind::Syntax, "syntax"),
    (SchemaErrorKind::Runtime, "runtime"),
    (SchemaErrorKind::Timeout, "timeout"),
    (SchemaErrorKind::Memory, "memory"),
    (SchemaErrorKind::CallStack, "callstack"),
    (SchemaErrorKind::Result, "result"),
    (SchemaErrorKind::Crash, "crash"),
    (SchemaErrorKind::Unavailable, "unavailable"),
];

impl From<Result<Json, SchemaError>> for Answer {
    fn from(r: Result<Json, SchemaError>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v),
            Err(e) => Answer::Err(WireError {
                kind: KINDS
                    .iter()
                    .find(|(k, _)| *k == e.kind)
                    .map_or("runtime", |(_, name)| name)
                    .to_string(),
                message: e.message,
                line: e.line,
                column: e.column,
            }),
        }
    }
}

impl From<Answer> for Result<Json, SchemaError> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Ok(v) => Ok(v),
            Answer::Err(e) => Err(SchemaError {
                kind: KINDS
                    .iter()
                    .find(|(_, name)| *name == e.kind)
                    .map_or(SchemaErrorKind::Runtime, |(k, _)| *k),
                message: e.message,
                line: e.line,
                column: e.column,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_round_trip() {
        for kind in KINDS.map(|(k, _)| k) {
            let e = SchemaError {
                kind,
                message: "m".into(),
                line: Some(2),
                column: None,
            };
            let line = serde_json::to_string(&Answer::from(Err(e.clone()))).unwrap();
            let back: Result<Json, SchemaError> =
                serde_json::from_str::<Answer>(&line).unwrap().into();
            assert_eq!(back, Err(e));
        }
        let schema = json!({"z": 1, "a": [true, null, "x\ny"]});
        let line = serde_json::to_string(&Answer::from(Ok(schema.clone()))).unwrap();
        assert!(!line.contains('\n'));
        let back: Result<Json, SchemaError> = serde_json::from_str::<Answer>(&line).unwrap().into();
        assert_eq!(back, Ok(schema));
        let limits = Limits::default();
        assert_eq!(Limits::from(WireLimits::from(&limits)), limits);
    }
}
