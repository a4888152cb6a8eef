use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::model::secret_kind;

fn eval_ok(code: &str, ctx: &Value) -> Value {
    match evaluate(code, ctx, &Limits::default()) {
        Ok(v) => v,
        Err(e) => panic!("evaluation failed: {e}\n--- code ---\n{code}"),
    }
}

fn eval_err(code: &str, ctx: &Value) -> SchemaError {
    match evaluate(code, ctx, &Limits::default()) {
        Ok(v) => panic!("evaluation should fail but returned {v}"),
        Err(e) => e,
    }
}

fn ctx() -> Value {
    json!({
        "is_ci": true,
        "is_dev": false,
        "branch_name": "master",
        "env": {"MY_VAR": "my value", "OTHER": "x"},
        "args": {},
        "flow": {
            "kind": "ci",
            "data": {
                "systems": ["ubuntu:20.04", "centos:8"],
                "matrix": [{"os": "linux", "n": 2}, {"os": "mac", "n": 1}],
                "count": 3,
                "ratio": 0.5,
                "nothing": null,
                "big": 12345678901i64
            },
            "seq": {"shared": 4, "own": 2}
        },
        "run": null
    })
}

fn validator() -> WorkflowValidator {
    WorkflowValidator::builtin().expect("embedded workflow schema compiles")
}

// ---------------------------------------------------------------- evaluation

#[test]
fn default_stage_code_is_the_originals_and_evaluates() {
    // Transcript entry 33, `schema_code` as the server stored it.
    let stored = "\"def stage(ctx):\\n    return {\\n        \\\"parent\\\": \\\"root\\\",\\n        \\\"triggers\\\": {\\n            \\\"parent\\\": True,\\n        },\\n        \\\"parameters\\\": [],\\n        \\\"configs\\\": [],\\n        \\\"jobs\\\": [{\\n            \\\"name\\\": \\\"hello world\\\",\\n            \\\"steps\\\": [{\\n                \\\"tool\\\": \\\"shell\\\",\\n                \\\"cmd\\\": \\\"echo 'hello world'\\\"\\n            }],\\n            \\\"environments\\\": [{\\n                \\\"system\\\": \\\"any\\\",\\n                \\\"agents_group\\\": \\\"all\\\",\\n                \\\"config\\\": \\\"default\\\"\\n            }]\\n        }]\\n    }\"";
    let original: String = serde_json::from_str(stored).unwrap();
    assert_eq!(DEFAULT_STAGE_CODE, original);
    let schema = eval_ok(DEFAULT_STAGE_CODE, &json!({}));
    assert_eq!(
        schema,
        json!({
            "parent": "root",
            "triggers": {"parent": true},
            "parameters": [],
            "configs": [],
            "jobs": [{
                "name": "hello world",
                "steps": [{"tool": "shell", "cmd": "echo 'hello world'"}],
                "environments": [{"system": "any", "agents_group": "all", "config": "default"}]
            }]
        })
    );
}

