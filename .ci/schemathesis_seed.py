"""Seed a fresh server for the schemathesis pass: two of each thing
(project, secret, branch, env var, stage, finished CI flow with test
results, agents group, user), so that operations on ids 1 and 2 find real
data and their answers are checked against the document. Things numbered 1
are kept for reads and changes; things numbered 2 are what DELETE operations
get (see schemathesis.toml in .ci/schemathesis.sh).

Usage: schemathesis_seed.py BASE_URL ADMIN_PASSWORD
Logs in as admin and prints the session token (the progress goes to stderr).
"""

import json
import sys
import time
import urllib.error
import urllib.request

BASE, ADMIN_PASSWORD = sys.argv[1], sys.argv[2]
TOKEN = ""

# A job that writes a JUnit file with a passing and a failing test, and collects it.
SCRIPT = (
    "printf '<testsuite name=\"s\"><testcase classname=\"suite\" name=\"t1\">"
    "<failure message=\"boom\">trace</failure></testcase>"
    "<testcase classname=\"suite\" name=\"t2\"/></testsuite>' > results.xml"
)
STAGE = (
    "def stage(ctx):\n"
    "    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"tests\", "
    "\"steps\": [{\"tool\": \"shell\", \"cmd\": %s}, {\"tool\": \"junit_collect\", \"file_glob\": \"results.xml\"}], "
    "\"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}\n"
) % json.dumps(SCRIPT)


def call(method, path, body=None, want=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if TOKEN:
        req.add_header("Authorization", "Bearer " + TOKEN)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in want:
        sys.exit(f"seed: {method} {path} answered {status}: {text}")
    return json.loads(text) if text else None


def seed(n):
    project = call("POST", "/api/projects", {"name": f"project-{n}", "description": "seeded"})["id"]
    call("POST", f"/api/projects/{project}/secrets", {"name": f"SECRET_{n}", "kind": "simple", "secret": "s3cret"})
    branch = call("POST", f"/api/projects/{project}/branches", {"name": f"Main-{n}", "branch_name": "main"})["id"]
    call("POST", f"/api/branches/{branch}/env_vars", {"name": "VAR1", "value": "one"})
    call("POST", f"/api/branches/{branch}/stages", {"name": "tests", "schema_code": STAGE})
    call("POST", "/api/groups", {"name": f"group-{n}"})
    call("POST", "/api/users", {"name": f"user-{n}", "password": "pw-not-used"})
    flow = call("POST", f"/api/branches/{branch}/flows/ci", {})["id"]
    deadline = time.time() + 120
    while True:
        f = call("GET", f"/api/flows/{flow}")
        if f["state"] == "completed" and all(r["state"] == "processed" for r in f["runs"]):
            break
        if time.time() > deadline:
            sys.exit(f"seed: flow {flow} did not finish: {json.dumps(f)}")
        time.sleep(0.3)
    results = call("GET", f"/api/runs/{f['runs'][0]['id']}/results")
    if results["total"] != 2:
        sys.exit(f"seed: flow {flow} has no test results: {json.dumps(results)}")
    print(f"seed: project {project}, branch {branch}, flow {flow} done", file=sys.stderr)


TOKEN = call("POST", "/api/sessions", {"user": "admin", "password": ADMIN_PASSWORD})["token"]
seed(1)
seed(2)
print(TOKEN)
