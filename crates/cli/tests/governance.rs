//! The CLI doors of the governance room (issue 13 items 5 and 7): users and
//! roles, access requests, client lifecycle and owners, policy commands —
//! as processes against a temporary SQLite database (and one PostgreSQL
//! schema), one test per rule. The rules are the room's; these tests check
//! that the CLI reaches them, prints their one-line refusals with a
//! non-zero exit, and changes nothing when it refuses.
//!
//! What only the server does (opening an access request at `/authorize`)
//! is done here in-process through the same room over the same database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use steward_core::{Clock, ManualClock, SystemClock, UnixTime};
use steward_governance::UserContext;
use steward_governance::lifecycle::SystemCause;
use steward_governance::model::Role;
use steward_server::settings::{ResourceSettings, Settings};
use steward_store::Store;

const RESOURCE: &str = "https://mcp.test/mcp";

/// One installation: a config file and its database.
struct Env {
    dir: tempfile::TempDir,
    url: String,
}

impl Env {
    fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/steward.db", dir.path().display());
        Env::with_url(dir, url)
    }

    fn with_url(dir: tempfile::TempDir, url: String) -> Env {
        let env = Env { dir, url };
        env.set_governance("");
        env
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("steward.toml")
    }

    /// Writes the configuration, with `lines` in its `[governance]` table.
    fn set_governance(&self, lines: &str) {
        let toml = format!(
            "default_scopes = [\"read\"]\n[database]\nurl = \"{url}\"\n\
             [keys]\nencryption_key_file = \"{dir}/kek\"\n\
             [[resources]]\nuri = \"{RESOURCE}\"\nname = \"MCP\"\n\
             [resources.scopes]\nread = \"Read\"\nwrite = \"Write\"\nadmin = \"Admin\"\n\
             [governance]\n{lines}\n",
            url = self.url,
            dir = self.dir.path().display(),
        );
        std::fs::write(self.config(), toml).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
        cmd.arg("--config").arg(self.config()).args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("STEWARD_") {
                cmd.env_remove(k);
            }
        }
        // The database driver's notices are logged at info; errors are
        // what these tests read on standard error.
        cmd.env("STEWARD_LOG", "warn");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "steward {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--output json` and parses standard output.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs and expects exit code 1 with one `steward: …` line on standard
    /// error; returns that line.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "steward {args:?} should be refused; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(lines[0].starts_with("steward: "), "{err}");
        lines[0].to_owned()
    }

    /// `steward users add NAME ARGS…` with a password on standard input.
    fn add_user(&self, name: &str, args: &[&str]) -> Output {
        let mut a = vec!["users", "add", name];
        a.extend(args);
        let mut child = self
            .command(&a)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"correct horse battery staple\n")
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// The same settings the config file holds, for the in-process room.
    fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.database.url = self.url.clone();
        s.default_scopes = vec!["read".into()];
        s.resources.push(ResourceSettings {
            uri: RESOURCE.into(),
            name: "MCP".into(),
            scopes: [
                ("read".to_owned(), "Read".to_owned()),
                ("write".to_owned(), "Write".to_owned()),
                ("admin".to_owned(), "Admin".to_owned()),
            ]
            .into(),
            ..Default::default()
        });
        s
    }

    async fn store(&self) -> Arc<dyn Store> {
        steward_store::connect(&self.url).await.unwrap()
    }

    /// Users without the password dance (the CLI's own `users add` is
    /// tested on its own): created in the store, roles set by the room.
    fn seed_users(&self, users: &[(&str, &[Role])]) {
        block_on(async {
            let store = self.store().await;
            let room =
                steward_server::governance::build(&self.settings(), store.clone(), Arc::new(SystemClock))
                    .unwrap();
            for (name, roles) in users {
                steward_server::oauth::users::create_user(
                    store.as_ref(),
                    name,
                    steward_server::oauth::users::dummy_hash(),
                    SystemClock.now(),
                )
                .await
                .unwrap();
                if !roles.is_empty() {
                    room.set_roles(steward_governance::By::System(SystemCause::Cli), name, roles)
                        .await
                        .unwrap();
                }
            }
        });
    }

    /// A pre-registered public client, through the CLI.
    fn create_client(&self, id: &str) {
        self.ok(&[
            "clients",
            "create",
            "--client-id",
            id,
            "--public",
            "--redirect-uri",
            "http://localhost/cb",
        ]);
    }

    /// What `/authorize` does when the policy says the scopes need approval:
    /// the room opens a request for `user`, `age_secs` ago.
    fn open_request(&self, client: &str, scopes: &[&str], user: &str, age_secs: i64) -> String {
        block_on(async {
            let store = self.store().await;
            let clock = ManualClock::new(UnixTime(SystemClock.now().0 - age_secs));
            let room =
                steward_server::governance::build(&self.settings(), store.clone(), Arc::new(clock)).unwrap();
            let u = store.user_by_name(user).await.unwrap().unwrap();
            let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
            room.open_request(
                client,
                RESOURCE,
                &scopes,
                &UserContext {
                    id: u.id,
                    username: u.username,
                },
                "our agent needs it",
                None,
            )
            .await
            .unwrap()
            .id
        })
    }

    fn request_state(&self, id: &str) -> String {
        self.json(&["requests", "show", id])["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn client_state(&self, id: &str) -> String {
        self.json(&["clients", "show", id])["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The audit trail's (actor, action) pairs for `client`, oldest first.
    fn audit(&self, client: &str) -> Vec<(String, String)> {
        block_on(async {
            let mut events = self
                .store()
                .await
                .list_audit(&steward_store::AuditFilter {
                    client_id: Some(client.to_owned()),
                    ..Default::default()
                })
                .await
                .unwrap();
            events.reverse();
            events.into_iter().map(|e| (e.actor, e.action)).collect()
        })
    }

    fn generation(&self) -> i64 {
        block_on(async { self.store().await.policy_generation().await.unwrap() })
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The usual cast: an operator, two approvers, a requester without roles.
fn people(env: &Env) {
    env.seed_users(&[
        ("olga", &[Role::Operator]),
        ("alice", &[Role::Approver]),
        ("bruno", &[Role::Approver]),
        ("rita", &[]),
        ("tom", &[]),
    ]);
}

// ---------------------------------------------------------------- users

#[test]
fn users_add_with_roles_sets_them_through_the_room() {
    let env = Env::sqlite();
    let out = env.add_user(
        "ana",
        &["--role", "auditor", "--role", "approver", "--output", "json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["username"], "ana");
    assert_eq!(v["roles"], serde_json::json!(["approver", "auditor"]));
    let list = env.json(&["users", "list"]);
    assert!(list.is_array());
    assert_eq!(list[0]["username"], "ana");
    assert_eq!(list[0]["roles"], serde_json::json!(["approver", "auditor"]));
    let text = env.ok(&["users", "list"]);
    assert!(text.starts_with("USERNAME"), "header row: {text}");
}

#[test]
fn users_add_with_unknown_role_is_refused() {
    let env = Env::sqlite();
    let out = env.add_user("ana", &["--role", "root"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown role \"root\""), "{err}");
    // Refused before the database is opened: not even that is created.
    assert!(!env.path("steward.db").exists(), "nothing created");
}

#[test]
fn users_roles_replaces_roles_and_a_principal_needs_the_operator_role() {
    let env = Env::sqlite();
    people(&env);
    let err = env.refused(&["users", "roles", "rita", "--role", "approver", "--as", "alice"]);
    assert!(err.contains("alice") && err.contains("operator"), "{err}");
    assert_eq!(
        env.json(&["users", "roles", "rita"])["roles"],
        serde_json::json!([])
    );
    let v = env.json(&["users", "roles", "rita", "--role", "approver", "--as", "olga"]);
    assert_eq!(v["roles"], serde_json::json!(["approver"]));
    let v = env.json(&["users", "roles", "rita", "--role", "auditor"]);
    assert_eq!(v["roles"], serde_json::json!(["auditor"]), "replaced, not added");
    let v = env.json(&["users", "roles", "rita", "--clear"]);
    assert_eq!(v["roles"], serde_json::json!([]));
    let err = env.refused(&["users", "roles", "nobody", "--role", "auditor"]);
    assert!(err.contains("unknown user nobody"), "{err}");
    let err = env.refused(&["users", "roles", "rita", "--role", "king"]);
    assert!(err.contains("unknown role \"king\""), "{err}");
}

#[test]
fn users_delete_passes_ownership_on_or_leaves_the_client_orphaned() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    env.ok(&[
        "clients",
        "owners",
        "app",
        "--add",
        "rita:business",
        "--add",
        "tom:business",
        "--add",
        "rita:technical",
        "--as",
        "olga",
    ]);
    // One bad argument among good ones changes nothing.
    let err = env.refused(&[
        "clients",
        "owners",
        "app",
        "--add",
        "tom:technical",
        "--remove",
        "nobody",
        "--as",
        "olga",
    ]);
    assert!(err.contains("unknown user nobody"), "{err}");
    assert_eq!(
        env.json(&["clients", "owners", "app"])["owners"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let text = env.ok(&["users", "delete", "rita"]);
    assert!(text.contains("app: business owner is now tom"), "{text}");
    assert!(
        text.contains("app: no technical owner left: the client is orphaned"),
        "{text}"
    );
    let v = env.json(&["clients", "owners", "app"]);
    assert_eq!(
        v["owners"],
        serde_json::json!([{"username": "tom", "kind": "business"}])
    );
    assert_eq!(v["status"], "orphaned");
    assert!(
        env.refused(&["users", "delete", "rita"])
            .contains("unknown user rita")
    );
}

// ---------------------------------------------------------------- requests

#[test]
fn requests_list_and_show_have_the_documented_json_shape() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    env.create_client("other");
    let id = env.open_request("app", &["write", "admin"], "rita", 0);
    env.open_request("other", &["write"], "tom", 0);

    let all = env.json(&["requests", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let mine = env.json(&["requests", "list", "--client", "app"]);
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 1);
    let r = &mine[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["client_id"], "app");
    assert_eq!(r["resource"], RESOURCE);
    assert_eq!(r["scopes"], serde_json::json!(["write", "admin"]));
    assert_eq!(r["state"], "pending");
    assert_eq!(r["requested_by"], "rita", "people by username");
    assert_eq!(env.json(&["requests", "show", &id]), *r);
    assert_eq!(
        env.json(&["requests", "list", "--state", "approved"]),
        serde_json::json!([])
    );
    let text = env.ok(&["requests", "list"]);
    assert!(text.starts_with("ID "), "header row: {text}");
    assert!(text.contains(&id) && text.contains("rita"));
    let show = env.ok(&["requests", "show", &id]);
    assert!(show.contains("requested by:   rita"), "{show}");
    let err = env.refused(&["requests", "list", "--state", "maybe"]);
    assert!(err.contains("maybe"), "{err}");
}

#[test]
fn requests_approve_refuses_self_approval() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    // alice is an approver, but she made this request.
    let id = env.open_request("app", &["write"], "alice", 0);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "I need it",
        "--owner",
        "rita:business",
        "--owner",
        "tom:technical",
    ]);
    assert!(err.contains("may not decide request"), "{err}");
    assert_eq!(env.request_state(&id), "pending", "nothing changed");
    assert_eq!(
        env.json(&["clients", "owners", "app"])["owners"],
        serde_json::json!([])
    );
}

#[test]
fn requests_self_approval_when_allowed_is_marked() {
    let env = Env::sqlite();
    env.set_governance("allow_self_approval = true");
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "alice", 0);
    let v = env.json(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "one-person shop",
        "--owner",
        "alice:business",
        "--owner",
        "alice:technical",
    ]);
    assert_eq!(v["state"], "approved");
    assert_eq!(v["approval"]["self_approved"], true);
    assert!(
        env.audit("app")
            .contains(&("alice".to_owned(), "request.approved".to_owned()))
    );
}

#[test]
fn requests_approve_refuses_an_owner_of_the_client() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    env.ok(&[
        "clients",
        "owners",
        "app",
        "--add",
        "alice:business",
        "--add",
        "tom:technical",
        "--as",
        "olga",
    ]);
    let id = env.open_request("app", &["write"], "rita", 0);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "mine",
    ]);
    assert!(err.contains("may not decide request"), "{err}");
    assert_eq!(env.request_state(&id), "pending");
}