#[test]
fn python_style_code_runs() {
    let code = r#"
PREFIX = "kk"
SYSTEMS = ["ubuntu:20.04", "centos:8"]

def helper(name, n = 1):
    """A docstring."""
    return "%s-%d" % (name, n)

def steps_for(system):
    out = []
    for i in range(3):
        if i % 2 == 0:
            out.append({"tool": "shell", "cmd": "echo %s %d" % (system, i)})
        else:
            out.append({"tool": "shell", "cmd": f"echo {system} {i}"})
    return out

def stage(ctx):
    script = """
set -e
echo 'multi'
"""
    jobs = [{"name": helper(PREFIX, i), "steps": steps_for(s)} for i, s in enumerate(SYSTEMS)]
    return {
        "parent": "root" if ctx.is_ci else "other",
        "jobs": jobs,
        "script": script,
        "values": [1, -2, 2.5, 1.0, None, True, False, (1, "two")],
        "cond": "many" if len(jobs) > 1 else "one",
        "squares": {str(k): k * k for k in range(3) if k != 1},
        "joined": ", ".join([s.upper() for s in SYSTEMS]),
        "formatted": "{} and {}".format("a", "b"),
        "sorted": sorted(["b", "c", "a"]),
    }
"#;
    let schema = eval_ok(code, &ctx());
    let expected = json!({
        "parent": "root",
        "jobs": [
            {"name": "kk-0", "steps": [
                {"tool": "shell", "cmd": "echo ubuntu:20.04 0"},
                {"tool": "shell", "cmd": "echo ubuntu:20.04 1"},
                {"tool": "shell", "cmd": "echo ubuntu:20.04 2"}]},
            {"name": "kk-1", "steps": [
                {"tool": "shell", "cmd": "echo centos:8 0"},
                {"tool": "shell", "cmd": "echo centos:8 1"},
                {"tool": "shell", "cmd": "echo centos:8 2"}]}
        ],
        "script": "\nset -e\necho 'multi'\n",
        "values": [1, -2, 2.5, 1.0, null, true, false, [1, "two"]],
        "cond": "many",
        "squares": {"0": 0, "2": 4},
        "joined": "UBUNTU:20.04, CENTOS:8",
        "formatted": "a and b",
        "sorted": ["a", "b", "c"]
    });
    assert_eq!(schema, expected);
    // Keys keep the order of the source, as serde_json's preserve_order does.
    assert_eq!(
        serde_json::to_string(&schema).unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
}

#[test]
fn result_key_order_follows_the_source() {
    let schema = eval_ok(
        "def stage(ctx):\n    return {\"zeta\": 1, \"alpha\": 2, \"mid\": {\"b\": 1, \"a\": 2}}\n",
        &json!({}),
    );
    assert_eq!(
        serde_json::to_string(&schema).unwrap(),
        r#"{"zeta":1,"alpha":2,"mid":{"b":1,"a":2}}"#
    );
}

#[test]
fn ctx_reads_like_an_addict_dict() {
    let code = r#"
def stage(ctx):
    data = ctx.flow.data
    return {
        "is_ci": ctx.is_ci,
        "by_index": ctx["branch_name"],
        "env": ctx.env.MY_VAR,
        "env_index": ctx["env"]["OTHER"],
        "systems": [s for s in data.systems],
        "first_os": data.matrix[0].os,
        "tests": ctx.flow.data.tests or ["scope-default"],
        "deep_missing": bool(ctx.flow.data.a.b.c),
        "missing_len": len(ctx.flow.data.nope),
        "missing_repr": str(ctx.flow.data.nope),
        "count": data.count + 1,
        "ratio": data.ratio * 2,
        "big": data.big,
        "nothing": data.nothing,
        "nothing_is_none": data.nothing == None,
        "len_env": len(ctx.env),
        "has": "MY_VAR" in ctx.env,
        "has_not": "NOPE" in ctx.env,
        "top_has": "flow" in ctx,
        "keys": [k for k in ctx.env],
        "keys2": ctx.env.keys(),
        "values": ctx.env.values(),
        "items": ctx.env.items(),
        "get": ctx.env.get("MY_VAR"),
        "get_default": ctx.env.get("NOPE", "dflt"),
        "get_none": ctx.env.get("NOPE"),
        "truthy": bool(ctx.env),
        "whole_env": ctx.env,
        "seq": ctx.flow.seq,
        "run_is_none": ctx.run == None,
    }
"#;
    let schema = eval_ok(code, &ctx());
    assert_eq!(
        schema,
        json!({
            "is_ci": true,
            "by_index": "master",
            "env": "my value",
            "env_index": "x",
            "systems": ["ubuntu:20.04", "centos:8"],
            "first_os": "linux",
            "tests": ["scope-default"],
            "deep_missing": false,
            "missing_len": 0,
            "missing_repr": "{}",
            "count": 4,
            "ratio": 1.0,
            "big": 12345678901i64,
            "nothing": null,
            "nothing_is_none": true,
            "len_env": 2,
            "has": true,
            "has_not": false,
            "top_has": true,
            "keys": ["MY_VAR", "OTHER"],
            "keys2": ["MY_VAR", "OTHER"],
            "values": ["my value", "x"],
            "items": [["MY_VAR", "my value"], ["OTHER", "x"]],
            "get": "my value",
            "get_default": "dflt",
            "get_none": null,
            "truthy": true,
            "whole_env": {"MY_VAR": "my value", "OTHER": "x"},
            "seq": {"shared": 4, "own": 2},
            "run_is_none": true
        })
    );
}

#[test]
fn dynamic_schema_uses_flow_data_or_defaults() {
    let code = r#"
def stage(ctx):
    jobs = []
    for ts in (ctx.flow.data.tests or ['scope-default']):
        jobs.append({"name": "tests %s" % ts, "system": ctx.flow.data.systems or "ubuntu:20.04"})
    return {"jobs": jobs}
"#;
    let without = eval_ok(code, &json!({"flow": {"data": {}}}));
    assert_eq!(
        without,
        json!({"jobs": [{"name": "tests scope-default", "system": "ubuntu:20.04"}]})
    );
    let with = eval_ok(
        code,
        &json!({"flow": {"data": {"tests": ["a", "b"], "systems": ["s1"]}}}),
    );
    assert_eq!(
        with,
        json!({"jobs": [
            {"name": "tests a", "system": ["s1"]},
            {"name": "tests b", "system": ["s1"]}
        ]})
    );
}

#[test]
fn missing_top_level_ctx_key_is_an_error_naming_it() {
    let e = eval_err(
        "def stage(ctx):\n    return {\"x\": ctx.flow.data}\n",
        &json!({"is_ci": true}),
    );
    assert_eq!(e.kind, SchemaErrorKind::Runtime);
    assert_eq!(e.message, "missing field flow");
    assert_eq!((e.line, e.column), (Some(2), Some(18)));
    assert_eq!(
        e.to_string(),
        "compilation error: missing field flow at line 2, column 18"
    );

    let e = eval_err(
        "def stage(ctx):\n    return {\"x\": ctx[\"flow\"]}\n",
        &json!({}),
    );
    assert_eq!(e.message, "missing field flow");

    let e = eval_err(
        "def stage(ctx):\n    return {\"x\": ctx.is_cj}\n",
        &json!({"is_ci": true}),
    );
    assert!(
        e.message.starts_with("missing field is_cj"),
        "{}",
        e.message
    );
}

#[test]
fn attribute_and_index_reads_work_on_every_kind_of_value() {
    let code = r#"
S = struct(a = 1, b = struct(c = "deep"))

def stage(ctx):
    user = {"k": "v"}
    items = ctx.flow.data.systems
    items.append("added")
    pairs = [(k, v) for k, v in ctx.flow.seq.items()]
    return {
        "fstring": f"{ctx.branch_name}-{ctx.flow.seq.own}-{ctx.env['MY_VAR']}",
        "fstring2": f'{ctx.env["OTHER"]}',
        "paren": (ctx.flow).kind,
        "paren2": ((ctx.flow.data)).count,
        "comment": ctx.flow # a comment
            .kind,
        "struct": S.b.c,
        "struct_a": S.a,
        "method": "abc".upper(),
        "bound": [1, 2].index(2),
        "user": user["k"],
        "list_index": ctx.flow.data.systems[1],
        "nested_index": ctx["flow"]["data"]["matrix"][1]["os"],
        "index_missing": bool(ctx.flow.data["nope"]["nope"]),
        "chained_get": ctx.flow.get("data").get("count"),
        "appended": items,
        "original_list": ctx.flow.data.systems,
        "pairs": pairs,
        "slice": ctx.flow.data.systems[:1],
        "str_index": ctx.branch_name[0],
    }
"#;
    let schema = eval_ok(code, &ctx());
    assert_eq!(
        schema,
        json!({
            "fstring": "master-2-my value",
            "fstring2": "x",
            "paren": "ci",
            "paren2": 3,
            "comment": "ci",
            "struct": "deep",
            "struct_a": 1,
            "method": "ABC",
            "bound": 1,
            "user": "v",
            "list_index": "centos:8",
            "nested_index": "mac",
            "index_missing": false,
            "chained_get": 3,
            "appended": ["ubuntu:20.04", "centos:8", "added"],
            "original_list": ["ubuntu:20.04", "centos:8"],
            "pairs": [["shared", 4], ["own", 2]],
            "slice": ["ubuntu:20.04"],
            "str_index": "m"
        })
    );
}

#[test]
fn dicts_of_the_code_itself_keep_plain_semantics() {
    // Only ctx dicts are addict-like; the code's own dicts fail as in Python.
    let e = eval_err(
        "def stage(ctx):\n    d = {\"a\": 1}\n    return {\"x\": d[\"b\"]}\n",
        &json!({}),
    );
    assert_eq!(e.kind, SchemaErrorKind::Runtime);
    assert!(e.message.contains("not found"), "{}", e.message);
    assert_eq!((e.line, e.column), (Some(3), Some(18)));
    let e = eval_err(
        "def stage(ctx):\n    d = {\"a\": 1}\n    return {\"x\": d.a}\n",
        &json!({}),
    );
    assert_eq!(e.message, "Object of type `dict` has no attribute `a`");
    let e = eval_err(
        "def stage(ctx):\n    return {\"x\": \"s\".nope}\n",
        &json!({}),
    );
    assert_eq!(e.message, "Object of type `string` has no attribute `nope`");
}

#[test]
fn positions_are_those_of_the_users_code_after_rewriting() {
    // Several rewritten reads before the failing one on the same line.
    let code = "def stage(ctx):\n    a = ctx.env.MY_VAR + ctx.env.OTHER; b = ctx.flow.kind + 1\n    return {}\n";
    let e = eval_err(code, &ctx());
    assert_eq!((e.line, e.column), (Some(2), Some(45)), "{e}");
    let code =
        "def stage(ctx):\n    x = [ctx.flow.kind, ctx.env.MY_VAR]\n    return {\"a\": ctx.nope}\n";
    let e = eval_err(code, &ctx());
    assert_eq!(e.message, "missing field nope");
    assert_eq!((e.line, e.column), (Some(3), Some(18)), "{e}");
    let e = eval_err(
        "def stage(ctx):\n    return {\"a\": ctx[\"zzz\"]}\n",
        &ctx(),
    );
    assert_eq!(e.message, "missing field zzz");
    assert_eq!((e.line, e.column), (Some(2), Some(18)), "{e}");
}

#[test]
fn tabs_are_accepted_where_python_accepts_them() {
    // Tab indentation (8 columns, as Python counts), tabs inside brackets,
    // and literal tabs inside strings, which must stay tabs.
    let code = "def stage(ctx):\n\tx = {\n\t\t\"a\":\t1,\n            \"t\": \"a\tb\",\n\t\t\"u\": \"\"\"x\n\ty\"\"\"}\n\tif True:\n\t    x[\"b\"] = 2\n\treturn x\n";
    let schema = eval_ok(code, &json!({}));
    assert_eq!(schema, json!({"a": 1, "t": "a\tb", "u": "x\n\ty", "b": 2}));
    // Positions are still those of the user's text.
    let e = eval_err("def stage(ctx):\n\treturn {\"a\": ctx.nope}\n", &json!({}));
    assert_eq!(e.message, "missing field nope");
    assert_eq!((e.line, e.column), (Some(2), Some(15)), "{e}");
    let e = eval_err("def stage(ctx):\n\treturn {\"a\":\t1,,}\n", &json!({}));
    assert_eq!(e.kind, SchemaErrorKind::Syntax);
    assert_eq!((e.line, e.column), (Some(2), Some(17)), "{e}");
}

#[test]
fn python_syntax_starlark_rejects_is_reported_with_its_position() {
    for (code, line) in [
        ("def stage(ctx):\n    while True:\n        pass\n", 2),
        ("import os\ndef stage(ctx):\n    return {}\n", 1),
        ("def stage(ctx):\n    return {\"a\": 2 ** 8}\n", 2),
        (
            "def stage(ctx):\n    if ctx.run is None:\n        pass\n    return {}\n",
            2,
        ),
        ("class A:\n    pass\n", 1),
        (
            "def stage(ctx):\n    try:\n        pass\n    except:\n        pass\n",
            2,
        ),
    ] {
        let e = eval_err(code, &json!({}));
        assert_eq!(e.kind, SchemaErrorKind::Syntax, "{code}: {e}");
        assert_eq!(e.line, Some(line), "{code}: {e}");
    }
    // Accepted by the parser but not by the runtime.
    for (code, line) in [
        ("X = 1\ndef stage(ctx):\n    global X\n    return {}\n", 3),
        ("def stage(ctx):\n    return {\"a\": \"%5.2f\" % 1.5}\n", 2),
    ] {
        let e = eval_err(code, &json!({}));
        assert_ne!(e.kind, SchemaErrorKind::Result, "{code}: {e}");
        assert_eq!(e.line, Some(line), "{code}: {e}");
    }
}

#[test]
fn syntax_errors_report_line_and_column() {
    let e = eval_err("this is not python", &json!({}));
    assert_eq!(e.kind, SchemaErrorKind::Syntax);
    assert_eq!(e.line, Some(1));
    assert!(e.column.is_some());
    assert!(e.to_string().starts_with("compilation error: "), "{e}");
    assert!(e.to_string().contains("at line 1, column"), "{e}");

    let code = "def stage(ctx):\n    return {\n        \"a\": 1,,\n    }\n";
    let e = eval_err(code, &json!({}));
    assert_eq!(e.kind, SchemaErrorKind::Syntax);
    assert_eq!((e.line, e.column), (Some(3), Some(16)));
}

#[test]
fn runtime_errors_report_line_and_column() {
    let code = "def stage(ctx):\n    x = 1\n    return {\"a\": x + \"s\"}\n";
    let e = eval_err(code, &json!({}));
    assert_eq!(e.kind, SchemaErrorKind::Runtime);
    assert_eq!((e.line, e.column), (Some(3), Some(18)));
    assert!(e.message.contains("+"), "{}", e.message);

    let code = "def helper():\n    return undefined_name\n\ndef stage(ctx):\n    return {\"a\": helper()}\n";
    let e = eval_err(code, &json!({}));
    assert!(e.message.contains("undefined_name"), "{}", e.message);
    assert_eq!(e.line, Some(2));

    let e = eval_err("def stage(ctx):\n    fail(\"boom\")\n", &json!({}));
    assert_eq!(e.message, "fail: boom");
    assert_eq!(e.line, Some(2));
}

#[test]
fn bad_results_have_clear_messages() {
    let e = eval_err("x = 1\n", &json!({}));
    assert_eq!(e.kind, SchemaErrorKind::Result);
    assert!(e.message.contains("stage(ctx)"), "{}", e.message);

    let e = eval_err("stage = 5\n", &json!({}));
    assert_eq!(e.kind, SchemaErrorKind::Result);
    assert!(e.message.contains("must be a function"), "{}", e.message);

    let e = eval_err("def stage(ctx):\n    return [1]\n", &json!({}));
    assert_eq!(
        e.message,
        "stage(ctx) must return a dict, but it returned a value of type `list`"
    );

    let e = eval_err(
        "def stage(ctx):\n    return {\"jobs\": [{\"f\": stage}]}\n",
        &json!({}),
    );
    assert_eq!(e.kind, SchemaErrorKind::Result);
    assert!(
        e.message
            .contains("type `function` at stage(ctx)['jobs'][0]['f']"),
        "{}",
        e.message
    );

    let e = eval_err(
        "def stage(ctx):\n    x = {}\n    for i in range(500):\n        x = {\"a\": x}\n    return x\n",
        &json!({}),
    );
    assert!(e.message.contains("nests deeper"), "{}", e.message);

    let e = eval_err(
        "def stage(ctx):\n    return {\"f\": float(\"nan\")}\n",
        &json!({}),
    );
    assert!(
        e.message.contains("cannot be represented in JSON"),
        "{}",
        e.message
    );

    let e = eval_err(
        "def stage(ctx):\n    return {\"i\": 123456789012345678901234567890}\n",
        &json!({}),
    );
    assert!(e.message.contains("too large"), "{}", e.message);
}

#[test]
fn print_is_silently_accepted_and_keys_convert_like_json_dumps() {
    let schema = eval_ok(
        "def stage(ctx):\n    print(\"hello\")\n    return {1: \"a\", True: \"b\", None: \"c\", 2.5: \"d\"}\n",
        &json!({}),
    );
    assert_eq!(
        schema,
        json!({"1": "a", "true": "b", "null": "c", "2.5": "d"})
    );
}

// -------------------------------------------------------------------- limits

fn quick_limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[test]
fn a_huge_range_fails_fast() {
    let start = Instant::now();
    let e = evaluate(
        "def stage(ctx):\n    return {\"x\": [x for x in range(1000000000000)]}\n",
        &json!({}),
        &quick_limits(),
    )
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert!(e.to_string().starts_with("compilation error: "), "{e}");

    // The largest range Starlark accepts, which would run for minutes.
    let start = Instant::now();
    let e = evaluate(
        "def stage(ctx):\n    return {\"x\": [x for x in range(2147483647)]}\n",
        &json!({}),
        &quick_limits(),
    )
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        matches!(e.kind, SchemaErrorKind::Timeout | SchemaErrorKind::Memory),
        "{e}"
    );
}

