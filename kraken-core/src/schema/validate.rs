//! Validating an evaluated stage schema (the original's `schemaval.py`) and
//! the post-processing checks of `schema.check_and_correct_stage_schema`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value, json};

use super::pyrepr::{py_repr, py_repr_str, py_str};
use crate::model::secret_kind;

/// Where the steps' `oneOf` (one entry per tool) sits in the workflow schema.
const STEPS_ITEMS: &str = "/properties/jobs/items/properties/steps/items";

/// Longest instance text quoted in a message before it is cut.
const MAX_QUOTED: usize = 200;

/// The workflow JSON schema compiled once: the top-level schema (steps
/// checked only for being objects, as the original does) and one validator
/// per tool reference (`name` = latest version, `name@version`).
pub struct WorkflowValidator {
    main: Validator,
    tools: HashMap<String, Validator>,
}

impl fmt::Debug for WorkflowValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tools: Vec<&String> = self.tools.keys().collect();
        tools.sort();
        f.debug_struct("WorkflowValidator")
            .field("tools", &tools)
            .finish_non_exhaustive()
    }
}

impl WorkflowValidator {
    /// Compile `schema`, the full workflow schema as
    /// [`workflow_schema`](crate::engine::workflow_schema) returns it: the
    /// steps' `items.oneOf` holds one `{if: {properties: {tool: {const: REF}}},
    /// then: STEP_SCHEMA, else: ...}` entry per tool reference.
    pub fn new(schema: &Value) -> Result<Self, String> {
        let mut top = schema.clone();
        let mut tools = HashMap::new();
        if let Some(items) = top.pointer_mut(STEPS_ITEMS).and_then(Value::as_object_mut) {
            if let Some(Value::Array(entries)) = items.remove("oneOf") {
                for entry in entries {
                    let Some(tool_ref) = entry
                        .pointer("/if/properties/tool/const")
                        .and_then(Value::as_str)
                    else {
                        continue;
                    };
                    let then = entry.get("then").cloned().unwrap_or_else(|| json!({}));
                    let v = jsonschema::draft7::new(&then).map_err(|e| {
                        format!(
                            "the step schema of tool '{tool_ref}' is not a valid JSON schema: {e}"
                        )
                    })?;
                    tools.insert(tool_ref.to_string(), v);
                }
            }
            items.insert("type".into(), json!("object"));
        }
        let main = jsonschema::draft7::new(&top)
            .map_err(|e| format!("the workflow schema is not a valid JSON schema: {e}"))?;
        Ok(WorkflowValidator { main, tools })
    }

    /// The validator for the embedded workflow schema with the 14 built-in
    /// tools ([`WORKFLOW_SCHEMA`](crate::schema::WORKFLOW_SCHEMA)).
    pub fn builtin() -> Result<Self, String> {
        let schema: Value = serde_json::from_str(crate::schema::WORKFLOW_SCHEMA)
            .map_err(|e| format!("the embedded workflow schema is not JSON: {e}"))?;
        Self::new(&schema)
    }

    /// Whether `tool_ref` (`name` or `name@version`) is a known tool.
    pub fn has_tool(&self, tool_ref: &str) -> bool {
        self.tools.contains_key(tool_ref)
    }

