//! `#{...}` substitution in step fields, labels and notifications (the
//! original's `schema.substitute_val`).
//!
//! Every string goes through two passes:
//! 1. legacy `#{NAME}` (`NAME` of `[A-Za-z0-9_ ]+`) replaced from the run
//!    args; `KK_SECRET_*` names are `******` in the masked copy;
//! 2. `#{expr}` (`[A-Za-z0-9_. \[\]<>=\-+/*|^()]+`) evaluated as a Jinja
//!    expression against the ctx with strict undefined; any error gives
//!    `<ERROR>`; `secrets.*` expressions are masked.
//!
//! Values are rendered as Python's `str()` renders them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, UndefinedBehavior, Value as JValue};
use serde_json::{Map, Value};

use super::pyrepr::py_str;

/// What a failed `#{expr}` becomes.
pub const ERROR_TEXT: &str = "<ERROR>";

/// What a secret becomes in the masked copy.
pub use crate::mask::MASK;

/// The Jinja environment: strict undefined, no templates, only expressions.
static JINJA: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
});

/// Characters of a legacy `#{NAME}`.
fn legacy_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b' '
}

/// Characters of a `#{expr}`.
fn expr_char(b: u8) -> bool {
    legacy_char(b)
        || matches!(
            b,
            b'.' | b'['
                | b']'
                | b'<'
                | b'>'
                | b'='
                | b'-'
                | b'+'
                | b'/'
                | b'*'
                | b'|'
                | b'^'
                | b'('
                | b')'
        )
}

/// All non-overlapping `#{...}` in `s` whose inside is one or more
/// `allowed` characters, left to right (like Python's `re.findall`).
fn find_vars(s: &str, allowed: fn(u8) -> bool) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'#' && b[i + 1] == b'{' {
            let mut j = i + 2;
            while j < b.len() && allowed(b[j]) {
                j += 1;
            }
            if j > i + 2 && j < b.len() && b[j] == b'}' {
                // Only ASCII bytes were matched, so these are char boundaries.
                out.push(s[i..=j].to_string());
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The ctx as a Jinja value, built on first use (most strings have no
/// `#{`). Objects keep their key order so dicts render as Python does.
struct Scope<'a> {
    ctx: &'a Value,
    value: OnceLock<JValue>,
    /// The `#{...}` that rendered `<ERROR>`, and why.
    unresolved: std::cell::RefCell<Vec<Unresolved>>,
}

impl<'a> Scope<'a> {
    fn new(ctx: &'a Value) -> Self {
        Scope {
            ctx,
            value: OnceLock::new(),
            unresolved: Default::default(),
        }
    }

    fn fail(&self, expr: &str, why: String) {
        let mut u = self.unresolved.borrow_mut();
        if !u.iter().any(|x| x.expr == expr) {
            u.push(Unresolved {
                expr: expr.to_string(),
                why,
            });
        }
    }

    fn get(&self) -> &JValue {
        self.value.get_or_init(|| match self.ctx {
            Value::Object(_) => to_jinja(self.ctx),
            _ => to_jinja(&Value::Object(Map::new())),
        })
    }
}

/// A JSON object for Jinja: keys in document order.
#[derive(Debug)]
struct OrderedMap {
    keys: Vec<JValue>,
    values: HashMap<String, JValue>,
}

impl Object for OrderedMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        key.as_str().and_then(|k| self.values.get(k).cloned())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.keys.clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.keys.len())
    }
}

fn to_jinja(v: &Value) -> JValue {
    match v {
        Value::Null => JValue::from(()),
        Value::Bool(b) => JValue::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                JValue::from(i)
            } else if let Some(u) = n.as_u64() {
                JValue::from(u)
            } else {
                JValue::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => JValue::from(s.as_str()),
        Value::Array(a) => JValue::from(a.iter().map(to_jinja).collect::<Vec<_>>()),
        Value::Object(m) => JValue::from_object(OrderedMap {
            keys: m.keys().map(|k| JValue::from(k.as_str())).collect(),
            values: m.iter().map(|(k, v)| (k.clone(), to_jinja(v))).collect(),
        }),
    }
}

/// A `#{...}` that rendered `<ERROR>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The expression inside `#{...}`.
    pub expr: String,
    /// Why: no such name, or the evaluation error.
    pub why: String,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{{{}}} rendered {ERROR_TEXT}: {}", self.expr, self.why)
    }
}