#[test]
fn infinite_recursion_fails_fast() {
    let start = Instant::now();
    let e = evaluate(
        "def f(n):\n    return f(n + 1)\n\ndef stage(ctx):\n    return {\"x\": f(0)}\n",
        &json!({}),
        &quick_limits(),
    )
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(e.kind, SchemaErrorKind::CallStack, "{e}");
    assert!(e.message.contains("recursion"), "{e}");
}

#[test]
fn a_memory_hog_fails_fast() {
    let limits = Limits {
        timeout: Duration::from_secs(5),
        max_heap_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let start = Instant::now();
    let e = evaluate(
        "def stage(ctx):\n    x = []\n    for i in range(100000000):\n        x.append(\"abc\" * 1000)\n    return {\"x\": x}\n",
        &json!({}),
        &limits,
    )
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(e.kind, SchemaErrorKind::Memory, "{e}");
    assert_eq!(
        e.to_string(),
        "compilation error: the schema code used more than the memory limit of 16 MiB"
    );
}

#[test]
fn one_step_huge_strings_and_lists_are_refused_before_they_are_built() {
    for code in [
        "def stage(ctx):\n    return {\"x\": [0] * 2000000000}\n",
        "def stage(ctx):\n    return {\"x\": 2000000000 * \"abc\"}\n",
        "def stage(ctx):\n    s = \"x\" * 1000000\n    for i in range(40):\n        s = s + s\n    return {\"x\": s}\n",
        "def stage(ctx):\n    l = [1] * 100000\n    for i in range(40):\n        l = l + l\n    return {\"x\": len(l)}\n",
    ] {
        let start = Instant::now();
        let e = evaluate(code, &json!({}), &Limits::default()).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
        assert_eq!(e.kind, SchemaErrorKind::Memory, "{code}: {e}");
        assert_eq!(
            e.to_string(),
            "compilation error: the schema code used more than the memory limit of 256 MiB"
        );
    }
}

#[test]
fn guarded_operators_keep_their_meaning() {
    let code = r#"
def stage(ctx):
    return {
        "a": "ab" * 3, "b": 3 * "ab", "c": [1] * 2, "d": 1 + 2, "e": "a" + "b",
        "f": [1] + [2], "g": (1,) + (2,), "h": 2 * 3.5, "i": -1 * "x", "j": 2 * 3,
        "k": ctx.env.MY_VAR + "!",
    }
"#;
    assert_eq!(
        eval_ok(code, &ctx()),
        json!({"a": "ababab", "b": "ababab", "c": [1, 1], "d": 3, "e": "ab", "f": [1, 2],
               "g": [1, 2], "h": 7.0, "i": "", "j": 6, "k": "my value!"})
    );
    let e = eval_err(
        "def stage(ctx):\n    return {\"x\": 1 + \"a\"}\n",
        &json!({}),
    );
    assert_eq!(e.kind, SchemaErrorKind::Runtime);
    assert!(e.message.contains("`+`"), "{}", e.message);
    assert_eq!((e.line, e.column), (Some(2), Some(18)));
}

#[test]
fn the_deadline_stops_a_busy_loop() {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let start = Instant::now();
    let e = evaluate(
        "def stage(ctx):\n    n = 0\n    for i in range(2000000000):\n        n += i\n    return {\"n\": n}\n",
        &json!({}),
        &limits,
    )
    .unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(took >= Duration::from_millis(200), "took {took:?}");
    assert_eq!(e.kind, SchemaErrorKind::Timeout, "{e}");
    assert_eq!(
        e.to_string(),
        "compilation error: the schema code ran longer than the time limit of 200 ms"
    );

    // A busy loop at the top level is stopped too.
    let e = evaluate(
        "n = 0\nfor i in range(2000000000):\n    n += i\ndef stage(ctx):\n    return {}\n",
        &json!({}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::Timeout, "{e}");
}

// ----------------------------------------------------------- deep nesting
// Issue 18: a kilobyte of code or a value nested deeply enough overflowed
// the stack, which aborts the whole server. These run in this process
// (lib tests have no worker program): the guards hold here too.

#[test]
fn deeply_nested_code_is_refused_before_it_is_parsed() {
    let attacks = [
        format!(
            "def stage(ctx):\n    return {{'a': {}1}}\n",
            "-".repeat(1000)
        ),
        format!(
            "def stage(ctx):\n    return {{'a': {}1{}}}\n",
            "[".repeat(700),
            "]".repeat(700)
        ),
        format!(
            "def stage(ctx):\n    return {{'a': {}1{}}}\n",
            "(".repeat(1000),
            ")".repeat(1000)
        ),
        format!(
            "def stage(ctx):\n    return {{'a': {}1}}\n",
            "lambda: ".repeat(1000)
        ),
        format!(
            "def stage(ctx):\n    return {{'a': 1{}}}\n",
            " + 1".repeat(1000)
        ),
    ];
    for code in &attacks {
        let e = eval_err(code, &json!({}));
        assert_eq!(e.kind, SchemaErrorKind::Syntax, "{e}");
        assert!(
            e.to_string().starts_with(
                "compilation error: the code nests too deeply (more than 500 levels of brackets, operators and blocks) at line 2"
            ),
            "{e}"
        );
    }
    let mut elifs = "def stage(ctx):\n    x = 0\n    if ctx.is_ci:\n        x = 1\n".to_string();
    for _ in 0..600 {
        elifs.push_str("    elif ctx.is_dev:\n        x = 2\n");
    }
    elifs.push_str("    return {'x': x}\n");
    let e = eval_err(&elifs, &ctx());
    assert!(e.message.contains("nests too deeply"), "{e}");

    // Tabs are turned into spaces first; the position is still the user's.
    let e = eval_err(
        &format!("def stage(ctx):\n\treturn {{'a': {}1}}\n", "-".repeat(1000)),
        &json!({}),
    );
    assert_eq!((e.line, e.column), (Some(2), Some(9)), "{e}");
}

#[test]
fn nesting_a_person_writes_is_accepted() {
    let code = format!(
        "def stage(ctx):\n    x = {}1{}\n    s = 'a'{}\n    return {{'x': x, 's': s, 'n': {}1}}\n",
        "[".repeat(60),
        "]".repeat(60),
        " + 'b'".repeat(150),
        "-".repeat(100)
    );
    let schema = eval_ok(&code, &json!({}));
    assert_eq!(schema["n"], json!(1));
    assert_eq!(schema["s"].as_str().map(str::len), Some(151));
}

#[test]
fn values_nested_too_deeply_to_print_are_an_error() {
    for print in [
        "str(l)",
        "repr(l)",
        "json.encode(l)",
        "'%s' % (l,)",
        "'%r' % l",
        "f'{l}'",
        "f'{l!r}'",
        "'{}'.format(l)",
        "'{x}'.format(x=l)",
        "print(l)",
        "print('a', *[l])",
        "fail(l)",
    ] {
        let code = format!(
            "def stage(ctx):\n    l = []\n    for i in range(100000):\n        l = [l]\n    x = {print}\n    return {{}}\n"
        );
        let e = eval_err(&code, &json!({}));
        assert_eq!(e.kind, SchemaErrorKind::Runtime, "{print}: {e}");
        assert!(
            e.message.starts_with("a value of type `")
                && e.message
                    .ends_with("` nests too deeply to be printed (more than 100 levels)"),
            "{print}: {e}"
        );
        assert_eq!(e.line, Some(5), "{print}: {e}");
    }
    // A value shared many times over is measured once: no exponential walk.
    let start = Instant::now();
    let e = eval_err(
        "def stage(ctx):\n    l = [1]\n    for i in range(300):\n        l = [l, l]\n    return {'x': str(l)}\n",
        &json!({}),
    );
    assert!(e.message.contains("nests too deeply"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn printing_keeps_its_meaning() {
    let code = r#"
def str2(x):
    return "<" + str(x) + ">"

def stage(ctx):
    l = [1]
    l.append(l)
    d = {"k": (1, [2])}
    print("printed", l)
    return {
        "a": str(l), "b": repr("x"), "c": "%s-%d" % ("a", 5), "d": "%s" % [1, 2],
        "e": f"{ctx.env.MY_VAR}/{d['k']}", "f": "{}+{x}".format(1, x=[2]),
        "g": json.encode(d), "h": str2(3), "i": 7 % 4, "j": str((d)["k"]),
        "k": "%s" % d,
    }
"#;
    assert_eq!(
        eval_ok(code, &ctx()),
        json!({"a": "[1, [...]]", "b": "\"x\"", "c": "a-5", "d": "[1, 2]",
               "e": "my value/(1, [2])", "f": "1+[2]", "g": "{\"k\":[1,[2]]}",
               "h": "<3>", "i": 3, "j": "(1, [2])", "k": "{\"k\": (1, [2])}"})
    );
    let e = eval_err("def stage(ctx):\n    fail(\"boom\", 1)\n", &json!({}));
    assert_eq!(e.message, "fail: boom 1");
    // A user's own `str` is still the one called.
    let schema = eval_ok(
        "def str(x):\n    return 'mine'\ndef stage(ctx):\n    return {'s': str(1)}\n",
        &json!({}),
    );
    assert_eq!(schema, json!({"s": "mine"}));
}

#[test]
fn long_error_messages_are_cut() {
    let e = eval_err(
        "def stage(ctx):\n    l = []\n    for i in range(5000):\n        l = [l]\n    d = {1: l}\n    return d.pop(2)\n",
        &json!({}),
    );
    assert!(
        e.message.chars().count() <= 1001,
        "{} chars",
        e.message.len()
    );
    assert!(e.message.ends_with('…'), "{}", e.message);
}

#[test]
fn deep_ctx_and_huge_results_are_refused() {
    let mut deep = json!(1);
    for _ in 0..150 {
        deep = json!({ "a": deep });
    }
    let e = eval_err("def stage(ctx):\n    return {}\n", &json!({ "args": deep }));
    assert!(
        e.message.contains("ctx nests deeper than 100 levels"),
        "{e}"
    );

    let e = eval_err(
        "def stage(ctx):\n    l = ['x' * 1000] * 1000\n    return {'x': [l] * 10000}\n",
        &json!({}),
    );
    assert_eq!(e.kind, SchemaErrorKind::Result, "{e}");
    assert!(
        e.message.starts_with(
            "the value returned by stage(ctx) takes more than 32 MiB as JSON (at stage(ctx)['x']["
        ),
        "{e}"
    );

    // A huge integer is refused without printing it (which would take minutes).
    let start = Instant::now();
    let e = eval_err(
        "def stage(ctx):\n    x = (1 << 100000) - 1\n    for i in range(3):\n        x = x * x\n    return {'x': {'y': x}}\n",
        &json!({}),
    );
    assert_eq!(
        e.message,
        "the integer at stage(ctx)['x']['y'] is too large for JSON"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------- validation

fn one_job(steps: Value) -> Value {
    let mut schema = json!({
        "parent": "root",
        "triggers": {"parent": true},
        "parameters": [],
        "configs": [],
        "jobs": [{
            "name": "pkg",
            "steps": [],
            "environments": [{"system": "any", "agents_group": "all", "config": "default"}]
        }]
    });
    schema["jobs"][0]["steps"] = steps;
    schema
}

#[test]
fn validation_accepts_good_schemas() {
    let v = validator();
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "shell", "cmd": "ls -al"}]))),
        Ok(())
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "shell@1", "cmd": "ls -al"}]))),
        Ok(())
    );
    let advanced = json!({
        "parent": "root",
        "triggers": {"parent": true},
        "jobs": [{
            "name": "pkg",
            "steps": [
                {"tool": "shell", "cmd": "ls -al", "when": "always", "attempts": 3},
                {"tool": "local_tool", "tool_location": "/x", "tool_entry": "main", "pkgs": "vim"}
            ],
            "environments": [
                {"system": "any", "agents_group": "all", "config": "default"},
                {"executor": "docker", "system": "krakenci/ubuntu:20.04", "agents_group": "all"},
                {"executor": "lxd", "system": ["ubuntu/focal/amd64", "x"], "agents_group": "all"}
            ]
        }]
    });
    assert_eq!(v.validate(&advanced), Ok(()));
    // jobs are optional at this point (defaults come later).
    assert_eq!(
        v.validate(&json!({"parent": "root", "triggers": {}})),
        Ok(())
    );
    assert!(v.has_tool("git") && v.has_tool("git@1") && !v.has_tool("nope"));
}

