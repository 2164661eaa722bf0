//! `steward serve` as a process: bad settings stop it with exit status 2 and
//! one line naming the setting; a real server on loopback serves discovery
//! and the JWKS, finishes an in-flight request on SIGTERM and exits 0, and a
//! restart keeps its signing key.
// Test timers measure elapsed monotonic time (disallowed_methods).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// `steward` run in `dir`, with no `STEWARD_…` variable from the test's own
/// environment, plus `env`.
fn steward(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STEWARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs `steward serve` expecting it to refuse to start.
fn refused(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let started = Instant::now();
    let out: Output = steward(dir, args, env).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "took {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    lines[0].to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn unknown_key_in_the_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "steward.toml",
        "[database]\nurll = \"sqlite://./x.db\"\n",
    );
    let line = refused(dir.path(), &["--config", &file, "serve"], &[]);
    assert!(line.contains("database.urll: unknown field"), "{line}");
}

#[test]
fn toml_syntax_error_is_one_line_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "steward.toml",
        "listen = \"127.0.0.1:0\"\n[database\n",
    );
    let line = refused(dir.path(), &["--config", &file, "serve"], &[]);
    assert!(
        line.contains("steward.toml: TOML parse error at line 2"),
        "{line}"
    );
}

#[test]
fn unparsable_urls_are_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let line = refused(dir.path(), &["serve"], &[("STEWARD_ISSUER", "not a url")]);
    assert!(line.contains(": issuer: "), "{line}");
    let line = refused(
        dir.path(),
        &["serve"],
        &[("STEWARD_DATABASE__URL", "postgres://[oops")],
    );
    assert!(line.contains(": database.url: "), "{line}");
}

#[test]
fn missing_tls_file_is_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "steward.toml",
        "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
    );
    let line = refused(dir.path(), &["--config", &file, "serve"], &[]);
    assert!(line.contains(": tls.cert_file: /nonexistent/cert.pem"), "{line}");
}

#[test]
fn env_typos_are_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let line = refused(dir.path(), &["serve"], &[("STEWARD_DATABSE__URL", "x")]);
    assert!(
        line.contains(": STEWARD_DATABSE__URL: not a Steward setting"),
        "{line}"
    );
    let line = refused(dir.path(), &["serve"], &[("STEWARD_KEYS__RELOAD_SECS", "5")]);
    assert!(
        line.contains(": STEWARD_KEYS__RELOAD_SECS: not a Steward setting"),
        "{line}"
    );
}

#[test]
fn sqlite_url_without_a_file_names_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let line = refused(
        dir.path(),
        &["serve"],
        &[
            ("STEWARD_DATABASE__URL", "sqlite://"),
            ("STEWARD_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(line.contains(": database.url: "), "{line}");
    assert!(!line.contains("keys"), "{line}");
}

#[test]
fn unreachable_postgresql_fails_fast_naming_database_url() {
    let dir = tempfile::tempdir().unwrap();
    // Refused: nothing listens on the port.
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let line = refused(
        dir.path(),
        &["serve"],
        &[("STEWARD_DATABASE__URL", &url), ("STEWARD_LISTEN", "127.0.0.1:0")],
    );
    assert!(line.contains(": database.url: "), "{line}");

    // Silent: a listener that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/test",
        silent.local_addr().unwrap().port()
    );
    let line = refused(
        dir.path(),
        &["serve"],
        &[("STEWARD_DATABASE__URL", &url), ("STEWARD_LISTEN", "127.0.0.1:0")],
    );
    assert!(line.contains(": database.url: "), "{line}");
    assert!(line.contains("no answer within 5 s"), "{line}");
    drop(silent);
}

/// A read-only command aimed at an empty PostgreSQL database (a fresh
/// schema) says there is nothing there and leaves it empty: before, opening
/// the store migrated it, creating every table.
#[test]
fn a_read_only_command_on_an_empty_postgresql_database_creates_no_tables() {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("empty_{:016x}", rand::random::<u64>());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // `count`: a statement's one number; otherwise run it for its effect.
    let run = |sql: String, count: bool| {
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&base).await?;
            let n: i64 = if count {
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await?
            } else {
                sqlx::raw_sql(&sql).execute(&mut conn).await?;
                0
            };
            conn.close().await?;
            Ok::<i64, sqlx::Error>(n)
        })
    };
    match run(format!("CREATE SCHEMA {schema}"), false) {
        Ok(_) => {}
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and no PostgreSQL: {e}"),
        Err(e) => return eprintln!("SKIPPED: no PostgreSQL ({e})"),
    }
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let out = steward(
        dir.path(),
        &["clients", "list"],
        &[("STEWARD_DATABASE__URL", &url)],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let tables = run(
        format!("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'"),
        true,
    );
    let _ = run(format!("DROP SCHEMA {schema} CASCADE"), false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("has no Steward tables yet"), "{stderr}");
    assert_eq!(tables.unwrap(), 0, "tables were created");
}

