//! The OpenAPI document at `/api/openapi.json` describes every route the
//! server serves under `/api` with its methods, and the Swagger UI works
//! with nothing fetched from elsewhere.

use std::time::Duration;

use kraken_tests::{TestServer, shell_stage};
use reqwest::Method;
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(s: &TestServer, prefix: &str) -> Value {
    let resp = reqwest::get(format!("{}{prefix}/openapi.json", s.url))
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    resp.json().await.expect("JSON document")
}

/// `/api/projects/{id}/branches` -> `/api/projects/1/branches`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The router's own answer for a route or method it does not have.
fn is_router_refusal(status: u16, body: &Value) -> bool {
    let msg = body["message"].as_str().unwrap_or("");
    (status == 404 && msg.starts_with("no such endpoint"))
        || (status == 405 && msg.contains("is not allowed"))
}

#[tokio::test]
async fn every_api_route_is_documented_with_its_methods() {
    // No built-in agent: the probes below may delete agent 1.
    let s = TestServer::start_with_agents(0).await;
    let doc = document(&s, "/api").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Kraken CI");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session_cookie"]["name"], "kk_session_token");
    // Every schema referred to is in the document.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "$ref {r} is not in the document"
        );
    }
    // The same document under /bk/api.
    assert_eq!(document(&s, "/bk/api").await, doc);

    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 60, "only {} paths", paths.len());
    let admin = s.admin().await;
    let mut operations = 0;
    for (path, item) in paths {
        assert!(path.starts_with("/api/"), "{path} is not under /api");
        for method in METHODS {
            let documented = item.get(method).is_some();
            let op = &item[method];
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            // The stream of an unknown job ends at once (404).
            let a = admin.send(m, &concrete(path), body).await;
            if documented {
                operations += 1;
                assert!(
                    !is_router_refusal(a.status, &a.body),
                    "{method} {path} is documented but not served: {} {}",
                    a.status,
                    a.body
                );
                // Each operation says what it answers, failures included,
                // and who may call it; the original's look-ups of features
                // this server does not have answer 501 and say only that.
                let responses = op["responses"].as_object().expect("responses");
                let unsupported = responses.keys().eq(["501"].iter());
                if a.status == 501 {
                    assert_eq!(a.body["title"], "Not Implemented", "{}", a.body);
                }
                assert!(
                    a.status < 500 || (unsupported && a.status == 501),
                    "{method} {path}: {} {}",
                    a.status,
                    a.body
                );
                assert!(
                    unsupported || responses.keys().any(|k| k.starts_with('2')),
                    "{method} {path}: no success response"
                );
                assert!(
                    unsupported || responses.contains_key("400") || responses.contains_key("401"),
                    "{method} {path}: no error responses"
                );
                assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()));
                assert!(op["summary"].as_str().is_some_and(|t| !t.is_empty()));
                let status = a.status.to_string();
                assert!(
                    responses.contains_key(&status),
                    "{method} {path} answered {status}, which it does not document: {}",
                    a.body
                );
            } else {
                assert_eq!(
                    a.status, 405,
                    "{method} {path} is served but not documented: {}",
                    a.body
                );
                assert!(is_router_refusal(a.status, &a.body), "{}", a.body);
            }
        }
    }
    assert!(operations >= 85, "only {operations} operations");

    // Login and the public settings need no token; the rest need one.
    let security = |path: &str, method: &str| paths[path][method].get("security").cloned();
    assert_eq!(
        security("/api/sessions", "post"),
        Some(json!([{}])),
        "login needs no token"
    );
    assert!(
        security("/api/projects", "get").is_none(),
        "the default applies"
    );
    assert_eq!(
        doc["security"],
        json!([{"bearer": []}, {"session_cookie": []}])
    );
}

/// Every route of `api_router` comes from `routes!`, which takes the path
/// and methods from the handler's `#[utoipa::path]`: a route added there
/// any other way would be served without being documented.
#[test]
fn api_routes_are_added_only_with_their_documentation() {
    let lib = include_str!("../../../kraken-server/src/lib.rs");
    let start = lib.find("fn api_router()").expect("fn api_router");
    let end = start + lib[start..].find("\n}\n").expect("end of api_router");
    let body = &lib[start..end];
    assert!(body.matches("routes!(").count() >= 60);
    for forbidden in [
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".merge(",
    ] {
        assert!(
            !body.contains(forbidden),
            "api_router adds a route with {forbidden}: use .routes(routes!(handler)) with #[utoipa::path] on the handler"
        );
    }
    // Nothing else is routed under /api but the document and its UI.
    for forbidden in [
        ".route(\"/api",
        ".route(\"/bk/api",
        ".nest(\"/api/",
        ".nest(\"/bk/api/",
    ] {
        assert!(
            !lib.contains(forbidden),
            "lib.rs routes {forbidden}...: add it to api_router with routes!"
        );
    }
    assert_eq!(lib.matches(".nest(\"/api\", ").count(), 1);
    assert_eq!(lib.matches(".nest(\"/bk/api\", ").count(), 1);
}