#[test]
fn validation_messages_for_steps() {
    let v = validator();
    assert_eq!(
        v.validate(&one_job(json!([{"cmd": "ls -al"}]))),
        Err("Missing 'tool' field in the 1st job pkg, in the 1st step".to_string())
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "abc", "cmd": "ls -al"}]))),
        Err("Unknown tool 'abc' in the 1st job pkg, in the 1st step".to_string())
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "shell", "abc": "ls -al"}]))),
        Err(
            "Additional properties are not allowed ('abc' was unexpected) \
             in the 1st job pkg, in the 1st step"
                .to_string()
        )
    );
    assert_eq!(
        v.validate(&one_job(
            json!([{"tool": "shell", "cmd": "x"}, {"tool": "git"}])
        )),
        Err("'checkout' is a required property in the 1st job pkg, in the 2nd step".to_string())
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "shell", "timeout": "abc"}]))),
        Err(
            "'abc' is not of type 'integer' at /timeout in the 1st job pkg, in the 1st step"
                .to_string()
        )
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "shell", "timeout": 10}]))),
        Err(
            "10 is less than the minimum of 30 at /timeout in the 1st job pkg, in the 1st step"
                .to_string()
        )
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "cache", "action": "drop"}]))),
        Err("'drop' is not one of ['save', 'restore'] at /action in the 1st job pkg, in the 1st step"
            .to_string())
    );
}

