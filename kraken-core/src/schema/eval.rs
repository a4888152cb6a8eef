//! Running a stage's `schema_code` with Starlark.
//!
//! The original executes Python (RestrictedPython) that defines
//! `stage(ctx)`; here the code runs in a Starlark interpreter (Extended
//! dialect with f-strings), which accepts the Python subset the stage files
//! use. `ctx` is made of frozen (immutable) Starlark dicts, and attribute
//! and index reads are routed through two builtins (see [`super::rewrite`])
//! so that it behaves like the original's `addict.Dict`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};
use starlark::environment::{Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::Evaluator;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::dict::{AllocDict, DictRef};
use starlark::values::float::StarlarkFloat;
use starlark::values::list::{AllocList, ListRef};
use starlark::values::structs::StructRef;
use starlark::values::tuple::TupleRef;
use starlark::values::{
    FrozenHeap, FrozenValue, Heap, UnpackValue, Value, ValueError, ValueIdentity, ValueLike,
};
use starlark::{ErrorKind, PrintHandler, starlark_module};

use super::nesting;
use super::rewrite::{self, Rewritten};

/// How deep the value returned by `stage()` may nest before it is rejected
/// (a real schema nests about 8 levels).
const MAX_RESULT_DEPTH: usize = 100;

/// How deep `ctx` may nest (it is turned into Starlark values recursively).
pub(super) const MAX_CTX_DEPTH: usize = 100;

/// What one JSON node of the result counts against [`result_budget`], on
/// top of the bytes of its strings (about what it takes in memory).
const JSON_NODE_BYTES: usize = 48;

/// How much the result of `stage(ctx)` may take as JSON values: an eighth
/// of the heap limit (32 MiB by default; a real schema takes kilobytes).
/// Values shared many times over on the Starlark heap are counted each
/// time, as the JSON repeats them.
fn result_budget(limits: &Limits) -> usize {
    limits.max_heap_bytes / 8
}

/// Stack that [`evaluate_in_process`] makes sure it has: the parser and the
/// compiler recurse once per level of the syntax tree, which
/// [`super::nesting`] bounds. When less is left on the calling thread, the
/// evaluation runs on a fresh stack of [`EVAL_STACK_BYTES`].
pub(super) const EVAL_STACK_RED_ZONE: usize = 32 * 1024 * 1024;

/// Size of the stack [`evaluate_in_process`] switches to when the calling
/// thread has less than [`EVAL_STACK_RED_ZONE`] left.
pub(super) const EVAL_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Resource bounds for one evaluation of schema code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget for parsing, running the top level and calling `stage(ctx)`.
    pub timeout: Duration,
    /// Maximum depth of Starlark function calls (guards against runaway recursion).
    pub max_callstack: usize,
    /// Maximum size of the Starlark heap in bytes. The interpreter checks it
    /// periodically; `*` and `+` on strings, lists and tuples check it before
    /// they allocate. Other single operations that build big values
    /// (`s.replace(...)`, `x.extend(x)`, `x += x`) are only caught by the
    /// periodic check, i.e. after they allocated.
    pub max_heap_bytes: usize,
}

impl Default for Limits {
    /// 2 s, 100 nested calls, 256 MiB.
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(2),
            max_callstack: 100,
            max_heap_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why evaluating schema code failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaErrorKind {
    /// The code does not parse.
    Syntax,
    /// The code failed while running (name error, type error, `fail()`, ...).
    Runtime,
    /// The code ran longer than [`Limits::timeout`].
    Timeout,
    /// The code used more than [`Limits::max_heap_bytes`].
    Memory,
    /// The code nested calls deeper than [`Limits::max_callstack`].
    CallStack,
    /// The code ran but there is no usable `stage` function or its result is
    /// not a JSON object.
    Result,
    /// The code crashed the evaluator (the worker process evaluating it
    /// died, most likely of a stack overflow), see [`super::sandbox`].
    Crash,
    /// The code could not be evaluated: no worker process could be started
    /// or it answered something unreadable (not the code's fault).
    Unavailable,
}

/// An error from [`evaluate`]; its `Display` is the HTTP 400 message,
/// `compilation error: <message>[ at line L, column C]`, as in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// What kind of failure this is.
    pub kind: SchemaErrorKind,
    /// The message, without the `compilation error: ` prefix and the position.
    pub message: String,
    /// 1-based line of the failing code, when known.
    pub line: Option<usize>,
    /// 1-based column of the failing code, when known.
    pub column: Option<usize>,
}