/// Every entry under `dir`, recursively, for "nothing was created" checks.
fn entries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        found.push(path.display().to_string());
        if path.is_dir() {
            found.extend(entries(&path));
        }
    }
    found
}

/// A command that only reads (or changes what must already be there) run
/// where nothing is yet: it says so, exits non-zero and creates no database,
/// no key-encryption key, no directory.
#[test]
fn read_only_commands_in_an_empty_directory_create_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let policy = write(elsewhere.path(), "extra.cedar", "");
    let commands: &[&[&str]] = &[
        &["keys", "list"],
        &["issuer", "show"],
        &["clients", "list"],
        &["clients", "show", "some-client"],
        &["clients", "owners", "some-client"],
        &["users", "list"],
        &["users", "roles", "alice"],
        &["requests", "list"],
        &["requests", "show", "req_1"],
        &[
            "policy",
            "explain",
            "--client",
            "c",
            "--scope",
            "s",
            "--action",
            "client_credentials",
        ],
        &["policy", "impact", &policy],
    ];
    for args in commands {
        let out = steward(empty.path(), args, &[])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains("database.url: no database at ./steward-data/steward.db yet"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            entries(empty.path()),
            Vec::<String>::new(),
            "{args:?} created files"
        );
    }
    // The metadata-document checker needs no state at all (this URL is
    // refused before any fetch).
    let out = steward(
        empty.path(),
        &["cimd", "check", "http://client.example/c.json"],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        entries(empty.path()),
        Vec::<String>::new(),
        "cimd check created files"
    );
}

/// The listener is bound before the database, the key-encryption key or a
/// signing key is made: a start on a busy port leaves nothing behind.
#[test]
fn a_start_on_a_busy_port_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let line = refused(dir.path(), &["serve"], &[("STEWARD_LISTEN", addr.as_str())]);
    assert!(
        line.starts_with(&format!("steward: cannot start: listen: cannot bind {addr}: ")),
        "{line}"
    );
    assert!(line.contains("another process listens there"), "{line}");
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "nothing created");
    drop(busy);
}

/// Relative paths in a configuration file are the file's, not the working
/// directory's; a key-encryption key that cannot open the stored signing
/// keys (another node's, or a replaced file) names itself and the likely
/// cause, and a missing one is not silently replaced.
#[test]
fn state_follows_the_configuration_file_and_a_foreign_kek_is_named() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("conf")).unwrap();
    let config = write(
        &home.path().join("conf"),
        "steward.toml",
        "listen = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://data/steward.db\"\n\
         [keys]\nencryption_key_file = \"data/kek\"\n",
    );
    let out = steward(cwd.path(), &["--config", &config, "keys", "rotate"], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = home.path().join("conf/data");
    assert!(data.join("steward.db").is_file());
    let kek = data.join("kek");
    assert!(kek.is_file());
    assert_eq!(
        entries(cwd.path()),
        Vec::<String>::new(),
        "nothing in the working directory"
    );
    let out = steward(cwd.path(), &["--config", &config, "keys", "list"], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "the same database from elsewhere");

    // Another node's key-encryption key (valid, but not this database's).
    let other = tempfile::tempdir().unwrap();
    let out = steward(
        other.path(),
        &["keys", "rotate"],
        &[("STEWARD_KEYS__ENCRYPTION_KEY_FILE", "foreign-kek")],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(other.path().join("foreign-kek"), &kek).unwrap();
    let line = refused(cwd.path(), &["--config", &config, "serve"], &[]);
    assert!(
        line.contains(&format!(
            "keys.encryption_key_file: {} cannot decrypt",
            kek.display()
        )),
        "{line}"
    );
    assert!(line.contains("another node's file"), "{line}");

    // No key-encryption key at all: refused, and none created.
    std::fs::remove_file(&kek).unwrap();
    let line = refused(cwd.path(), &["--config", &config, "serve"], &[]);
    assert!(
        line.contains(&format!(
            "keys.encryption_key_file: {} does not exist",
            kek.display()
        )),
        "{line}"
    );
    assert!(!kek.exists(), "no new key-encryption key beside sealed keys");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `steward serve` and the lines it printed at start.
struct Server {
    child: Child,
    summary: Vec<String>,
}

impl Server {
    fn start(dir: &Path, config: &str) -> Server {
        let mut child = steward(dir, &["--config", config, "serve"], &[])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut summary = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !summary.iter().any(|l: &String| l.contains("metadata:")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => summary.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("no start-up summary: {summary:?}");
                }
            }
        }
        Server { child, summary }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("steward did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_reply(mut stream: TcpStream) -> Reply {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body: body.to_owned(),
    };
    assert!(
        reply.header("transfer-encoding").is_none(),
        "chunked replies are not expected here"
    );
    reply
}

fn get(port: u16, path: &str) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_reply(stream)
}