#[test]
fn requests_approve_without_the_approver_role_is_refused() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "rita", 0);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "olga",
        "--justification",
        "ok",
    ]);
    assert!(err.contains("olga lacks the approver role"), "{err}");
    assert_eq!(env.request_state(&id), "pending");
}

#[test]
fn requests_approve_above_self_service_needs_owners() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "rita", 0);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "ok",
    ]);
    assert!(err.contains("needs a business and a technical owner"), "{err}");
    assert_eq!(env.request_state(&id), "pending");
}

#[test]
fn requests_approve_narrows_scopes_sets_an_end_and_assigns_owners() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write", "admin"], "rita", 0);
    let before = SystemClock.now().0;
    let v = env.json(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "ticket 7",
        "--scopes",
        "write",
        "--expires-in",
        "90d",
        "--owner",
        "rita:business",
        "--owner",
        "tom:technical",
    ]);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["state"], "approved");
    assert_eq!(v["decided_by"], "alice");
    assert_eq!(v["granted_scopes"], serde_json::json!(["write"]));
    let end = v["approval"]["expires_at"].as_i64().unwrap();
    assert!((before + 90 * 86_400..=SystemClock.now().0 + 90 * 86_400).contains(&end));
    let show = env.json(&["clients", "show", "app"]);
    assert_eq!(show["ownership"]["status"], "owned");
    assert_eq!(
        show["ownership"]["owners"],
        serde_json::json!([
            {"username": "rita", "kind": "business"},
            {"username": "tom", "kind": "technical"}
        ])
    );
    assert_eq!(show["approvals"][0]["scopes"], serde_json::json!(["write"]));
    // The decision now counts: the policy grants write, still not admin.
    let e = env.json(&[
        "policy",
        "explain",
        "--client",
        "app",
        "--resource",
        RESOURCE,
        "--scope",
        "write",
        "--scope",
        "admin",
        "--action",
        "authorize",
    ]);
    assert_eq!(e["granted"], serde_json::json!(["write"]));
    // Decided is final.
    let err = env.refused(&[
        "requests",
        "deny",
        &id,
        "--as",
        "bruno",
        "--justification",
        "late",
    ]);
    assert!(err.contains("already approved"), "{err}");
}