#[test]
fn validation_message_ordinals() {
    let v = validator();
    let mut jobs = Vec::new();
    for j in 1..=12 {
        let mut steps: Vec<Value> = (0..23)
            .map(|_| json!({"tool": "shell", "cmd": "x"}))
            .collect();
        if j == 12 {
            steps[22] = json!({"cmd": "x"});
        }
        jobs.push(json!({"name": format!("j{j}"), "steps": steps, "environments": []}));
    }
    let schema = json!({"parent": "root", "triggers": {"parent": true}, "jobs": jobs});
    assert_eq!(
        v.validate(&schema),
        Err("Missing 'tool' field in the 12th job j12, in the 23rd step".to_string())
    );
    let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112, 113, 1000]
        .iter()
        .map(|n| ordinal(*n))
        .collect();
    assert_eq!(
        got,
        [
            "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st",
            "111th", "112th", "113th", "1000th"
        ]
    );
}

#[test]
fn validation_messages_for_the_top_level() {
    let v = validator();
    // Transcript entry 34: the first line of the original's message.
    assert_eq!(
        v.validate(&json!({"jobs": 1})),
        Err("'parent' is a required property (and 2 more problems)".to_string())
    );
    assert_eq!(
        v.validate(&json!({"parent": "root"})),
        Err("'triggers' is a required property".to_string())
    );
    assert_eq!(
        v.validate(&json!({"parent": "root", "triggers": {}, "bogus": 1})),
        Err("Additional properties are not allowed ('bogus' was unexpected)".to_string())
    );
    let mut s = one_job(json!([{"tool": "shell", "cmd": "x"}]));
    s["jobs"][0]["timeout"] = json!(10);
    assert_eq!(
        v.validate(&s),
        Err("10 is less than the minimum of 30 at /jobs/0/timeout".to_string())
    );
    let mut s = one_job(json!([{"tool": "shell", "cmd": "x"}]));
    s["jobs"][0]["environments"][0]["executor"] = json!("vm");
    assert_eq!(
        v.validate(&s),
        Err(
            "'vm' is not one of ['local', 'docker', 'lxd'] at /jobs/0/environments/0/executor"
                .to_string()
        )
    );
    let mut s = one_job(json!([{"tool": "shell", "cmd": "x"}]));
    s["jobs"][0]["steps"] = json!(["not an object"]);
    assert_eq!(
        v.validate(&s),
        Err("'not an object' is not of type 'object' at /jobs/0/steps/0".to_string())
    );
    assert_eq!(
        v.validate(&json!([1])),
        Err("[1] is not of type 'object'".to_string())
    );
}