fn serve_config(dir: &Path, port: u16) -> String {
    write(
        dir,
        "steward.toml",
        &format!(
            "issuer = \"http://127.0.0.1:{port}/tenant1\"\nlisten = \"127.0.0.1:{port}\"\n\
             [database]\nurl = \"sqlite://{0}/steward.db\"\n[keys]\nencryption_key_file = \"{0}/kek\"\n",
            dir.display()
        ),
    )
}

#[test]
fn serves_shuts_down_gracefully_and_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = serve_config(dir.path(), port);
    let issuer = format!("http://127.0.0.1:{port}/tenant1");
    let server = Server::start(dir.path(), &config);
    let metadata_line =
        format!("  metadata: http://127.0.0.1:{port}/.well-known/oauth-authorization-server/tenant1");
    assert!(
        server.summary.contains(&metadata_line),
        "the summary names the path-inserted metadata URL: {:?}",
        server.summary
    );

    let meta = get(port, "/.well-known/oauth-authorization-server/tenant1");
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(meta.header("content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_str(&meta.body).unwrap();
    assert_eq!(doc["issuer"].as_str(), Some(issuer.as_str()), "byte for byte");
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{issuer}/jwks.json"));

    let jwks = get(port, "/tenant1/jwks.json");
    assert_eq!(jwks.status, 200);
    let jwks: serde_json::Value = serde_json::from_str(&jwks.body).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    for m in PRIVATE_MEMBERS {
        assert!(keys[0].get(m).is_none(), "private member {m} served: {jwks}");
    }
    let kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert!(
        server
            .summary
            .iter()
            .any(|l| l.starts_with("  database: ") && l.ends_with("(created, migrations applied)")),
        "{:?}",
        server.summary
    );
    assert!(
        server
            .summary
            .iter()
            .any(|l| l.contains(&format!("kid={kid} (created)"))),
        "{:?}",
        server.summary
    );

    // An in-flight request: the head and half the body are in, then SIGTERM.
    let body = "grant_type=authorization_code&code=nope&client_id=nobody";
    let (first, rest) = body.split_at(20);
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        slow,
        "POST /tenant1/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    slow.write_all(rest.as_bytes()).unwrap();
    let reply = read_reply(slow);
    assert!(
        reply.status == 400 || reply.status == 401,
        "the in-flight request got its answer: {} {}",
        reply.status,
        reply.body
    );
    let error: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert!(error["error"].is_string(), "{}", reply.body);
    let status = server.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");

    // A restart keeps the key.
    let again = Server::start(dir.path(), &config);
    assert!(
        again
            .summary
            .iter()
            .any(|l| l.starts_with("  database: ") && l.ends_with("(opened, migrations applied)")),
        "{:?}",
        again.summary
    );
    assert!(
        again
            .summary
            .iter()
            .any(|l| l.contains(&format!("kid={kid} (loaded)"))),
        "{:?}",
        again.summary
    );
    let jwks = get(port, "/tenant1/jwks.json");
    let jwks: serde_json::Value = serde_json::from_str(&jwks.body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), Some(kid.as_str()));
    again.sigterm();
    assert_eq!(again.wait(Duration::from_secs(15)).code(), Some(0));
}