#[test]
fn requests_approve_may_only_narrow() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "rita", 0);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "ok",
        "--scopes",
        "admin",
        "--owner",
        "rita:business",
        "--owner",
        "tom:technical",
    ]);
    assert!(err.contains("admin was not requested"), "{err}");
    assert_eq!(env.request_state(&id), "pending");
}

#[test]
fn requests_approve_of_an_expired_request_is_refused() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    // Opened 15 days ago; requests wait 14.
    let id = env.open_request("app", &["write"], "rita", 15 * 86_400);
    assert_eq!(env.json(&["requests", "show", &id])["expired"], true);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "ok",
        "--owner",
        "rita:business",
        "--owner",
        "tom:technical",
    ]);
    assert!(err.contains("expired"), "{err}");
    assert_eq!(env.request_state(&id), "pending", "nothing changed");
}

#[test]
fn requests_deny_needs_an_approver_and_a_justification() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "rita", 0);
    let err = env.refused(&["requests", "deny", &id, "--as", "alice", "--justification", "  "]);
    assert!(err.contains("justification is required"), "{err}");
    let err = env.refused(&["requests", "deny", &id, "--as", "tom", "--justification", "no"]);
    assert!(err.contains("tom lacks the approver role"), "{err}");
    assert_eq!(env.request_state(&id), "pending");
    let v = env.json(&[
        "requests",
        "deny",
        &id,
        "--as",
        "alice",
        "--justification",
        "not needed",
    ]);
    assert_eq!(v["state"], "denied");
    assert_eq!(v["decision_justification"], "not needed");
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "bruno",
        "--justification",
        "x",
    ]);
    assert!(err.contains("already denied"), "{err}");
}