impl SchemaError {
    pub(super) fn new(kind: SchemaErrorKind, message: impl Into<String>) -> Self {
        SchemaError {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compilation error: {}", self.message)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " at line {l}, column {c}"),
            (Some(l), None) => write!(f, " at line {l}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for SchemaError {}

/// The Starlark dialect used for schema code: Python-like, with f-strings.
fn dialect() -> Dialect {
    Dialect {
        enable_f_strings: true,
        ..Dialect::Extended
    }
}

/// The builtins: the Starlark standard library plus `struct`, `map`,
/// `filter`, `partial`, `json`, `set` and a `print` that discards its output.
/// Nothing here touches files, the network, the clock or the environment.
/// Also the two builtins the rewritten code calls for `.` and `[]` reads.
static GLOBALS: LazyLock<Globals> = LazyLock::new(|| {
    GlobalsBuilder::extended_by(&[
        LibraryExtension::StructType,
        LibraryExtension::Map,
        LibraryExtension::Filter,
        LibraryExtension::Partial,
        LibraryExtension::Json,
        LibraryExtension::Print,
        LibraryExtension::SetType,
    ])
    .with(ctx_access)
    .build()
});

/// `print()` in schema code goes nowhere (the original's RestrictedPython
/// print collected output nobody read).
struct DiscardPrint;

impl PrintHandler for DiscardPrint {
    fn println(&self, _text: &str) -> starlark::Result<()> {
        Ok(())
    }
}

static DISCARD_PRINT: DiscardPrint = DiscardPrint;

/// Evaluate `code` in this process: run its top level, call `stage(ctx)`
/// with `ctx` (a JSON object) and return the result as JSON with dict keys
/// in source order.
///
/// This is the interpreter itself; servers call [`super::evaluate`], which
/// runs it in a worker process (see [`super::sandbox`]). Here the time and
/// call-depth limits hold, the code's nesting is bounded before parsing
/// (see [`super::nesting`]), `ctx` and the result are bounded in depth and
/// size, and the evaluation gets a stack of its own when the calling thread
/// has less than 32 MiB left (which costs tens of microseconds per call:
/// [`super::sandbox::Sandbox`] in [`super::sandbox::Mode::InProcess`] keeps
/// threads with such a stack instead). The memory limit is only checked periodically and a
/// single long operation (a huge integer product, a huge string) is not
/// interrupted, and a value built nested millions of levels deep can still
/// overflow the stack when it is printed: only a worker process contains
/// those.
///
/// This is synchronous and CPU-bound for up to [`Limits::timeout`]; from
/// async code call it inside `tokio::task::spawn_blocking`. It re-parses the
/// code on every call (tens of microseconds), so nothing is cached.
pub fn evaluate_in_process(code: &str, ctx: &Json, limits: &Limits) -> Result<Json, SchemaError> {
    stacker::maybe_grow(EVAL_STACK_RED_ZONE, EVAL_STACK_BYTES, || {
        evaluate_here(code, ctx, limits)
    })
}

/// [`evaluate_in_process`] on the current stack.
fn evaluate_here(code: &str, ctx: &Json, limits: &Limits) -> Result<Json, SchemaError> {
    let deadline = Instant::now() + limits.timeout;
    check_ctx_depth(ctx)?;
    let tabs = rewrite::normalize_tabs(code);
    let source = tabs.as_ref().map_or(code, |t| t.code.as_str());
    if let Err(deep) = nesting::check(source, &dialect()) {
        let (line, column) = Positions {
            code,
            maps: tabs.iter().collect(),
        }
        .line_column(deep.offset);
        return Err(SchemaError {
            kind: SchemaErrorKind::Syntax,
            message: too_deep_message(),
            line: Some(line),
            column: Some(column),
        });
    }
    let ast = AstModule::parse("schema", source.to_owned(), &dialect()).map_err(|e| {
        from_starlark(
            &e,
            limits,
            deadline,
            &Positions {
                code,
                maps: tabs.iter().collect(),
            },
        )
    })?;
    let rewritten = rewrite::rewrite(&ast, source);
    let mut ast = match &rewritten {
        // The rewrite only inserts calls, so this parses; if it ever does
        // not, run the code as written.
        Some(r) => AstModule::parse("schema", r.code.clone(), &dialect()).unwrap_or(ast),
        None => ast,
    };
    // `*` and `+` can build a huge string or list in one step, long before
    // the interpreter's periodic heap check; these builtins check first.
    ast.replace_binary_operators(&GUARDED_OPERATORS);
    let positions = Positions {
        code,
        maps: tabs.iter().chain(rewritten.iter()).collect(),
    };
    let run = AssertUnwindSafe(|| {
        Module::with_temp_heap(|module| {
            let mut eval = Evaluator::new(&module);
            eval.set_max_callstack_size(limits.max_callstack.max(1))
                .map_err(|e| SchemaError::new(SchemaErrorKind::Runtime, e.to_string()))?;
            eval.set_max_heap_size(limits.max_heap_bytes.max(1))
                .map_err(|e| SchemaError::new(SchemaErrorKind::Runtime, e.to_string()))?;
            eval.set_check_cancelled(Box::new(move || Instant::now() >= deadline));
            eval.set_print_handler(&DISCARD_PRINT);
            let frozen = module.frozen_heap();
            let ctx_value = match ctx {
                Json::Object(_) => freeze_json(ctx, frozen),
                _ => frozen.alloc(AllocDict(Vec::<(&str, FrozenValue)>::new())),
            };
            let empty = frozen.alloc(AllocDict(Vec::<(&str, FrozenValue)>::new()));
            let max_heap = frozen.alloc(limits.max_heap_bytes);
            module.set_extra_value(frozen.alloc((ctx_value, empty, max_heap)).to_value());
            eval.eval_module(ast, &GLOBALS)
                .map_err(|e| from_starlark(&e, limits, deadline, &positions))?;
            let Some(stage) = module.get("stage") else {
                return Err(SchemaError::new(
                    SchemaErrorKind::Result,
                    "name 'stage' is not defined: the schema code must define a function stage(ctx)",
                ));
            };
            if stage.get_type() != "function" {
                return Err(SchemaError::new(
                    SchemaErrorKind::Result,
                    format!(
                        "'stage' must be a function stage(ctx), not a value of type `{}`",
                        stage.get_type()
                    ),
                ));
            }
            let result = eval
                .eval_function(stage, &[ctx_value.to_value()], &[])
                .map_err(|e| from_starlark(&e, limits, deadline, &positions))?;
            if result.get_type() != "dict" {
                return Err(SchemaError::new(
                    SchemaErrorKind::Result,
                    format!(
                        "stage(ctx) must return a dict, but it returned a value of type `{}`",
                        result.get_type()
                    ),
                ));
            }
            let mut budget = result_budget(limits);
            to_json(result, 0, &mut budget)
                .map_err(|e| SchemaError::new(SchemaErrorKind::Result, e.message(limits)))
        })
    });
    match catch_unwind(run) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".to_string());
            // The interpreter's allocator panics when an allocation fails.
            if what.contains("out of memory") || what.contains("capacity overflow") {
                return Err(SchemaError::new(
                    SchemaErrorKind::Memory,
                    memory_message(limits),
                ));
            }
            Err(SchemaError::new(
                SchemaErrorKind::Runtime,
                clip(format!("the interpreter failed: {what}")),
            ))
        }
    }
}

/// The message of [`SchemaErrorKind::Memory`] errors.
pub(super) fn memory_message(limits: &Limits) -> String {
    format!(
        "the schema code used more than the memory limit of {} MiB",
        limits.max_heap_bytes / (1024 * 1024)
    )
}

/// The message of [`SchemaErrorKind::Timeout`] errors.
pub(super) fn timeout_message(limits: &Limits) -> String {
    format!(
        "the schema code ran longer than the time limit of {} ms",
        limits.timeout.as_millis()
    )
}

/// The message for code that nests deeper than [`nesting::MAX_NESTING`].
fn too_deep_message() -> String {
    format!(
        "the code nests too deeply (more than {} levels of brackets, operators and blocks)",
        nesting::MAX_NESTING
    )
}

/// How deeply a JSON value nests (a scalar: 0), counted without recursion.
pub(super) fn json_depth(v: &Json) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            Json::Array(items) => stack.extend(items.iter().map(|x| (x, depth + 1))),
            Json::Object(m) => stack.extend(m.values().map(|x| (x, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// `ctx` is turned into Starlark values recursively: bound its depth.
pub(super) fn check_ctx_depth(ctx: &Json) -> Result<(), SchemaError> {
    if json_depth(ctx) > MAX_CTX_DEPTH {
        return Err(SchemaError::new(
            SchemaErrorKind::Runtime,
            format!("ctx nests deeper than {MAX_CTX_DEPTH} levels (check the flow's arguments)"),
        ));
    }
    Ok(())
}

/// Turn a Starlark error into a [`SchemaError`] with a readable message and
/// the 1-based position of the failing code.
fn from_starlark(
    e: &starlark::Error,
    limits: &Limits,
    deadline: Instant,
    positions: &Positions<'_>,
) -> SchemaError {
    let raw = e.without_diagnostic().to_string();
    let (kind, message) = match e.kind() {
        ErrorKind::Parser(_) => (SchemaErrorKind::Syntax, raw),
        ErrorKind::StackOverflow(_) => (
            SchemaErrorKind::CallStack,
            format!(
                "too many nested function calls (more than {}), is there an infinite recursion?",
                limits.max_callstack
            ),
        ),
        _ if raw.starts_with("Heap memory limit") => {
            (SchemaErrorKind::Memory, memory_message(limits))
        }
        _ if raw == "Evaluation cancelled" || Instant::now() >= deadline => {
            (SchemaErrorKind::Timeout, timeout_message(limits))
        }
        ErrorKind::Fail(inner) => (
            SchemaErrorKind::Runtime,
            format!("fail: {}", inner.to_string().trim_start()),
        ),
        _ => (SchemaErrorKind::Runtime, raw),
    };
    let (line, column) = match e.span() {
        Some(span) if kind != SchemaErrorKind::Timeout && kind != SchemaErrorKind::Memory => {
            let (line, column) = positions.line_column(span.span.begin().get() as usize);
            (Some(line), Some(column))
        }
        _ => (None, None),
    };
    SchemaError {
        kind,
        message: clip(message),
        line,
        column,
    }
}

/// The longest error message kept, in characters (Starlark's messages
/// may quote whole values).
const MAX_MESSAGE_CHARS: usize = 1000;

/// `message`, cut to [`MAX_MESSAGE_CHARS`] characters.
fn clip(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

/// Why [`to_json`] failed, and where.
struct JsonError {
    what: NotJson,
    /// Where, innermost first (`[0]`, `['jobs']`, `.name`), filled in
    /// while the error travels up: nothing is formatted on success.
    path: Vec<String>,
}

enum NotJson {
    TooDeep,
    TooLarge,
    BigInt,
    Float(String),
    Unreadable(&'static str),
    Key(&'static str),
    Type(&'static str),
}

impl JsonError {
    fn new(what: NotJson) -> Self {
        JsonError {
            what,
            path: Vec::new(),
        }
    }

    /// Add the segment of the enclosing value.
    fn at(mut self, segment: impl FnOnce() -> String) -> Self {
        self.path.push(segment());
        self
    }

    fn message(&self, limits: &Limits) -> String {
        let path: String = self.path.iter().rev().map(String::as_str).collect();
        let at = where_(&path);
        match &self.what {
            NotJson::TooDeep => format!(
                "the value returned by stage(ctx) nests deeper than {MAX_RESULT_DEPTH} levels at {at}"
            ),
            NotJson::TooLarge => format!(
                "the value returned by stage(ctx) takes more than {} MiB as JSON (at {at})",
                result_budget(limits) / (1024 * 1024)
            ),
            NotJson::BigInt => format!("the integer at {at} is too large for JSON"),
            NotJson::Float(f) => format!("the float {f} at {at} cannot be represented in JSON"),
            NotJson::Unreadable(t) => format!("unreadable {t} at {at}"),
            NotJson::Key(t) => {
                format!("a dict key of type `{t}` at {at} cannot be a JSON object key")
            }
            NotJson::Type(t) => format!(
                "the value returned by stage(ctx) contains a value of type `{t}` at {at}, \
                 which cannot be converted to JSON"
            ),
        }
    }
}

/// Take `bytes` out of the size budget of the result.
fn spend(budget: &mut usize, bytes: usize) -> Result<(), JsonError> {
    *budget = budget
        .checked_sub(bytes)
        .ok_or_else(|| JsonError::new(NotJson::TooLarge))?;
    Ok(())
}

/// Convert the value returned by `stage()` to JSON, keeping dict order.
/// Every node costs [`JSON_NODE_BYTES`] plus the bytes of its strings out
/// of `budget`.
fn to_json(v: Value<'_>, depth: usize, budget: &mut usize) -> Result<Json, JsonError> {
    if depth > MAX_RESULT_DEPTH {
        return Err(JsonError::new(NotJson::TooDeep));
    }
    spend(budget, JSON_NODE_BYTES)?;
    if v.is_none() {
        return Ok(Json::Null);
    }
    if let Some(b) = v.unpack_bool() {
        return Ok(Json::Bool(b));
    }
    if let Some(i) = v.unpack_i32() {
        return Ok(Json::from(i));
    }
    if let Some(s) = v.unpack_str() {
        spend(budget, s.len())?;
        return Ok(Json::String(s.to_string()));
    }
    match v.get_type() {
        "int" => {
            // Not through its text: printing a huge integer takes very long.
            if let Ok(Some(i)) = i64::unpack_value(v) {
                Ok(Json::from(i))
            } else if let Ok(Some(u)) = u64::unpack_value(v) {
                Ok(Json::from(u))
            } else {
                Err(JsonError::new(NotJson::BigInt))
            }
        }
        "float" => {
            let f = v
                .downcast_ref::<StarlarkFloat>()
                .map(|f| f.0)
                .unwrap_or(f64::NAN);
            serde_json::Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| JsonError::new(NotJson::Float(v.to_str())))
        }
        "list" | "tuple" => {
            let items: Vec<Value<'_>> = match ListRef::from_value(v) {
                Some(l) => l.iter().collect(),
                None => TupleRef::from_value(v)
                    .map(|t| t.iter().collect())
                    .unwrap_or_default(),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(to_json(item, depth + 1, budget).map_err(|e| e.at(|| format!("[{i}]")))?);
            }
            Ok(Json::Array(out))
        }
        "dict" => {
            let Some(d) = DictRef::from_value(v) else {
                return Err(JsonError::new(NotJson::Unreadable("dict")));
            };
            let entries: Vec<(Value<'_>, Value<'_>)> = d.iter().collect();
            drop(d);
            let mut out = Map::new();
            for (k, item) in entries {
                let key = json_key(k).ok_or_else(|| JsonError::new(NotJson::Key(k.get_type())))?;
                spend(budget, key.len())?;
                let val = to_json(item, depth + 1, budget).map_err(|e| {
                    e.at(|| format!("[{}]", crate::schema::pyrepr::py_repr_str(&key)))
                })?;
                out.insert(key, val);
            }
            Ok(Json::Object(out))
        }
        "struct" => {
            let Some(s) = StructRef::from_value(v) else {
                return Err(JsonError::new(NotJson::Unreadable("struct")));
            };
            let mut out = Map::new();
            for (k, item) in s.iter() {
                spend(budget, k.as_str().len())?;
                let val = to_json(item, depth + 1, budget)
                    .map_err(|e| e.at(|| format!(".{}", k.as_str())))?;
                out.insert(k.as_str().to_string(), val);
            }
            Ok(Json::Object(out))
        }
        _ => Err(JsonError::new(NotJson::Type(v.get_type()))),
    }
}

/// `stage(ctx)<path>` for messages.
fn where_(path: &str) -> String {
    format!("stage(ctx){path}")
}

/// A dict key as a JSON object key, converted like Python's `json.dumps`
/// (`1` → `"1"`, `True` → `"true"`, `None` → `"null"`).
fn json_key(k: Value<'_>) -> Option<String> {
    if let Some(s) = k.unpack_str() {
        return Some(s.to_string());
    }
    if k.is_none() {
        return Some("null".into());
    }
    if let Some(b) = k.unpack_bool() {
        return Some(if b { "true" } else { "false" }.into());
    }
    match k.get_type() {
        // Not through its text: printing a huge integer takes very long.
        "int" => i64::unpack_value(k)
            .ok()
            .flatten()
            .map(|i| i.to_string())
            .or_else(|| u64::unpack_value(k).ok().flatten().map(|u| u.to_string())),
        "float" => k
            .downcast_ref::<StarlarkFloat>()
            .map(|f| crate::schema::pyrepr::py_float_repr(f.0)),
        _ => None,
    }
}

/// Maps error positions in the code that ran back to the user's code.
struct Positions<'a> {
    /// The user's code.
    code: &'a str,
    /// The rewrites that produced the code that ran, first applied first.
    maps: Vec<&'a Rewritten>,
}

impl Positions<'_> {
    /// 1-based line and column (in characters) in the user's code of byte
    /// `offset` in the code that ran.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = self
            .maps
            .iter()
            .rev()
            .fold(offset, |o, m| m.original_offset(o))
            .min(self.code.len());
        while !self.code.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.code[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

/// The ctx JSON as frozen Starlark values. Frozen dicts are how the
/// `__kk_attr`/`__kk_index` builtins recognise ctx objects: code cannot
/// create frozen dicts of its own while it runs.
fn freeze_json(v: &Json, heap: &FrozenHeap) -> FrozenValue {
    match v {
        Json::Null => FrozenValue::new_none(),
        Json::Bool(b) => FrozenValue::new_bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                heap.alloc(i)
            } else if let Some(u) = n.as_u64() {
                heap.alloc(u)
            } else {
                heap.alloc(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => heap.alloc(s.as_str()),
        Json::Array(items) => {
            let items: Vec<FrozenValue> = items.iter().map(|x| freeze_json(x, heap)).collect();
            heap.alloc(AllocList(items))
        }
        Json::Object(m) => {
            let pairs: Vec<(&str, FrozenValue)> = m
                .iter()
                .map(|(k, x)| (k.as_str(), freeze_json(x, heap)))
                .collect();
            heap.alloc(AllocDict(pairs))
        }
    }
}

/// Whether `v` is one of the ctx dicts (see [`freeze_json`]).
fn is_ctx_dict(v: Value<'_>) -> bool {
    v.unpack_frozen().is_some() && v.get_type() == "dict"
}

/// What [`evaluate`] stores in the module for the builtins: the ctx root,
/// the shared empty dict for missing keys, and the heap limit in bytes.
fn evaluation_extra<'v>(eval: &Evaluator<'v, '_, '_>) -> Option<(Value<'v>, Value<'v>, usize)> {
    let extra = eval.module().extra_value()?;
    let t = TupleRef::from_value(extra)?;
    match t.content() {
        [root, empty, limit] => {
            let limit = limit.to_str().parse().unwrap_or(usize::MAX);
            Some((*root, *empty, limit))
        }
        _ => None,
    }
}

/// The operators [`ctx_access`] guards: `x * y` runs as `__kk_mul(x, y)`.
static GUARDED_OPERATORS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    HashMap::from([
        ("*".to_string(), "__kk_mul".to_string()),
        ("+".to_string(), "__kk_add".to_string()),
        ("%".to_string(), "__kk_mod".to_string()),
    ])
});

/// How deeply a value given to `str()`, `print()`, `"%s" %`, an f-string,
/// ... may nest: printing recurses once per level, and `json.encode` takes
/// tens of kilobytes of stack per level.
const MAX_PRINT_DEPTH: usize = 100;

/// The values directly inside a list, tuple, set, dict (keys and values)
/// or struct; `None` for other values.
fn children<'v>(v: Value<'v>, heap: Heap<'v>) -> Option<Vec<Value<'v>>> {
    match v.get_type() {
        "list" => ListRef::from_value(v).map(|l| l.iter().collect()),
        "tuple" => TupleRef::from_value(v).map(|t| t.iter().collect()),
        "dict" => DictRef::from_value(v).map(|d| d.iter().flat_map(|(k, x)| [k, x]).collect()),
        "struct" => StructRef::from_value(v).map(|s| s.iter().map(|(_, x)| x).collect()),
        "set" => v.iterate(heap).ok().map(|i| i.collect()),
        _ => None,
    }
}

/// Whether printing `v` would recurse deeper than `limit` levels, found
/// without recursion. A value inside itself counts once (printing shows
/// it as `[...]`); a value shared by many containers is measured once.
fn nests_deeper_than<'v>(v: Value<'v>, limit: usize, heap: Heap<'v>) -> bool {
    struct Frame<'v> {
        id: ValueIdentity<'v>,
        children: Vec<Value<'v>>,
        next: usize,
        height: usize,
    }
    let Some(children_of_v) = children(v, heap) else {
        return false;
    };
    let mut heights: HashMap<ValueIdentity<'v>, usize> = HashMap::new();
    let mut on_path: HashSet<ValueIdentity<'v>> = HashSet::from([v.identity()]);
    let mut stack = vec![Frame {
        id: v.identity(),
        children: children_of_v,
        next: 0,
        height: 0,
    }];
    while let Some(top) = stack.last_mut() {
        if let Some(&child) = top.children.get(top.next) {
            top.next += 1;
            let id = child.identity();
            if let Some(&h) = heights.get(&id) {
                top.height = top.height.max(h + 1);
            } else if !on_path.contains(&id) {
                match children(child, heap) {
                    None => top.height = top.height.max(1),
                    Some(grandchildren) => {
                        if stack.len() >= limit {
                            return true;
                        }
                        on_path.insert(id);
                        stack.push(Frame {
                            id,
                            children: grandchildren,
                            next: 0,
                            height: 0,
                        });
                    }
                }
            }
            continue;
        }
        let Some(done) = stack.pop() else { break };
        if stack.len() + done.height > limit {
            return true;
        }
        on_path.remove(&done.id);
        heights.insert(done.id, done.height);
        if let Some(parent) = stack.last_mut() {
            parent.height = parent.height.max(done.height + 1);
        }
    }
    false
}

/// Fail when printing `v` would recurse too deeply.
fn check_printable<'v>(v: Value<'v>, heap: Heap<'v>) -> starlark::Result<()> {
    if nests_deeper_than(v, MAX_PRINT_DEPTH, heap) {
        return Err(plain_error(format!(
            "a value of type `{}` nests too deeply to be printed (more than {MAX_PRINT_DEPTH} levels)",
            v.get_type()
        )));
    }
    Ok(())
}

/// Length and bytes per item of a string, list or tuple.
fn sequence_size(v: Value<'_>) -> Option<(usize, usize)> {
    if let Some(s) = v.unpack_str() {
        return Some((s.len(), 1));
    }
    match v.get_type() {
        "list" | "tuple" => Some((usize::try_from(v.length().ok()?).unwrap_or(0), 8)),
        _ => None,
    }
}

/// Fail with the heap-limit error if allocating `bytes` more would cross
/// the limit.
fn check_allocation(bytes: usize, eval: &Evaluator<'_, '_, '_>) -> starlark::Result<()> {
    let limit = evaluation_extra(eval).map_or(usize::MAX, |(_, _, l)| l);
    if eval.heap().allocated_bytes().saturating_add(bytes) > limit {
        return Err(plain_error(format!(
            "Heap memory limit of {limit} bytes exceeded"
        )));
    }
    Ok(())
}

/// A value read out of ctx: lists are handed out as fresh (mutable) copies,
/// as Python code may append to them; everything else as it is.
fn from_ctx<'v>(v: Value<'v>, heap: Heap<'v>) -> Value<'v> {
    if v.unpack_frozen().is_some()
        && v.get_type() == "list"
        && let Some(l) = ListRef::from_value(v)
    {
        return heap.alloc(AllocList(l.iter().collect::<Vec<_>>()));
    }
    v
}

/// An error with a plain message.
fn plain_error(msg: String) -> starlark::Error {
    starlark::Error::new_value(anyhow::Error::msg(msg))
}

/// Read `key` of a ctx dict with `addict` semantics: the value if present,
/// an error at the top level (`missing field X`), an empty dict below it.
fn ctx_lookup<'v>(
    obj: Value<'v>,
    key: Value<'v>,
    eval: &Evaluator<'v, '_, '_>,
    heap: Heap<'v>,
) -> starlark::Result<Option<Value<'v>>> {
    let Some(d) = DictRef::from_value(obj) else {
        return Ok(None);
    };
    if let Some(v) = d.get(key)? {
        return Ok(Some(from_ctx(v, heap)));
    }
    let (root, empty, _) = evaluation_extra(eval)
        .ok_or_else(|| plain_error("internal error: ctx is not set".to_string()))?;
    if obj.ptr_eq(root) {
        let name = key
            .unpack_str()
            .map_or_else(|| key.to_repr(), str::to_string);
        return Err(plain_error(format!("missing field {name}")));
    }
    Ok(Some(empty))
}