/// `[metrics] listen`: a private listener for the scraper, named in the
/// summary, stopped with the server; `--log-format json` writes one JSON
/// request line per request with the request id it returned.
#[test]
fn a_private_metrics_listener_and_json_request_lines() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let config = write(
        dir.path(),
        "steward.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [database]\nurl = \"sqlite://{0}/steward.db\"\n[keys]\nencryption_key_file = \"{0}/kek\"\n",
            dir.path().display()
        ),
    );
    let log = std::fs::File::create(dir.path().join("log.jsonl")).unwrap();
    let mut child = steward(
        dir.path(),
        &["--config", &config, "--log-format", "json", "serve"],
        &[],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut summary = Vec::new();
    while !summary.iter().any(|l: &String| l.contains("metadata:")) {
        summary.push(lines.next().unwrap().unwrap());
    }
    let server = Server { child, summary };
    assert!(
        server
            .summary
            .iter()
            .any(|l| l.contains(&format!("metrics:  http://127.0.0.1:{metrics_port}/metrics"))),
        "{:?}",
        server.summary
    );
    let health = get(port, "/healthz");
    let request_id = health.header("x-request-id").unwrap().to_owned();
    assert_eq!(get(port, "/metrics").status, 404, "not on the public listener");
    let metrics = get(metrics_port, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("# HELP steward_http_requests_total HTTP requests answered"),
        "{}",
        metrics.body
    );
    assert_eq!(get(metrics_port, "/readyz").status, 200);
    server.sigterm();
    assert_eq!(server.wait(Duration::from_secs(15)).code(), Some(0));
    assert!(TcpStream::connect(("127.0.0.1", metrics_port)).is_err());

    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let line = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["message"] == "request" && l["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no request line for {request_id}: {log}"));
    assert_eq!(line["route"], "/healthz");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client_address"], "127.0.0.1");
    assert!(line["duration_ms"].is_number());
}

fn post_json(port: u16, path: &str, bearer: Option<&str>, body: &str) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_reply(stream)
}

/// Issue 14: an operator creates an initial access token with the CLI; a
/// real `steward serve` in protected mode accepts it exactly `--max-uses`
/// times; `dcr list` shows the registered client; a revoked token is refused.
#[test]
fn protected_registration_with_a_cli_initial_access_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = serve_config(dir.path(), port);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("default_scopes = [\"mcp:tools\"]\n{text}");
    text.push_str(
        "[dcr]\nmode = \"protected\"\n[[resources]]\nuri = \"https://mcp.example.com/mcp\"\nname = \"MCP\"\n\
         [resources.scopes]\n\"mcp:tools\" = \"Tools\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(dir.path(), &config);

    let out = steward(
        dir.path(),
        &[
            "--config",
            &config,
            "dcr",
            "tokens",
            "create",
            "--max-uses",
            "1",
            "--output",
            "json",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("stw_iat_"));

    let body = r#"{"client_name":"Agent","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}"#;
    assert_eq!(post_json(port, "/tenant1/register", None, body).status, 401);
    let reply = post_json(port, "/tenant1/register", Some(&token), body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reg: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        post_json(port, "/tenant1/register", Some(&token), body).status,
        401,
        "one use only"
    );

    let out = steward(dir.path(), &["--config", &config, "dcr", "list"], &[])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.lines().next().unwrap().starts_with("CLIENT_ID"),
        "{listed}"
    );
    assert!(
        listed.contains(&client_id) && listed.contains("127.0.0.1"),
        "{listed}"
    );

    let out = steward(
        dir.path(),
        &["--config", &config, "dcr", "tokens", "create", "--output", "json"],
        &[],
    )
    .output()
    .unwrap();
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = second["id"].as_str().unwrap();
    let out = steward(
        dir.path(),
        &["--config", &config, "dcr", "tokens", "revoke", id],
        &[],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = post_json(
        port,
        "/tenant1/register",
        Some(second["token"].as_str().unwrap()),
        body,
    );
    assert_eq!(refused.status, 401, "a revoked token is refused at once");
    let out = steward(dir.path(), &["--config", &config, "dcr", "tokens", "list"], &[])
        .output()
        .unwrap();
    let tokens = String::from_utf8_lossy(&out.stdout);
    assert!(tokens.contains("spent") && tokens.contains("revoked"), "{tokens}");
    drop(server);
}