#[test]
fn two_approvers_on_one_request_one_wins() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    env.ok(&[
        "clients",
        "owners",
        "app",
        "--add",
        "rita:business",
        "--add",
        "tom:technical",
        "--as",
        "olga",
    ]);
    let id = env.open_request("app", &["write"], "rita", 0);
    let spawn = |who: &str, what: &str| {
        env.command(&["requests", what, &id, "--as", who, "--justification", "race"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("alice", "approve");
    let b = spawn("bruno", "deny");
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(won.len(), 1, "exactly one decision wins");
    let lost = outs.iter().find(|o| !o.status.success()).unwrap();
    let err = String::from_utf8_lossy(&lost.stderr);
    assert!(
        err.contains("already") || err.contains("decided concurrently"),
        "a clear conflict: {err}"
    );
    let state = env.request_state(&id);
    assert!(state == "approved" || state == "denied");
}

#[test]
fn unknown_request_client_and_user_are_named() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "rita", 0);
    assert!(
        env.refused(&["requests", "show", "req_nope"])
            .contains("unknown access request req_nope")
    );
    assert!(
        env.refused(&[
            "requests",
            "approve",
            "req_nope",
            "--as",
            "alice",
            "--justification",
            "x"
        ])
        .contains("unknown access request req_nope")
    );
    assert!(
        env.refused(&[
            "requests",
            "approve",
            &id,
            "--as",
            "ghost",
            "--justification",
            "x"
        ])
        .contains("unknown user ghost")
    );
    assert!(
        env.refused(&["clients", "suspend", "nope", "--as", "olga", "--reason", "x"])
            .contains("unknown client nope")
    );
    assert!(
        env.refused(&["clients", "show", "nope"])
            .contains("unknown client nope")
    );
    assert!(
        env.refused(&["clients", "owners", "nope"])
            .contains("unknown client nope")
    );
    assert!(
        env.refused(&[
            "clients",
            "owners",
            "app",
            "--add",
            "ghost:business",
            "--as",
            "olga"
        ])
        .contains("unknown user ghost")
    );
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "x",
        "--expires-in",
        "90",
    ]);
    assert!(err.contains("duration \"90\""), "{err}");
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "x",
        "--owner",
        "rita:boss",
    ]);
    assert!(err.contains("boss"), "{err}");
    assert_eq!(env.request_state(&id), "pending");
}

