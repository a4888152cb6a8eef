//! jq filters over JSON values (the jq language, run by `jaq`): the CLI's
//! `--jq`, and the `data` tool's `jq` operation.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

/// Run jq `filter` on `input`; every output value, in order. The error says
/// what is wrong with the filter, or what failed while running it.
pub fn run(filter: &str, input: &Value) -> Result<Vec<Value>, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: filter,
        path: (),
    };
    let modules = loader.load(&arena, program).map_err(|errs| {
        format!(
            "the jq filter '{filter}' does not parse ({} error(s))",
            errs.len()
        )
    })?;
    let compiled = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            format!(
                "the jq filter '{filter}' does not compile ({} error(s): undefined names?)",
                errs.len()
            )
        })?;
    let bytes = serde_json::to_vec(input).map_err(|e| e.to_string())?;
    let input = jaq_json::read::parse_single(&bytes).map_err(|e| e.to_string())?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&compiled.lut, Vars::new([]));
    let mut out = Vec::new();
    for v in compiled.id.run((ctx, input)).map(unwrap_valr) {
        let v = v.map_err(|e| format!("jq: {e}"))?;
        let mut buf = Vec::new();
        jaq_json::write::write(&mut buf, &jaq_json::write::Pp::default(), 0, &v)
            .map_err(|e| e.to_string())?;
        out.push(serde_json::from_slice(&buf).map_err(|e| format!("jq output: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn filters_select_and_fail_clearly() {
        let v = json!({"items": [{"id": 1, "state": "passed"}, {"id": 2, "state": "failed"}]});
        assert_eq!(
            super::run(r#".items[] | select(.state == "failed") | .id"#, &v).unwrap(),
            vec![json!(2)]
        );
        assert_eq!(super::run(".items | length", &v).unwrap(), vec![json!(2)]);
        assert!(
            super::run(".items[", &v)
                .unwrap_err()
                .contains("does not parse")
        );
        assert!(super::run("nosuchfn", &v).unwrap_err().contains("compile"));
    }
}