#[test]
fn a_validator_from_a_custom_tool_list() {
    let mut schema: Value = serde_json::from_str(crate::schema::WORKFLOW_SCHEMA).unwrap();
    let fields = json!({"properties": {"pkgs": {"type": "string"}}, "required": ["pkgs"]});
    schema["properties"]["jobs"]["items"]["properties"]["steps"]["items"]["oneOf"] = json!([
        crate::schema::tool_step_schema("pkg", "A package.", &fields),
        crate::schema::tool_step_schema("pkg@3", "A package.", &fields),
    ]);
    let v = WorkflowValidator::new(&schema).unwrap();
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "pkg@3", "pkgs": "vim"}]))),
        Ok(())
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "shell", "cmd": "x"}]))),
        Err("Unknown tool 'shell' in the 1st job pkg, in the 1st step".to_string())
    );
    assert_eq!(
        v.validate(&one_job(json!([{"tool": "pkg"}]))),
        Err("'pkgs' is a required property in the 1st job pkg, in the 1st step".to_string())
    );
}

#[test]
fn validating_a_typical_stage_is_fast() {
    let v = validator();
    let s =
        one_job(json!([{"tool": "git", "checkout": "https://x"}, {"tool": "shell", "cmd": "x"}]));
    for _ in 0..50 {
        v.validate(&s).unwrap();
    }
    let start = Instant::now();
    for _ in 0..200 {
        v.validate(&s).unwrap();
    }
    let per_call = start.elapsed() / 200;
    // Well under a millisecond even in a debug build.
    assert!(
        per_call < Duration::from_millis(1),
        "{per_call:?} per validation"
    );
}