// ---------------------------------------------------------------- clients

#[test]
fn clients_suspend_then_resume_round_trip() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    env.ok(&[
        "clients",
        "owners",
        "app",
        "--add",
        "rita:business",
        "--add",
        "tom:technical",
        "--as",
        "olga",
    ]);
    suspend_then_resume(&env);
}

/// Needs a client `app` owned by rita (business) and tom (technical).
fn suspend_then_resume(env: &Env) {
    let err = env.refused(&["clients", "suspend", "app", "--as", "olga", "--reason", " "]);
    assert!(err.contains("justification is required"), "{err}");
    assert_eq!(env.client_state("app"), "active");
    let v = env.json(&[
        "clients",
        "suspend",
        "app",
        "--as",
        "olga",
        "--reason",
        "incident 42",
    ]);
    assert_eq!(v["client_id"], "app");
    assert_eq!(v["previous_state"], "active");
    assert_eq!(v["state"], "suspended");
    assert_eq!(env.client_state("app"), "suspended");
    // Suspended twice is not a move in the table.
    let err = env.refused(&["clients", "suspend", "app", "--as", "olga", "--reason", "again"]);
    assert!(
        err.contains("illegal transition from suspended to suspended"),
        "{err}"
    );
    // An owner may pull the brake but never release it alone.
    let err = env.refused(&["clients", "resume", "app", "--as", "rita", "--reason", "fixed"]);
    assert!(err.contains("needs one of"), "{err}");
    let text = env.ok(&["clients", "resume", "app", "--as", "alice", "--reason", "fixed"]);
    assert!(
        text.contains("client app is now active (was suspended)"),
        "{text}"
    );
    assert_eq!(env.client_state("app"), "active");
    // The trail records the --as principal of each move, and no refused one.
    let moves: Vec<(String, String)> = env
        .audit("app")
        .into_iter()
        .filter(|(_, a)| a == "client.suspended" || a == "client.resumed")
        .collect();
    assert_eq!(
        moves,
        vec![
            ("olga".to_owned(), "client.suspended".to_owned()),
            ("alice".to_owned(), "client.resumed".to_owned())
        ]
    );
}

