//! The command line as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Kraken CI from the shell.
///
/// Exit codes: 0 success; 1 the flow or run failed (failed jobs,
/// regressions or errors); 2 usage or connection error; 3 not found;
/// 124 a wait timed out. A closed pipe (`| head`) exits 0.
#[derive(Debug, Parser)]
#[command(
    name = "kraken",
    version,
    after_help = "Exit codes: 0 ok, 1 flow/run failed, 2 usage or connection error, 3 not found, 124 wait timed out."
)]
pub struct Cli {
    /// Server URL (default: the one of `kraken login`).
    #[arg(long, global = true, env = "KRAKEN_SERVER")]
    pub server: Option<String>,
    /// Session token (default: the one of `kraken login`).
    #[arg(long, global = true, env = "KRAKEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Work in process on this database instead of a server
    /// (e.g. sqlite://ci.db); flows run inside this command while it waits.
    #[arg(long, global = true, env = "KRAKEN_DB")]
    pub db: Option<String>,
    /// Print JSON (JSON Lines for streams) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Filter the JSON output with a jq expression (implies --json); strings
    /// print raw, other values as compact JSON, one per line (as `gh --jq`).
    #[arg(long, global = true, value_name = "EXPR")]
    pub jq: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a server and remember the session (file mode 600).
    Login {
        /// User name.
        #[arg(long, short, default_value = "admin")]
        user: String,
        /// Password (asked on the terminal when not given).
        #[arg(long, env = "KRAKEN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Log out and forget the stored session.
    Logout,
    /// Print the server's version.
    Version,
    /// Projects.
    #[command(subcommand)]
    Projects(ProjectsCmd),
    /// Branches (named by id or PROJECT/BRANCH).
    #[command(subcommand)]
    Branches(BranchesCmd),
    /// Stages (named by id or PROJECT/BRANCH/STAGE).
    #[command(subcommand)]
    Stages(StagesCmd),
    /// Flows: create, wait, inspect.
    #[command(subcommand)]
    Flows(FlowsCmd),
    /// Runs of stages in flows.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Jobs of runs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Print a job's log (or the failed steps' logs of a flow).
    Logs(LogsArgs),
    /// Test case results.
    #[command(subcommand)]
    Results(ResultsCmd),
    /// Agents.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Agents groups.
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Project secrets.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Tools.
    #[command(subcommand)]
    Tools(ToolsCmd),
    /// Server settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Systems jobs run on.
    #[command(subcommand)]
    Systems(SystemsCmd),
    /// Workflow schemas offline: check a stage file, dump the JSON schema.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// Run an agent that takes jobs from a server over HTTP.
    ///
    /// The agent registers itself and waits until an administrator
    /// authorizes it (`kraken agents authorize ID`); then it runs jobs.
    Agent(AgentArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Name of this agent at the server (default: the host name); only a
    /// label: the agent is known by the key kept in its work dir.
    #[arg(long, env = "KRAKEN_AGENT_ADDRESS")]
    pub address: Option<String>,
    /// Directory for job work directories and the agent's key (one agent per directory).
    #[arg(long, env = "KRAKEN_AGENT_DIR", default_value = "./kraken-agent")]
    pub work_dir: PathBuf,
    /// System name reported to the server (default: detected, e.g. debian-12).
    #[arg(long, env = "KRAKEN_SYSTEM_ID")]
    pub system: Option<String>,
    /// Exit after running one job.
    #[arg(long)]
    pub one_job: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCmd {
    /// List projects.
    List,
    /// Show a project (by id or name).
    Show { project: String },
    /// Create a project; prints its id.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a project.
    Update {
        project: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a project.
    Delete { project: String },
    /// Take the webhooks of a code host (github, gitea, gitlab, radicle) and
    /// print where it should deliver them.
    Webhook {
        project: String,
        /// github, gitea, gitlab or radicle.
        provider: String,
        /// The shared secret (HMAC key; GitLab's token). Gitea and GitLab need one.
        #[arg(long, conflicts_with = "disable")]
        secret: Option<String>,
        /// Stop taking this provider's webhooks.
        #[arg(long)]
        disable: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BranchesCmd {
    /// List the branches of a project.
    List { project: String },
    /// Show a branch with its stages.
    Show { branch: String },
    /// Create a branch (or fork one); prints its id.
    Create {
        project: String,
        name: String,
        /// Git branch name (default: the name).
        #[arg(long)]
        branch_name: Option<String>,
        /// Fork this branch (copies stages, env vars, data).
        #[arg(long)]
        fork: Option<String>,
        /// With --fork: the new branch continues the numbering (model-1).
        #[arg(long)]
        continue_numbering: bool,
    },
    /// Rename a branch.
    Update {
        branch: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        branch_name: Option<String>,
    },
    /// Delete a branch.
    Delete { branch: String },
    /// Show the branch's sequences.
    Sequences { branch: String },
    /// Set an environment variable of the branch (`ctx.env`).
    SetEnv {
        branch: String,
        name: String,
        value: String,
    },
    /// Remove an environment variable.
    UnsetEnv { branch: String, name: String },
    /// Flow statistics of the branch.
    Stats { branch: String },
}

#[derive(Debug, Subcommand)]
pub enum StagesCmd {
    /// List the stages of a branch.
    List { branch: String },
    /// Show a stage with its schema.
    Show { stage: String },
    /// Create a stage from a Starlark file (`def stage(ctx): ...`), or from a
    /// file in a repository (`--from-repo`); prints its id.
    Create {
        branch: String,
        name: String,
        /// The schema code file (default: the hello-world stage).
        #[arg(long, conflicts_with = "from_repo")]
        file: Option<PathBuf>,
        #[command(flatten)]
        repo: RepoSchemaArgs,
    },
    /// Change a stage: new code, name, enabled, schema repository.
    Update {
        stage: String,
        #[arg(long, conflicts_with_all = ["from_repo", "no_repo"])]
        file: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        repo: RepoSchemaArgs,
        /// Stop reading the schema from the repository (keeps the last one read).
        #[arg(long, conflicts_with = "from_repo")]
        no_repo: bool,
    },
    /// Delete a stage.
    Delete { stage: String },
    /// Evaluate code against the stage's branch without storing it.
    Preview {
        stage: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Next run times of the stage's timed triggers.
    Schedule { stage: String },
}

/// Where a stage's schema comes from when it is read from a repository.
#[derive(Debug, Args)]
pub struct RepoSchemaArgs {
    /// Read the schema code from this repository (URL).
    #[arg(long, value_name = "URL")]
    pub from_repo: Option<String>,
    /// The file holding the schema code in the repository.
    #[arg(long, value_name = "PATH", requires = "from_repo")]
    pub schema_file: Option<String>,
    /// The repository's branch (default: master).
    #[arg(long, value_name = "BRANCH", requires = "from_repo")]
    pub repo_branch: Option<String>,
    /// The name of a project secret holding an access token for HTTPS.
    #[arg(long, value_name = "SECRET", requires = "from_repo")]
    pub repo_token: Option<String>,
    /// Read the file again every INTERVAL (e.g. 10m).
    #[arg(long, value_name = "INTERVAL", requires = "from_repo")]
    pub refresh: Option<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Give up after this many seconds (exit 124).
    #[arg(long)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum FlowsCmd {
    /// List a branch's flows, newest first.
    List {
        branch: String,
        #[arg(long, default_value = "ci")]
        kind: String,
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Show a flow with its runs (ID, or PROJECT/BRANCH for its latest CI flow).
    Show { flow: String },
    /// Watch a flow live: its runs, jobs and steps with states and
    /// durations, until it ends; exits with its verdict (0 passed, 1 failed
    /// or cancelled). ID, or PROJECT/BRANCH for its latest CI flow.
    Watch {
        flow: String,
        /// Also follow the log of the running job(s) under the tree.
        #[arg(long)]
        log: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Cancel every unfinished run of a flow.
    Cancel { flow: String },
    /// Run a flow's jobs again: all its runs, or with --failed only the
    /// failed jobs (each rerun as a new job).
    Rerun {
        flow: String,
        /// Only the jobs that failed.
        #[arg(long)]
        failed: bool,
    },
    /// Create a flow; prints its id (with --json the flow).
    Create {
        branch: String,
        /// ci or dev.
        #[arg(long, default_value = "ci")]
        kind: String,
        /// A flow argument for every stage (repeatable).
        #[arg(long = "arg", value_name = "K=V")]
        args: Vec<String>,
        /// An argument for one stage (repeatable).
        #[arg(long = "stage-arg", value_name = "STAGE:K=V")]
        stage_args: Vec<String>,
        /// Wait until the flow is done; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Wait until a flow is done (also one already done); exit 1 if it failed.
    Wait {
        flow: String,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// The flow's public artifacts.
    Artifacts { flow: i64 },
    /// Download a public artifact of a flow.
    Download {
        flow: i64,
        path: String,
        /// Output file (default: the artifact's name; - for stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCmd {
    /// Show a run (and how its notifications went).
    Show { run: i64 },
    /// The run's notifications (commit statuses, Slack, e-mail, ...): where
    /// each went, its state, attempts and last error.
    Notifications { run: i64 },
    /// Start a stage in a flow (or replay its run); prints the run id.
    Create {
        flow: i64,
        stage: String,
        #[arg(long = "arg", value_name = "K=V")]
        args: Vec<String>,
    },
    /// Start a manual run, or replay a run's jobs.
    Start { run: i64 },
    /// Cancel a run.
    Cancel { run: i64 },
    /// The run's jobs.
    Jobs {
        run: i64,
        /// Also the jobs replaced by reruns.
        #[arg(long)]
        all: bool,
    },
    /// The run's test results, failures first.
    Results {
        run: i64,
        /// Only these results (passed, failed, error, disabled, not-run).
        #[arg(long = "status")]
        statuses: Vec<String>,
        /// Only these changes (new, regr, fix, no-change).
        #[arg(long = "change")]
        changes: Vec<String>,
        /// Test name contains.
        #[arg(long)]
        text: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// The run's issues.
    Issues { run: i64 },
}

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// Show a job with its steps.
    Show { job: i64 },
    /// Run a finished job again; prints the new job's id.
    Rerun { job: i64 },
    /// Cancel a job.
    Cancel { job: i64 },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job.
    #[arg(required_unless_present = "flow")]
    pub job: Option<i64>,
    /// Only this step.
    #[arg(long)]
    pub step: Option<i64>,
    /// Keep printing lines as they come until the job ends (exit 1 if it failed).
    #[arg(long, short)]
    pub follow: bool,
    /// The failed steps' logs of a flow instead.
    #[arg(long, requires = "failed", conflicts_with = "job")]
    pub flow: Option<i64>,
    /// With --flow: only failed steps.
    #[arg(long)]
    pub failed: bool,
}

#[derive(Debug, Subcommand)]
pub enum ResultsCmd {
    /// Show a test case result.
    Show { result: i64 },
    /// The result's history on its branch, newest first.
    History { result: i64 },
    /// Comment on a result (carried to its next failures).
    Comment {
        result: i64,
        #[arg(long)]
        text: String,
        #[arg(long, default_value = "kraken")]
        author: String,
        /// new, investigating, bug-in-product or bug-in-test.
        #[arg(long, default_value = "investigating")]
        state: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// List agents.
    List {
        /// The ones waiting for authorization.
        #[arg(long)]
        unauthorized: bool,
    },
    /// Show an agent.
    Show { agent: i64 },
    /// Authorize agents (they join group `all`).
    Authorize { agents: Vec<i64> },
    /// Revoke agents' authorization.
    Deauthorize { agents: Vec<i64> },
    /// Change an agent's groups or disable it.
    Update {
        agent: i64,
        /// Groups by name or id (replaces its groups; repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete an agent.
    Delete { agent: i64 },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// List agents groups.
    List,
    /// Create a group; prints its id.
    Create {
        name: String,
        /// Scope it to a project.
        #[arg(long)]
        project: Option<String>,
    },
    /// Rename a group.
    Update {
        group: String,
        #[arg(long)]
        name: String,
    },
    /// Delete a group.
    Delete { group: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// List a project's secrets (values masked).
    List { project: String },
    /// Create a simple secret (value from --value or stdin); prints its id.
    Create {
        project: String,
        name: String,
        /// The value (default: read from stdin).
        #[arg(long)]
        value: Option<String>,
        /// An SSH key secret instead: the user name.
        #[arg(long, requires = "key_file")]
        ssh_user: Option<String>,
        /// An SSH key secret instead: the private key file.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Delete a secret.
    Delete { secret: i64 },
}

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// List users.
    List,
    /// Create a user (password from --password or asked); prints its id.
    Create {
        name: String,
        #[arg(long, env = "KRAKEN_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Show a user with their roles.
    Show { user: i64 },
    /// Change roles (PROJECT=viewer|pwrusr|admin|none), superadmin, enabled.
    Update {
        user: i64,
        #[arg(long = "role", value_name = "PROJECT=ROLE")]
        roles: Vec<String>,
        #[arg(long)]
        superadmin: Option<bool>,
        #[arg(long)]
        enabled: Option<bool>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ToolsCmd {
    /// List tools (latest versions).
    List,
    /// Versions of a tool.
    Versions { name: String },
    /// Register a tool from its tool.json.
    Register { file: PathBuf },
    /// Load a tool from a git repository (the server clones it at TAG and
    /// registers its tool.json; version: the commit's short SHA).
    Load {
        /// The repository's URL.
        url: String,
        /// Tag or branch (default: the repository's default branch).
        #[arg(long)]
        tag: Option<String>,
        /// The tool.json's path in the repository.
        #[arg(long, default_value = "tool.json")]
        tool_file: String,
    },
    /// Delete a tool version.
    Delete { tool: i64 },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Show settings.
    Show,
    /// Set settings: GROUP.NAME=VALUE (repeatable).
    Set { values: Vec<String> },
}

#[derive(Debug, Subcommand)]
pub enum SystemsCmd {
    /// List systems.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCmd {
    /// Evaluate and validate a stage file offline; prints the jobs.
    Check {
        file: PathBuf,
        /// Context as JSON (merged over a default one: is_ci, env, flow...).
        #[arg(long)]
        ctx: Option<String>,
    },
    /// Print the workflow JSON schema (of the built-in tools).
    Dump,
}