// ---------------------------------------------------------- defaults, checks

#[test]
fn defaults_fill_what_is_missing() {
    let mut s = json!({});
    apply_defaults(&mut s);
    assert_eq!(
        s,
        json!({"jobs": [], "configs": [], "parent": "root", "triggers": {"parent": true},
               "parameters": []})
    );
    let mut s = json!({"parent": "", "triggers": {}});
    apply_defaults(&mut s);
    assert_eq!(s["parent"], "root");
    assert_eq!(s["triggers"], json!({"parent": true}));
    let kept = json!({"parent": "build", "triggers": {"manual": true}, "jobs": [{"name": "a"}],
                      "configs": [{"a": "b"}], "parameters": [{"name": "P"}]});
    let mut s = kept.clone();
    apply_defaults(&mut s);
    assert_eq!(s, kept);
}

fn env() -> SchemaEnv {
    SchemaEnv {
        stage_name: "tests".into(),
        other_stages: vec!["build".into(), "tests".into()],
        secrets: HashMap::from([
            ("token".to_string(), secret_kind::SIMPLE),
            ("deploy-key".to_string(), secret_kind::SSH_KEY),
        ]),
        groups: HashSet::from(["docker".to_string()]),
    }
}

fn stage_with(parent: &str, jobs: Value) -> Value {
    let mut schema = json!({"parent": parent, "triggers": {"parent": true}, "jobs": [],
                            "configs": [], "parameters": []});
    schema["jobs"] = jobs;
    schema
}