/// `__kk_attr` and `__kk_index`, which the rewritten code calls for `x.name`
/// and `x[key]` reads (see [`super::rewrite`]), and `__kk_mul` / `__kk_add`,
/// which run `*` and `+` after checking the size of a repeated or
/// concatenated string, list or tuple against the heap limit.
#[starlark_module]
fn ctx_access(builder: &mut GlobalsBuilder) {
    /// `obj.name`: `addict` semantics for ctx dicts, plain attribute access otherwise.
    fn __kk_attr<'v>(
        #[starlark(require = pos)] obj: Value<'v>,
        #[starlark(require = pos)] name: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let heap = eval.heap();
        if is_ctx_dict(obj)
            && let Some(v) = ctx_lookup(obj, heap.alloc(name), eval, heap)?
        {
            return Ok(v);
        }
        match obj.get_attr(name, heap)? {
            Some(v) => Ok(v),
            None => Err(ValueError::NoAttr(obj.get_type().to_string(), name.to_string()).into()),
        }
    }

    /// `obj[key]`: `addict` semantics for ctx dicts, plain indexing otherwise.
    fn __kk_index<'v>(
        #[starlark(require = pos)] obj: Value<'v>,
        #[starlark(require = pos)] key: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let heap = eval.heap();
        if is_ctx_dict(obj)
            && let Some(v) = ctx_lookup(obj, key, eval, heap)?
        {
            return Ok(v);
        }
        obj.at(key, heap)
    }

    /// `a * b`.
    fn __kk_mul<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let repeated = match (
            sequence_size(a),
            b.unpack_i32(),
            sequence_size(b),
            a.unpack_i32(),
        ) {
            (Some((len, unit)), Some(n), _, _) | (_, _, Some((len, unit)), Some(n)) => Some(
                len.saturating_mul(unit)
                    .saturating_mul(usize::try_from(n).unwrap_or(0)),
            ),
            _ => None,
        };
        if let Some(bytes) = repeated {
            check_allocation(bytes, eval)?;
        }
        a.mul(b, eval.heap())
    }

    /// `x`, after checking that it can be printed (see [`super::rewrite`]).
    fn __kk_shallow<'v>(
        #[starlark(require = pos)] x: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        check_printable(x, eval.heap())?;
        Ok(x)
    }

    /// `a % b`: for a string `a`, formatting prints `b`.
    fn __kk_mod<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if a.unpack_str().is_some() {
            check_printable(b, eval.heap())?;
        }
        a.percent(b, eval.heap())
    }

    /// `a + b`.
    fn __kk_add<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if let (Some((la, unit)), Some((lb, _))) = (sequence_size(a), sequence_size(b)) {
            check_allocation(la.saturating_add(lb).saturating_mul(unit), eval)?;
        }
        a.add(b, eval.heap())
    }
}