/// Evaluate one Jinja expression and render its value as Python's `str()`;
/// on failure, say why.
fn eval_expr(expr: &str, scope: &Scope<'_>) -> Result<String, String> {
    let compiled = JINJA.compile_expression(expr).map_err(|e| {
        format!(
            "not an expression ({})",
            e.detail().unwrap_or("syntax error")
        )
    })?;
    let undefined = || {
        if expr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            format!("'{expr}' is neither a run argument nor a context value")
        } else {
            "a name in it is undefined".to_string()
        }
    };
    let value = compiled.eval(scope.get()).map_err(|e| match e.kind() {
        minijinja::ErrorKind::UndefinedError => undefined(),
        _ => e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
    })?;
    if value.is_undefined() {
        return Err(undefined());
    }
    let json = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    Ok(py_str(&json))
}

/// An arg value as text (the original requires strings; anything else is
/// rendered as Python's `str()`).
fn arg_text(v: &Value) -> String {
    py_str(v)
}

/// Substitute one string: the evaluated text and the masked copy.
fn substitute_str(val: &str, args: &Map<String, Value>, scope: &Scope<'_>) -> (String, String) {
    if !val.contains("#{") {
        return (val.to_string(), val.to_string());
    }
    let mut out = val.to_string();
    let mut masked = val.to_string();
    let mut secret_present = false;

    // Pass 1: legacy #{NAME} from args.
    for var in find_vars(val, legacy_char) {
        let name = &var[2..var.len() - 1];
        let Some(arg) = args.get(name) else {
            continue;
        };
        let text = arg_text(arg);
        out = out.replace(&var, &text);
        if name.starts_with("KK_SECRET_") {
            masked = masked.replace(&var, MASK);
            secret_present = true;
        } else {
            masked = masked.replace(&var, &text);
        }
    }

    // Pass 2: #{expr} against the ctx.
    for var in find_vars(&out, expr_char) {
        let expr = var[2..var.len() - 1].trim();
        let text = eval_expr(expr, scope).unwrap_or_else(|why| {
            scope.fail(expr, why);
            ERROR_TEXT.to_string()
        });
        out = out.replace(&var, &text);
        if expr.starts_with("secrets.") {
            secret_present = true;
            masked = masked.replace(&var, MASK);
        } else {
            masked = masked.replace(&var, &text);
        }
    }

    if secret_present {
        (out, masked)
    } else {
        let copy = out.clone();
        (out, copy)
    }
}

fn substitute_in(value: &Value, args: &Map<String, Value>, scope: &Scope<'_>) -> (Value, Value) {
    match value {
        Value::String(s) => {
            let (a, b) = substitute_str(s, args, scope);
            (Value::String(a), Value::String(b))
        }
        Value::Array(items) => {
            let (a, b): (Vec<Value>, Vec<Value>) = items
                .iter()
                .map(|item| substitute_in(item, args, scope))
                .unzip();
            (Value::Array(a), Value::Array(b))
        }
        Value::Object(m) => {
            let mut a = Map::new();
            let mut b = Map::new();
            for (k, v) in m {
                let (x, y) = substitute_in(v, args, scope);
                a.insert(k.clone(), x);
                b.insert(k.clone(), y);
            }
            (Value::Object(a), Value::Object(b))
        }
        other => (other.clone(), other.clone()),
    }
}

/// Substitute `#{...}` in every string inside `value` (objects and arrays
/// are walked, other values are left as they are). Returns the evaluated
/// value and a copy with secrets masked as `******`.
///
/// `args` are the run args (`KK_FLOW_SEQ`, stage parameters, secrets as
/// `KK_SECRET_SIMPLE_<name>`, ...); `ctx` is the context object of the step,
/// run, stage or branch (`flow`, `run`, `branch`, `secrets`, `is_ci`, ...).
pub fn substitute(value: &Value, args: &Map<String, Value>, ctx: &Value) -> (Value, Value) {
    let scope = Scope::new(ctx);
    substitute_in(value, args, &scope)
}

/// [`substitute`], and every `#{...}` that rendered `<ERROR>` with why,
/// so a step's log (and `kraken schema check`) can say which name was
/// missing.
pub fn substitute_checked(
    value: &Value,
    args: &Map<String, Value>,
    ctx: &Value,
) -> (Value, Value, Vec<Unresolved>) {
    let scope = Scope::new(ctx);
    let (v, masked) = substitute_in(value, args, &scope);
    (v, masked, scope.unresolved.into_inner())
}

/// [`substitute`] for a single string (flow and run labels, `when`,
/// notification fields): the evaluated text and the masked copy.
pub fn render(text: &str, args: &Map<String, Value>, ctx: &Value) -> (String, String) {
    let scope = Scope::new(ctx);
    substitute_str(text, args, &scope)
}