#[test]
fn stage_checks_and_their_messages() {
    let env = env();
    let job = |name: &str, step: Value, group: &str| {
        json!({"name": name, "steps": [step],
               "environments": [{"system": "any", "agents_group": group}]})
    };
    let shell = json!({"tool": "shell", "cmd": "x"});
    let ok = stage_with(
        "build",
        json!([
            job("a", shell.clone(), "all"),
            job("b", shell.clone(), "docker")
        ]),
    );
    assert_eq!(check_stage(&ok, &env), Ok(()));
    assert_eq!(check_stage(&stage_with("root", json!([])), &env), Ok(()));

    assert_eq!(
        check_stage(&stage_with("deploy", json!([])), &env),
        Err("Cannot find parent stage deploy".to_string())
    );
    assert_eq!(
        check_stage(&stage_with("tests", json!([])), &env),
        Err("Cannot find parent stage tests".to_string()),
        "a stage cannot be its own parent"
    );
    assert_eq!(
        check_stage(
            &stage_with(
                "root",
                json!([
                    job("a", shell.clone(), "all"),
                    job("a", shell.clone(), "all")
                ])
            ),
            &env
        ),
        Err("Two jobs with the same name 'a'".to_string())
    );
    let git = |field: &str, secret: &str| json!({"tool": "git", "checkout": "u", field: secret});
    assert_eq!(
        check_stage(
            &stage_with(
                "root",
                json!([job("a", git("access-token", "token"), "all")])
            ),
            &env
        ),
        Ok(())
    );
    assert_eq!(
        check_stage(
            &stage_with(
                "root",
                json!([job("a", git("ssh-key", "deploy-key"), "all")])
            ),
            &env
        ),
        Ok(())
    );
    assert_eq!(
        check_stage(
            &stage_with(
                "root",
                json!([job("a", git("access-token", "nope"), "all")])
            ),
            &env
        ),
        Err("Secret 'nope' does not exist".to_string())
    );
    assert_eq!(
        check_stage(
            &stage_with(
                "root",
                json!([job("a", git("access-token", "deploy-key"), "all")])
            ),
            &env
        ),
        Err("Type of 'deploy-key' secret should be Simple".to_string())
    );
    assert_eq!(
        check_stage(
            &stage_with("root", json!([job("a", git("ssh-key", "token"), "all")])),
            &env
        ),
        Err("Type of 'token' secret should be SSH Username & Key".to_string())
    );
    assert_eq!(
        check_stage(
            &stage_with("root", json!([job("a", shell.clone(), "gpu")])),
            &env
        ),
        Err("Cannot find gpu agents group".to_string())
    );
    assert_eq!(
        check_stage(
            &stage_with("root", json!([job("a", shell, "#{args.GROUP}")])),
            &env
        ),
        Ok(()),
        "templated groups are not checked"
    );
}

#[test]
fn prepare_stage_schema_follows_the_originals_order() {
    let v = validator();
    let env = env();
    let limits = Limits::default();
    let (code, schema) =
        prepare_stage_schema("", &json!({}), &limits, &v, Pipeline::Store(&env)).unwrap();
    assert_eq!(code, DEFAULT_STAGE_CODE);
    assert_eq!(schema["jobs"][0]["name"], "hello world");
    assert_eq!(schema["triggers"], json!({"parent": true}));

    // Validation runs before the defaults, so `parent` must be there ...
    assert_eq!(
        prepare_stage_schema(
            "def stage(ctx):\n    return {\"jobs\": []}\n",
            &json!({}),
            &limits,
            &v,
            Pipeline::Store(&env)
        ),
        Err("'parent' is a required property (and 1 more problem)".to_string())
    );
    // ... but may be empty, and the defaults then fill it.
    let (_, schema) = prepare_stage_schema(
        "def stage(ctx):\n    return {\"parent\": \"\", \"triggers\": {}}\n",
        &json!({}),
        &limits,
        &v,
        Pipeline::Store(&env),
    )
    .unwrap();
    assert_eq!(
        schema,
        json!({"parent": "root", "triggers": {"parent": true}, "jobs": [], "configs": [],
               "parameters": []})
    );
    let err = prepare_stage_schema(
        "this is not python",
        &json!({}),
        &limits,
        &v,
        Pipeline::Store(&env),
    )
    .unwrap_err();
    assert!(err.starts_with("compilation error: "), "{err}");
    assert_eq!(
        prepare_stage_schema(
            "def stage(ctx):\n    return {\"parent\": \"nope\", \"triggers\": {\"parent\": True}}\n",
            &json!({}),
            &limits,
            &v,
            Pipeline::Store(&env)
        ),
        Err("Cannot find parent stage nope".to_string())
    );
}

/// `network` (this server's addition) names a docker job's network: a
/// plain name, and on docker jobs only.
#[test]
fn environment_networks_are_names_for_docker_jobs_only() {
    let v = validator();
    let with_env = |e: Value| {
        let mut s = one_job(json!([{"tool": "shell", "cmd": "x"}]));
        s["jobs"][0]["environments"][0] = e;
        s
    };
    let docker_none = with_env(
        json!({"system": "img", "executor": "docker", "agents_group": "all", "network": "none"}),
    );
    assert_eq!(v.validate(&docker_none), Ok(()));
    assert_eq!(check_stage(&docker_none, &env()), Ok(()));
    let bad = with_env(
        json!({"system": "img", "executor": "docker", "agents_group": "all", "network": "--privileged"}),
    );
    let e = v.validate(&bad).unwrap_err();
    assert!(e.contains("/jobs/0/environments/0/network"), "{e}");
    let local = with_env(json!({"system": "any", "agents_group": "all", "network": "none"}));
    assert_eq!(v.validate(&local), Ok(()));
    assert_eq!(
        check_stage(&local, &env()),
        Err(
            "Network none of job 'pkg' applies to docker jobs only (its executor is 'local')"
                .to_string()
        )
    );
}