#[tokio::test]
async fn the_swagger_ui_is_served_from_the_server_alone() {
    let s = TestServer::start_with_agents(0).await;
    let http = reqwest::Client::new();
    for prefix in ["/api", "/bk/api"] {
        let resp = http
            .get(format!("{}{prefix}/docs/", s.url))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{prefix}/docs/");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = resp.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        // Every script and style sheet comes from this server.
        let mut assets = 0;
        for attr in ["src=\"", "href=\""] {
            for part in html.split(attr).skip(1) {
                let url = &part[..part.find('"').unwrap()];
                assert!(
                    !url.contains("//"),
                    "{prefix}/docs/ loads {url} from elsewhere"
                );
                let asset = http
                    .get(format!(
                        "{}{prefix}/docs/{}",
                        s.url,
                        url.trim_start_matches("./")
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(asset.status(), 200, "{url}");
                assert!(!asset.bytes().await.unwrap().is_empty(), "{url}");
                assets += 1;
            }
        }
        assert!(assets >= 3, "{html}");
        // The UI loads this server's document.
        let init = http
            .get(format!("{}{prefix}/docs/swagger-initializer.js", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            init.contains(&format!("\"{prefix}/openapi.json\"")),
            "{init}"
        );
        assert!(
            !init.contains("http://") && !init.contains("https://"),
            "{init}"
        );
        // Without the trailing slash: a redirect to it.
        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = no_redirect
            .get(format!("{}{prefix}/docs", s.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        assert_eq!(r.headers()["location"], format!("{prefix}/docs/").as_str());
    }
}

/// The JSON schema of an operation's answer with this status, with the
/// document's components so that its `$ref`s resolve.
fn answer_schema(doc: &Value, path: &str, method: &str, status: u16) -> Option<Value> {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    let content = response["content"].as_object()?;
    let schema = content
        .get("application/json")
        .or_else(|| content.get("application/problem+json"))?["schema"]
        .clone();
    Some(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    }))
}

/// Real answers (on SQLite, and on PostgreSQL in CI) match the document:
/// every GET of the API on things that exist (a finished flow with a job,
/// logs and test results) and on things that do not. The schemathesis pass
/// (`.ci/schemathesis.sh`) does this with generated input for every
/// operation; this test keeps `cargo test` honest on both databases.
#[tokio::test]
async fn real_answers_match_the_document() {
    let s = TestServer::start().await;
    let doc = document(&s, "/api").await;
    let admin = s.admin().await;
    let project = admin.project("p").await;
    let branch = admin.branch(project, "Main").await;
    let junit = r#"printf '<testsuite name="s"><testcase classname="c" name="t1"><failure message="boom">x</failure></testcase><testcase classname="c" name="t2"/></testsuite>' > r.xml"#;
    let code = shell_stage("root", "tests", &[junit]).replace(
        "}], \"environments\"",
        "}, {\"tool\": \"junit_collect\", \"file_glob\": \"r.xml\"}], \"environments\"",
    );
    admin.stage(branch, "tests", &code).await;
    let flow = admin.flow(branch).await["id"].as_i64().unwrap();
    let flow = admin.wait_flow(flow, Duration::from_secs(60)).await;
    assert_eq!(flow["runs"][0]["tests_total"], 2, "{flow}");
    admin
        .post(
            &format!("/api/projects/{project}/secrets"),
            json!({"name": "S", "kind": "simple", "secret": "x"}),
        )
        .await
        .expect(201);

    // The check bites: a project whose description is a number, or whose
    // deletion time is missing, is not a project.
    let project_schema = answer_schema(&doc, "/api/projects/{id}", "get", 200).unwrap();
    let project_validator = jsonschema::validator_for(&project_schema).unwrap();
    let mut real = admin.get(&format!("/api/projects/{project}")).await.body;
    assert!(project_validator.is_valid(&real), "{real}");
    real["description"] = json!(5);
    assert!(!project_validator.is_valid(&real));
    real["description"] = json!(null);
    assert!(project_validator.is_valid(&real));
    real.as_object_mut().unwrap().remove("deleted");
    assert!(!project_validator.is_valid(&real));
    real["deleted"] = json!(null);
    real["branches"][0]["retention_policy"]["ci_logs"] = json!(null);
    assert!(!project_validator.is_valid(&real), "refs are followed");

    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        if item.get("get").is_none() || path.ends_with("/stream") {
            continue;
        }
        // Things that exist (1: the first of each) and things that do not.
        for id in ["1", "999999"] {
            let mut url = path
                .replace("{id}", id)
                .replace("{step}", "0")
                .replace("{kind}", "ci")
                .replace("{name}", "shell")
                .replace("{token}", "no-such-token");
            if path == "/api/user_data" {
                url.push_str(&format!("?scope=project&entity_id={id}"));
            }
            let a = admin.get(&url).await;
            let schema = answer_schema(&doc, path, "get", a.status)
                .unwrap_or_else(|| panic!("GET {url} answered {}, not documented", a.status));
            let validator = jsonschema::validator_for(&schema).expect("a valid schema");
            let errors: Vec<String> = validator
                .iter_errors(&a.body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "GET {url} ({}) does not match the document: {errors:?}\n{}",
                a.status,
                a.body
            );
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} answers checked");
}
