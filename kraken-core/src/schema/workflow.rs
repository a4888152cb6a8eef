//! The workflow JSON schema of the original (embedded) and the step schema
//! of a tool.

use serde_json::{Map, Value, json};

/// The workflow JSON schema of the original, with the step schemas of its
/// 14 built-in tools (`kraken-workflow-schema.json`).
pub const WORKFLOW_SCHEMA: &str = include_str!("../../assets/kraken-workflow-schema.json");

/// The JSON schema for a step of `tool` (name or `name@version`) with
/// parameters `fields`, as the original's `schemaval.get_schema()` builds it.
pub fn tool_step_schema(tool_ref: &str, description: &str, fields: &Value) -> Value {
    let props = fields
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut properties = Map::new();
    // The original's web UI splits this description at its first period
    // (the step dialog's help): always a string, never missing.
    let description = if description.trim().is_empty() {
        format!("The {tool_ref} tool.")
    } else {
        description.to_string()
    };
    properties.insert(
        "tool".into(),
        json!({"description": description, "const": tool_ref, "base": true}),
    );
    properties.insert(
        "attempts".into(),
        json!({"description": "A number of times the step is retried if if it returns error.",
               "default": 1, "type": "integer", "base": true}),
    );
    properties.insert(
        "sleep_time_after_attempt".into(),
        json!({"description": "A sleep time between subsequent execution attempts.",
               "default": 0, "type": "integer", "base": true}),
    );
    properties.insert(
        "name".into(),
        json!({"description": "A name of the step, displayed in web UI.", "default": "",
               "type": "string", "base": true}),
    );
    properties.insert(
        "when".into(),
        json!({"description": "A condition when a step may be executed.", "default": "was_no_error",
               "type": "string", "base": true}),
    );
    if let Some(p) = props.as_object() {
        for (k, v) in p {
            properties.insert(k.clone(), v.clone());
        }
    }
    let mut required = vec![json!("tool")];
    if let Some(r) = fields.get("required").and_then(Value::as_array) {
        required.extend(r.iter().cloned());
    }
    json!({
        "if": {"properties": {"tool": {"const": tool_ref}}},
        "then": {
            "additionalProperties": fields.get("additionalProperties").cloned().unwrap_or(Value::Bool(false)),
            "required": required,
            "properties": properties,
        },
        "else": {"additionalProperties": false, "properties": {}},
    })
}