/// A step's `when` as stored at job creation: `#{...}` around it unless it
/// already starts with `#{`, and `#{was_no_error}` when there is none.
pub fn normalize_when(when: Option<&str>) -> String {
    match when {
        None => "#{was_no_error}".to_string(),
        Some(w) if w.starts_with("#{") => w.to_string(),
        Some(w) => format!("#{{{w}}}"),
    }
}

/// What a rendered `when` means: `True` runs the step, `False` skips it,
/// anything else (e.g. `<ERROR>`) is `None`, an error for the step.
pub fn when_decision(rendered: &str) -> Option<bool> {
    match rendered {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// A ctx shaped like the original test's step ctx (test_schema.py).
    fn step_ctx() -> Value {
        json!({
            "args": {"VAR1": "bbb", "color": "red"},
            "project": {"name": "proj-1", "data": {"aaa": 321}},
            "branch": {"name": "br", "data": {"aaa": 234}, "data_ci": {"aaa": {"bbb": 234}},
                       "data_dev": {"aaa": 456}},
            "branch_name": "br",
            "secrets": {"token": "s3cr3t", "ssh": {"user": "u", "key": "k", "password": "k"}},
            "stage": {"name": "st"},
            "flow": {"kind": "ci", "data": {"aaa": 123}, "seq": {"shared": 5, "own": 3}},
            "run": {"label": "333.", "seq": {"shared": 7, "own": 2}},
            "is_ci": true,
            "is_dev": false,
            "job": {"name": "hello", "steps": [{"index": 0, "result": {"duration": 5}}]},
            "step": {"index": 0, "name": "s1"},
            "prev_ok": true,
            "always": true,
            "never": false,
            "was_any_error": false,
            "was_no_error": true,
            "none_value": null,
            "ratio": 1.0,
            "mixed": ["a", 1, true, null, {"k": "v"}],
        })
    }

    #[test]
    fn finds_vars_like_python_findall() {
        assert_eq!(
            find_vars("a #{X} b #{Y Z} #{bad!} #{} #{ok_1}", legacy_char),
            ["#{X}", "#{Y Z}", "#{ok_1}"]
        );
        assert_eq!(
            find_vars("#{a.b[0] > 3} #{x|length} #{#{y}}", expr_char),
            ["#{a.b[0] > 3}", "#{x|length}", "#{y}"]
        );
        assert_eq!(find_vars("#{unterminated", expr_char), Vec::<String>::new());
        assert_eq!(find_vars("żółw #{x} ż", legacy_char), ["#{x}"]);
    }

    #[test]
    fn legacy_vars_and_secret_masking_in_nested_fields() {
        // The cases of the original's test_substitute_vars (behaviour §8.2 row 22).
        let ctx = step_ctx();
        let (v, m) = substitute(
            &json!({"f1": "aaa #{VAR1} ccc"}),
            &args(json!({"VAR1": "bbb"})),
            &ctx,
        );
        assert_eq!(v, json!({"f1": "aaa bbb ccc"}));
        assert_eq!(m, v);

        let a = args(json!({"VAR1": "bbb", "KK_SECRET_abc": "abc"}));
        let (v, m) = substitute(&json!({"f1": "aaa #{VAR1} ccc #{KK_SECRET_abc}"}), &a, &ctx);
        assert_eq!(v, json!({"f1": "aaa bbb ccc abc"}));
        assert_eq!(m, json!({"f1": "aaa bbb ccc ******"}));

        let a = args(json!({"Var_1": "bbb", "KK_SECRET_aBc_2": "cba"}));
        let (v, m) = substitute(
            &json!({"f1": {"f2": "aaa #{Var_1} ccc #{KK_SECRET_aBc_2}"}}),
            &a,
            &ctx,
        );
        assert_eq!(v, json!({"f1": {"f2": "aaa bbb ccc cba"}}));
        assert_eq!(m, json!({"f1": {"f2": "aaa bbb ccc ******"}}));

        let a = args(json!({"Var_1": "bbb", "vAr_2": "ddd", "KK_SECRET_aBc_2": "cba"}));
        let (v, m) = substitute(
            &json!({"f1": ["aaa #{Var_1} ccc", "#{vAr_2}", "ee #{KK_SECRET_aBc_2} ff"]}),
            &a,
            &ctx,
        );
        assert_eq!(v, json!({"f1": ["aaa bbb ccc", "ddd", "ee cba ff"]}));
        assert_eq!(m, json!({"f1": ["aaa bbb ccc", "ddd", "ee ****** ff"]}));

        let a = args(json!({"KK_SECRET_Var_1": "bbb", "KK_SECRET_vAr_2": "ddd"}));
        let (v, m) = substitute(
            &json!({"f1": ["aaa #{KK_SECRET_Var_1} ccc", {"f2": "#{KK_SECRET_vAr_2}"}]}),
            &a,
            &ctx,
        );
        assert_eq!(v, json!({"f1": ["aaa bbb ccc", {"f2": "ddd"}]}));
        assert_eq!(m, json!({"f1": ["aaa ****** ccc", {"f2": "******"}]}));

        let fields = json!({
            "tool": "artifacts #{KK_SECRET_Var}",
            "source": ["kraken-#{KK_SECRET_Var}-compose-0.#{KK_FLOW_SEQ}.yaml", ".env"],
            "cwd": "kraken #{KK_SECRET_Var}",
            "public": true,
            "timeout": 30,
            "parameters": [{"name": "AMI", "type": "string #{KK_SECRET_Var}"}]
        });
        let a = args(json!({"KK_FLOW_SEQ": "123", "KK_SECRET_Var": "abc"}));
        let (v, m) = substitute(&fields, &a, &ctx);
        assert_eq!(
            v,
            json!({
                "tool": "artifacts abc",
                "source": ["kraken-abc-compose-0.123.yaml", ".env"],
                "cwd": "kraken abc",
                "public": true,
                "timeout": 30,
                "parameters": [{"name": "AMI", "type": "string abc"}]
            })
        );
        assert_eq!(
            m,
            json!({
                "tool": "artifacts ******",
                "source": ["kraken-******-compose-0.123.yaml", ".env"],
                "cwd": "kraken ******",
                "public": true,
                "timeout": 30,
                "parameters": [{"name": "AMI", "type": "string ******"}]
            })
        );
    }

    #[test]
    fn ctx_expressions_render_like_jinja_with_python_str() {
        // The cases of the original's test_substitute_val (behaviour §8.2 row 23).
        let ctx = step_ctx();
        let a = args(json!({"VAR1": "bbb", "color": "red"}));
        let r = |t: &str| render(t, &a, &ctx).0;
        assert_eq!(r("aaa #{flow.data.aaa} ccc"), "aaa 123 ccc");
        assert_eq!(r("aaa #{project.data.aaa} ccc"), "aaa 321 ccc");
        assert_eq!(r("aaa #{branch.data.aaa} ccc"), "aaa 234 ccc");
        assert_eq!(r("aaa #{branch.data_ci.aaa} ccc"), "aaa {'bbb': 234} ccc");
        assert_eq!(r("aaa #{branch.data_dev.aaa} ccc"), "aaa 456 ccc");
        assert_eq!(r("aaa #{branch.name} ccc"), "aaa br ccc");
        assert_eq!(r("aaa #{run.label} ccc"), "aaa 333. ccc");
        assert_eq!(r("aaa #{job.name} ccc"), "aaa hello ccc");
        assert_eq!(r("aaa #{step.index} ccc"), "aaa 0 ccc");
        assert_eq!(r("aaa #{args.color} ccc"), "aaa red ccc");
        assert_eq!(r("aaa #{missing} ccc"), "aaa <ERROR> ccc");
        assert_eq!(r("#{flow.data.nope}"), "<ERROR>");
        assert_eq!(r("#{missing.attr}"), "<ERROR>");
        assert_eq!(r("#{flow.data.aaa +}"), "<ERROR>", "a syntax error");
        let (_, _, why) = substitute_checked(
            &json!({"cmd": "make #{BUILD_TYPE} #{VAR1} #{flow.data.aaa +} #{BUILD_TYPE}"}),
            &args(json!({"VAR1": "x"})),
            &step_ctx(),
        );
        assert_eq!(why.len(), 2, "{why:?}");
        assert_eq!(
            why[0].to_string(),
            "#{BUILD_TYPE} rendered <ERROR>: 'BUILD_TYPE' is neither a run argument nor a context value"
        );
        assert!(
            why[1]
                .to_string()
                .starts_with("#{flow.data.aaa +} rendered <ERROR>: "),
            "{}",
            why[1]
        );
        // Python str() of the other kinds of value.
        assert_eq!(r("#{is_ci}"), "True");
        assert_eq!(r("#{is_dev}"), "False");
        assert_eq!(r("#{none_value}"), "None");
        assert_eq!(r("#{ratio}"), "1.0");
        assert_eq!(r("#{mixed}"), "['a', 1, True, None, {'k': 'v'}]");
        assert_eq!(
            r("#{flow.seq}"),
            "{'shared': 5, 'own': 3}",
            "insertion order"
        );
        assert_eq!(r("#{flow.seq.own + 1}"), "4");
        assert_eq!(r("#{flow.seq.own / 2}"), "1.5");
        assert_eq!(r("#{job.steps[step.index].result.duration > 3}"), "True");
        assert_eq!(r("#{ flow.kind }"), "ci", "spaces are stripped");
        assert_eq!(r("#{mixed|length}"), "5");
        // A step ctx without `step` (a run's ctx): `step.name` is an error.
        let run_ctx = json!({"run": {"label": "333."}});
        assert_eq!(
            render("aaa #{step.name} ccc", &a, &run_ctx).0,
            "aaa <ERROR> ccc"
        );
        assert_eq!(
            render("aaa #{run.label} ccc", &a, &run_ctx).0,
            "aaa 333. ccc"
        );
    }

    #[test]
    fn legacy_pass_wins_and_unknown_names_fall_through_to_ctx() {
        let ctx = json!({"KK_FLOW_SEQ": "from ctx", "branch_name": "main"});
        let a = args(json!({"KK_FLOW_SEQ": "42"}));
        assert_eq!(render("v#{KK_FLOW_SEQ}", &a, &ctx).0, "v42");
        assert_eq!(render("#{branch_name}", &a, &ctx).0, "main");
        assert_eq!(render("#{nothing}", &a, &ctx).0, "<ERROR>");
        assert_eq!(render("no vars here", &a, &ctx).0, "no vars here");
        assert_eq!(render("#{unclosed", &a, &ctx).0, "#{unclosed");
    }

    #[test]
    fn secrets_expressions_are_masked() {
        let ctx = step_ctx();
        let a = Map::new();
        let (v, m) = render(
            "token=#{secrets.token} user=#{secrets.ssh.user} b=#{branch.name}",
            &a,
            &ctx,
        );
        assert_eq!(v, "token=s3cr3t user=u b=br");
        assert_eq!(m, "token=****** user=****** b=br");
        let (v, m) = substitute(&json!({"env": {"T": "#{secrets.token}"}, "n": 1}), &a, &ctx);
        assert_eq!(v, json!({"env": {"T": "s3cr3t"}, "n": 1}));
        assert_eq!(m, json!({"env": {"T": "******"}, "n": 1}));
    }

    #[test]
    fn non_strings_are_untouched() {
        let ctx = step_ctx();
        let value = json!({"a": 1, "b": true, "c": null, "d": 2.5, "e": [1, {"f": false}]});
        let (v, m) = substitute(&value, &Map::new(), &ctx);
        assert_eq!(v, value);
        assert_eq!(m, value);
    }

    #[test]
    fn step_fields_are_evaluated_as_at_job_creation() {
        // The original's test_evaluate_step_fields (behaviour §8.2 row 18):
        // `when` is normalized, fields substituted, `tool` dropped.
        let mut raw =
            json!({"tool": "shell", "tool_location": "/", "cmd": "echo #{flow.data.abc}"});
        let when = normalize_when(raw.get("when").and_then(Value::as_str));
        raw["when"] = Value::String(when);
        let ctx = json!({"flow": {"data": {"abc": "def"}}, "prev_ok": true, "always": true,
                         "never": false, "was_any_error": false, "was_no_error": true});
        let (mut fields, _) = substitute(&raw, &Map::new(), &ctx);
        fields.as_object_mut().map(|m| m.remove("tool"));
        assert_eq!(
            fields,
            json!({"tool_location": "/", "cmd": "echo def", "when": "True"})
        );
    }

    #[test]
    fn when_is_normalized_and_decided() {
        assert_eq!(normalize_when(None), "#{was_no_error}");
        assert_eq!(normalize_when(Some("is_ci")), "#{is_ci}");
        assert_eq!(normalize_when(Some("#{always}")), "#{always}");
        assert_eq!(
            normalize_when(Some("job.steps[step.index - 1].result.duration > 3")),
            "#{job.steps[step.index - 1].result.duration > 3}"
        );
        let ctx = step_ctx();
        let a = Map::new();
        let decide = |w: Option<&str>| when_decision(&render(&normalize_when(w), &a, &ctx).0);
        assert_eq!(decide(None), Some(true));
        assert_eq!(decide(Some("was_any_error")), Some(false));
        assert_eq!(decide(Some("never")), Some(false));
        assert_eq!(decide(Some("is_ci")), Some(true));
        assert_eq!(decide(Some("no_such_flag")), None);
        assert_eq!(
            decide(Some("flow.kind")),
            None,
            "'ci' is neither True nor False"
        );
        assert_eq!(when_decision("True"), Some(true));
        assert_eq!(when_decision("False"), Some(false));
        assert_eq!(when_decision("<ERROR>"), None);
        assert_eq!(when_decision("true"), None);
    }
}