#[test]
fn clients_revoke_is_final() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let err = env.refused(&["clients", "revoke", "app", "--as", "rita", "--reason", "x"]);
    assert!(err.contains("needs one of"), "a person without a role: {err}");
    assert_eq!(env.client_state("app"), "active");
    env.ok(&[
        "clients",
        "revoke",
        "app",
        "--as",
        "olga",
        "--reason",
        "compromised",
    ]);
    assert_eq!(env.client_state("app"), "revoked");
    let err = env.refused(&["clients", "resume", "app", "--as", "olga", "--reason", "oops"]);
    assert!(err.contains("revoked is final"), "{err}");
    assert_eq!(env.client_state("app"), "revoked");
}

#[test]
fn clients_owners_change_and_show_says_orphaned_unowned_or_owned() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    // A client above self-service that is not declared in configuration
    // needs owners: without them it is orphaned.
    let v = env.json(&["clients", "owners", "app"]);
    assert_eq!(v["client_id"], "app");
    assert_eq!(v["status"], "orphaned");
    assert_eq!(v["orphaned"], true);
    assert_eq!(v["missing"], serde_json::json!(["business", "technical"]));
    let err = env.refused(&["clients", "owners", "app", "--add", "rita:business"]);
    assert!(err.contains("--as"), "{err}");
    let err = env.refused(&[
        "clients",
        "owners",
        "app",
        "--add",
        "rita:business",
        "--as",
        "tom",
    ]);
    assert!(err.contains("may not assign owners"), "{err}");
    let v = env.json(&[
        "clients",
        "owners",
        "app",
        "--add",
        "rita:business",
        "--as",
        "olga",
    ]);
    assert_eq!(v["status"], "orphaned");
    assert_eq!(v["missing"], serde_json::json!(["technical"]));
    let v = env.json(&[
        "clients",
        "owners",
        "app",
        "--add",
        "tom:technical",
        "--as",
        "olga",
    ]);
    assert_eq!(v["status"], "owned");
    let show = env.ok(&["clients", "show", "app"]);
    assert!(show.contains("state:          active"), "{show}");
    assert!(
        show.contains("rita (business)") && show.contains("tom (technical)"),
        "{show}"
    );
    assert!(show.contains("ownership:      owned"), "{show}");
    let v = env.json(&["clients", "owners", "app", "--remove", "tom", "--as", "alice"]);
    assert_eq!(v["status"], "orphaned");
    let show = env.ok(&["clients", "show", "app"]);
    assert!(show.contains("ORPHANED: no technical owner"), "{show}");
    let err = env.refused(&["clients", "owners", "app", "--remove", "tom", "--as", "alice"]);
    assert!(err.contains("does not own"), "{err}");

    // Without an owner requirement, a client without owners is unowned:
    // the operator answers for it.
    env.set_governance("owners_required = \"never\"");
    env.create_client("plain");
    let v = env.json(&["clients", "show", "plain"]);
    assert_eq!(v["ownership"]["status"], "unowned");
    assert_eq!(v["state"], "active");
    assert!(
        env.ok(&["clients", "show", "plain"])
            .contains("unowned: the operator is accountable")
    );
}

// ---------------------------------------------------------------- policy

const BROKEN: &str = "// a broken file\n@id(\"ops.broken\")\nforbid (principal, action, resource) when { ;\n";
const FORBID_READ: &str = "@id(\"ops.no_read\")\nforbid (principal is Client, action, resource is Scope)\nwhen { resource.name == \"read\" };\n";