    /// Validate an evaluated stage schema. The error is the message the
    /// original answers with (HTTP 400): a JSON-schema problem of the top
    /// level, `Missing 'tool' field in the 1st job build, in the 2nd step`,
    /// `Unknown tool 'x' in the ...`, or a step that does not fit its tool.
    pub fn validate(&self, schema: &Value) -> Result<(), String> {
        let errors: Vec<ValidationError<'_>> = self.main.iter_errors(schema).collect();
        if !errors.is_empty() {
            return Err(describe_errors(errors, ""));
        }
        let jobs = schema.get("jobs").and_then(Value::as_array);
        for (j_idx, job) in jobs.into_iter().flatten().enumerate() {
            let steps = job.get("steps").and_then(Value::as_array);
            for (s_idx, step) in steps.into_iter().flatten().enumerate() {
                let job_name = match job.get("name") {
                    Some(n) => format!(" {}", py_str(n)),
                    None => String::new(),
                };
                let place = format!(
                    "in the {} job{}, in the {} step",
                    ordinal(j_idx + 1),
                    job_name,
                    ordinal(s_idx + 1)
                );
                let Some(tool) = step.get("tool") else {
                    return Err(format!("Missing 'tool' field {place}"));
                };
                let validator = tool.as_str().and_then(|t| self.tools.get(t));
                let Some(validator) = validator else {
                    return Err(format!("Unknown tool '{}' {place}", py_str(tool)));
                };
                let errors: Vec<ValidationError<'_>> = validator.iter_errors(step).collect();
                if !errors.is_empty() {
                    return Err(describe_errors(errors, &format!(" {place}")));
                }
            }
        }
        Ok(())
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `12th`, `13th`, `21st`, `22nd`, `101st`, `111th`.
pub fn ordinal(n: usize) -> String {
    let suffix = if (n / 10) % 10 == 1 {
        "th"
    } else {
        match n % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

/// The message for a failed validation: the most relevant error (the one
/// nearest the root, preferring a concrete one over a `oneOf`/`anyOf`), as
/// Python's `jsonschema` words it, with its JSON pointer, then `place`.
fn describe_errors(mut errors: Vec<ValidationError<'_>>, place: &str) -> String {
    errors.sort_by_key(|e| {
        let depth = e.instance_path().as_str().matches('/').count();
        let weak = matches!(
            e.kind(),
            ValidationErrorKind::OneOfNotValid { .. }
                | ValidationErrorKind::OneOfMultipleValid { .. }
                | ValidationErrorKind::AnyOf { .. }
        );
        (depth, weak)
    });
    let first = &errors[0];
    let mut msg = describe(first);
    let pointer = first.instance_path().as_str();
    if !pointer.is_empty() {
        msg.push_str(" at ");
        msg.push_str(pointer);
    }
    msg.push_str(place);
    match errors.len() {
        1 => {}
        2 => msg.push_str(" (and 1 more problem)"),
        n => msg.push_str(&format!(" (and {} more problems)", n - 1)),
    }
    msg
}

/// Python `repr` of an instance, cut to a readable length.
fn quoted(v: &Value) -> String {
    let s = py_repr(v);
    if s.chars().count() > MAX_QUOTED {
        let cut: String = s.chars().take(MAX_QUOTED).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// One error in the words of Python's `jsonschema`.
fn describe(e: &ValidationError<'_>) -> String {
    let inst = e.instance();
    match e.kind() {
        ValidationErrorKind::Required { property } => {
            format!("{} is a required property", py_repr(property))
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let list: Vec<String> = unexpected.iter().map(|u| py_repr_str(u)).collect();
            format!(
                "Additional properties are not allowed ({} {} unexpected)",
                list.join(", "),
                if unexpected.len() == 1 { "was" } else { "were" }
            )
        }
        ValidationErrorKind::Type { kind } => {
            let types: Vec<String> = match kind {
                TypeKind::Single(t) => vec![py_repr_str(&t.to_string())],
                TypeKind::Multiple(set) => {
                    set.iter().map(|t| py_repr_str(&t.to_string())).collect()
                }
            };
            format!("{} is not of type {}", quoted(inst), types.join(", "))
        }
        ValidationErrorKind::Enum { options } => {
            format!("{} is not one of {}", quoted(inst), py_repr(options))
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("{} was expected", py_repr(expected_value))
        }
        ValidationErrorKind::Minimum { limit } => format!(
            "{} is less than the minimum of {}",
            quoted(inst),
            py_repr(limit)
        ),
        ValidationErrorKind::Maximum { limit } => format!(
            "{} is greater than the maximum of {}",
            quoted(inst),
            py_repr(limit)
        ),
        ValidationErrorKind::MinItems { .. } | ValidationErrorKind::MinLength { .. } => {
            format!("{} is too short", quoted(inst))
        }
        ValidationErrorKind::MaxItems { .. } | ValidationErrorKind::MaxLength { .. } => {
            format!("{} is too long", quoted(inst))
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            format!(
                "{} is not valid under any of the given schemas",
                quoted(inst)
            )
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => format!(
            "{} is valid under more than one of the given schemas",
            quoted(inst)
        ),
        ValidationErrorKind::FalseSchema => {
            format!("False schema does not allow {}", quoted(inst))
        }
        _ => e.to_string(),
    }
}

/// Fill what the original fills after validation: `jobs=[]`, `configs=[]`,
/// `parent='root'` when missing or empty, `triggers={'parent': True}` when
/// missing or `{}`, `parameters=[]`.
pub fn apply_defaults(schema: &mut Value) {
    let Some(m) = schema.as_object_mut() else {
        return;
    };
    m.entry("jobs").or_insert_with(|| json!([]));
    m.entry("configs").or_insert_with(|| json!([]));
    let parent = m.entry("parent").or_insert_with(|| json!("root"));
    if parent.as_str() == Some("") {
        *parent = json!("root");
    }
    let triggers = m
        .entry("triggers")
        .or_insert_with(|| json!({"parent": true}));
    if triggers.as_object().is_some_and(Map::is_empty) {
        *triggers = json!({"parent": true});
    }
    m.entry("parameters").or_insert_with(|| json!([]));
}

/// What [`check_stage`] checks a schema against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaEnv {
    /// The name of the stage the schema belongs to.
    pub stage_name: String,
    /// Names of the non-deleted stages of the branch (may include this stage).
    pub other_stages: Vec<String>,
    /// The project's non-deleted secrets: name → kind
    /// ([`secret_kind::SSH_KEY`] or [`secret_kind::SIMPLE`]).
    pub secrets: HashMap<String, i64>,
    /// Names of the non-deleted agents groups.
    pub groups: HashSet<String>,
}

/// The original's checks of an evaluated, validated schema with defaults
/// applied: the parent stage exists, job names are unique, `access-token` /
/// `ssh-key` step fields name a secret of the right kind, and environments
/// name existing agents groups (`all` and templated names pass).
pub fn check_stage(schema: &Value, env: &SchemaEnv) -> Result<(), String> {
    if let Some(parent) = schema.get("parent") {
        let name = py_str(parent);
        if name != "root" && (name == env.stage_name || !env.other_stages.contains(&name)) {
            return Err(format!("Cannot find parent stage {name}"));
        }
    }
    let mut job_names: HashSet<String> = HashSet::new();
    let jobs = schema.get("jobs").and_then(Value::as_array);
    for job in jobs.into_iter().flatten() {
        if let Some(name) = job.get("name") {
            let name = py_str(name);
            if !job_names.insert(name.clone()) {
                return Err(format!("Two jobs with the same name '{name}'"));
            }
        }
        let steps = job.get("steps").and_then(Value::as_array);
        for step in steps.into_iter().flatten().filter_map(Value::as_object) {
            for (field, value) in step {
                let wanted = match field.as_str() {
                    "access-token" => secret_kind::SIMPLE,
                    "ssh-key" => secret_kind::SSH_KEY,
                    _ => continue,
                };
                let secret = py_str(value);
                match env.secrets.get(&secret) {
                    None => return Err(format!("Secret '{secret}' does not exist")),
                    Some(kind) if *kind != wanted => {
                        return Err(if wanted == secret_kind::SIMPLE {
                            format!("Type of '{secret}' secret should be Simple")
                        } else {
                            format!("Type of '{secret}' secret should be SSH Username & Key")
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        let envs = job.get("environments").and_then(Value::as_array);
        for e in envs.into_iter().flatten() {
            if let Some(net) = e.get("network") {
                let executor = e.get("executor").and_then(Value::as_str).unwrap_or("local");
                if executor != "docker" {
                    let job_name = job.get("name").map(py_str).unwrap_or_default();
                    return Err(format!(
                        "Network {} of job '{job_name}' applies to docker jobs only (its executor is '{executor}')",
                        py_str(net)
                    ));
                }
            }
            let Some(group) = e.get("agents_group") else {
                continue;
            };
            let group = py_str(group);
            if group != "all" && !group.contains('#') && !env.groups.contains(&group) {
                return Err(format!("Cannot find {group} agents group"));
            }
        }
    }
    Ok(())
}