#[test]
fn policy_show_default_prints_the_shipped_set() {
    let env = Env::sqlite();
    let text = env.ok(&["policy", "show-default"]);
    assert!(text.contains("@id(\"steward.self_service\")"), "{text}");
    assert_eq!(env.json(&["policy", "show-default"])["text"], text.as_str());
}

#[test]
fn policy_check_names_file_line_and_column() {
    let env = Env::sqlite();
    let bad = env.path("bad.cedar");
    std::fs::write(&bad, BROKEN).unwrap();
    let out = env.run(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:3:", bad.display());
    let line = err
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{err}"));
    let column: usize = line[prefix.len()..].split(':').next().unwrap().parse().unwrap();
    assert!(column > 1, "{line}");
    // As JSON: every error with file, line, column.
    let out = env.run(&["policy", "check", bad.to_str().unwrap(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["file"], bad.display().to_string());
    assert_eq!(v["errors"][0]["line"], 3);
    // Valid against the schema: an attribute the schema lacks is an error.
    let unknown = env.path("unknown.cedar");
    std::fs::write(
        &unknown,
        "@id(\"ops.x\")\nforbid (principal is Client, action, resource is Scope)\nwhen { principal.shoe_size > 3 };\n",
    )
    .unwrap();
    let out = env.run(&["policy", "check", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:3:", unknown.display())));
    let good = env.path("good.cedar");
    std::fs::write(&good, FORBID_READ).unwrap();
    let text = env.ok(&["policy", "check", good.to_str().unwrap()]);
    assert!(
        text.contains("ops.no_read") && text.contains("steward.self_service"),
        "{text}"
    );
    // Without FILES: the configured governance.policy_files.
    env.set_governance(&format!("policy_files = [\"{}\"]", bad.display()));
    let out = env.run(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:3:", bad.display())));
    env.set_governance(&format!("policy_files = [\"{}\"]", good.display()));
    assert!(env.ok(&["policy", "check"]).contains("ops.no_read"));
    let missing = env.refused(&["policy", "check", "/nonexistent/x.cedar"]);
    assert!(missing.contains("/nonexistent/x.cedar"), "{missing}");
}

#[test]
fn policy_explain_names_the_deciding_policies_without_side_effects() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let v = env.json(&[
        "policy",
        "explain",
        "--client",
        "app",
        "--scope",
        "read",
        "--scope",
        "write",
        "--action",
        "authorize",
        "--user",
        "rita",
    ]);
    assert_eq!(v["client_id"], "app");
    assert_eq!(v["resource"], RESOURCE, "the only resource is the default");
    assert_eq!(v["granted"], serde_json::json!(["read"]));
    let read = &v["scopes"][0];
    assert_eq!(read["scope"], "read");
    assert_eq!(read["granted"], true);
    assert_eq!(read["policy_ids"], serde_json::json!(["steward.self_service"]));
    let write = &v["scopes"][1];
    assert_eq!(write["granted"], false);
    assert!(write["reason"].is_string());
    assert!(
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "steward.self_service" && p["source"] == "<default>")
    );
    let text = env.ok(&[
        "policy", "explain", "--client", "app", "--scope", "read", "--action", "refresh",
    ]);
    assert!(
        text.contains("SCOPE") && text.contains("steward.self_service"),
        "{text}"
    );
    assert_eq!(
        env.json(&["requests", "list"]),
        serde_json::json!([]),
        "no request opened"
    );
    let err = env.refused(&[
        "policy", "explain", "--client", "app", "--scope", "read", "--action", "fly",
    ]);
    assert!(err.contains("unknown action \"fly\""), "{err}");
    let err = env.refused(&[
        "policy",
        "explain",
        "--client",
        "nope",
        "--scope",
        "read",
        "--action",
        "authorize",
    ]);
    assert!(err.contains("unknown client nope"), "{err}");
    let err = env.refused(&[
        "policy",
        "explain",
        "--client",
        "app",
        "--scope",
        "read",
        "--action",
        "authorize",
        "--user",
        "ghost",
    ]);
    assert!(err.contains("unknown user ghost"), "{err}");
}

#[test]
fn policy_impact_lists_who_would_gain_or_lose_which_scopes() {
    let env = Env::sqlite();
    people(&env);
    env.create_client("app");
    let file = env.path("no-read.cedar");
    std::fs::write(&file, FORBID_READ).unwrap();
    let rows = env.json(&["policy", "impact", file.to_str().unwrap()]);
    let rows = rows.as_array().unwrap();
    let auth = rows
        .iter()
        .find(|r| r["client_id"] == "app" && r["action"] == "authorize")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(auth["resource"], RESOURCE);
    assert_eq!(auth["lost"], serde_json::json!(["read"]));
    assert_eq!(auth["gained"], serde_json::json!([]));
    let text = env.ok(&["policy", "impact", file.to_str().unwrap()]);
    assert!(text.starts_with("CLIENT ID"), "header row: {text}");
    // Nothing changed: the running decision still grants read.
    let e = env.json(&[
        "policy",
        "explain",
        "--client",
        "app",
        "--scope",
        "read",
        "--action",
        "authorize",
    ]);
    assert_eq!(e["granted"], serde_json::json!(["read"]));
    let bad = env.path("bad.cedar");
    std::fs::write(&bad, BROKEN).unwrap();
    let err = env.refused(&["policy", "impact", bad.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");
}

#[test]
fn policy_reload_bumps_the_generation_and_refuses_a_broken_set() {
    let env = Env::sqlite();
    let file = env.path("ops.cedar");
    std::fs::write(&file, FORBID_READ).unwrap();
    env.set_governance(&format!("policy_files = [\"{}\"]", file.display()));
    reload_round_trip(&env, &file);
}

fn reload_round_trip(env: &Env, file: &Path) {
    let v = env.json(&["policy", "reload"]);
    assert_eq!(v["valid"], true);
    let first = v["generation"].as_i64().unwrap();
    assert!(
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "ops.no_read")
    );
    assert_eq!(env.generation(), first);
    let text = env.ok(&["policy", "reload"]);
    assert!(
        text.contains(&format!("policy generation {}", first + 1)),
        "{text}"
    );
    std::fs::write(file, BROKEN).unwrap();
    let err = env.refused(&["policy", "reload"]);
    assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
    assert_eq!(
        env.generation(),
        first + 1,
        "a refused reload asks no node to reload"
    );
}

// ---------------------------------------------------------------- PostgreSQL

/// A fresh schema on the test PostgreSQL, dropped on drop.
struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    fn create() -> Option<PgSchema> {
        let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("cli_{:016x}", rand::random::<u64>());
        let created = block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&base).await?;
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        });
        match created {
            Ok(()) => Some(PgSchema { base, name }),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and PostgreSQL is unreachable: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED (governance CLI on PostgreSQL): {e}; set STEWARD_TEST_POSTGRES_URL");
                None
            }
        }
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.base).await?;
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .execute(&mut conn)
                .await?;
            conn.close().await
        });
    }
}

#[test]
fn on_postgres_approval_lifecycle_and_reload_go_through_the_room() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let env = Env::with_url(tempfile::tempdir().unwrap(), schema.url());
    people(&env);
    env.create_client("app");
    let id = env.open_request("app", &["write"], "alice", 0);
    let err = env.refused(&[
        "requests",
        "approve",
        &id,
        "--as",
        "alice",
        "--justification",
        "mine",
        "--owner",
        "rita:business",
        "--owner",
        "tom:technical",
    ]);
    assert!(err.contains("may not decide request"), "{err}");
    let v = env.json(&[
        "requests",
        "approve",
        &id,
        "--as",
        "bruno",
        "--justification",
        "ok",
        "--owner",
        "rita:business",
        "--owner",
        "tom:technical",
    ]);
    assert_eq!(v["state"], "approved");
    assert_eq!(v["requested_by"], "alice");
    suspend_then_resume(&env);
    let file = env.path("ops.cedar");
    std::fs::write(&file, FORBID_READ).unwrap();
    env.set_governance(&format!("policy_files = [\"{}\"]", file.display()));
    reload_round_trip(&env, &file);
}
