//! The whole benchmark, orchestrated: for each setup (SQLite or PostgreSQL,
//! plain HTTP or Steward's own TLS listener, empty or with history) write a
//! configuration, create the user and database, start the release `steward
//! serve` pinned to CPU 0, and run every scenario against it — first closed
//! loop for the peak rate, then paced at half that rate for latency.
//!
//! Everything the server needs from outside lives on loopback in this
//! process: the metadata document is served over HTTPS on 127.0.0.2 by the
//! testkit's document host with a certificate from a throwaway CA, and the
//! name `cimd.test` resolves through the testkit's nameserver on 127.0.0.1.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use steward_core::Clock;
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

use crate::http::{Conn, Endpoint};
use crate::run::{Load, Report, run};
use crate::scenario::{Clients, Scenario, Target};
use crate::seed::{self, History};
use crate::sys;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const REDIRECT: &str = "https://app.example/cb";
const SECRET_ENV: &str = "STEWARD_BENCH_SECRET";
const PG_DATABASE: &str = "steward_bench";

/// One server configuration to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setup {
    SqliteHttp,
    SqliteTls,
    PostgresHttp,
    PostgresTls,
    /// SQLite, plain HTTP, with history seeded before the server starts.
    SqliteHistory,
    /// PostgreSQL, plain HTTP, with history seeded.
    PostgresHistory,
}

impl Setup {
    fn postgres(self) -> bool {
        matches!(
            self,
            Setup::PostgresHttp | Setup::PostgresTls | Setup::PostgresHistory
        )
    }
    fn tls(self) -> bool {
        matches!(self, Setup::SqliteTls | Setup::PostgresTls)
    }
    fn history(self) -> bool {
        matches!(self, Setup::SqliteHistory | Setup::PostgresHistory)
    }
    /// The empty-database setup a history setup is compared with.
    fn baseline(self) -> Option<Setup> {
        match self {
            Setup::SqliteHistory => Some(Setup::SqliteHttp),
            Setup::PostgresHistory => Some(Setup::PostgresHttp),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Setup::SqliteHttp => "sqlite, http",
            Setup::SqliteTls => "sqlite, tls",
            Setup::PostgresHttp => "postgres, http",
            Setup::PostgresTls => "postgres, tls",
            Setup::SqliteHistory => "sqlite, http, history",
            Setup::PostgresHistory => "postgres, http, history",
        }
    }
}

/// Options of `steward-loadgen bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub steward: PathBuf,
    pub setups: Vec<Setup>,
    pub scenarios: Vec<Scenario>,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Setups that also get a paced run at half their peak rate.
    pub half_peak: Vec<Setup>,
    pub postgres_url: String,
    pub algorithm: String,
    pub history: History,
    /// Pin the server to CPU 0 with taskset.
    pub pin: bool,
    /// Run the server under this command instead (e.g. `valgrind
    /// --tool=callgrind`), for profiles taken with the very same setup.
    pub server_prefix: Vec<String>,
    /// Operations per run instead of `duration` (profiles).
    pub count: Option<u64>,
    pub json_out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    setup: Setup,
    /// "peak" or "half-peak".
    mode: &'static str,
    #[serde(flatten)]
    report: Report,
}

/// Loopback fixtures shared by every setup.
struct Fixtures {
    ca: TestCa,
    _host: DocumentHost,
    ns: TestNameserver,
    dir: tempfile::TempDir,
    cimd_id: String,
}

impl Fixtures {
    async fn start() -> Result<Fixtures> {
        let ca = TestCa::new();
        let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>()?, &ca, &["cimd.test"]).await;
        let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>()?).await;
        ns.set("cimd.test", vec!["127.0.0.2".parse()?]);
        let cimd_id = host.url("cimd.test", "/client.json");
        let doc = serde_json::json!({
            "client_id": cimd_id,
            "client_name": "Bench metadata-document client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        });
        // Fresh for an hour: every authorization after the first is a cache hit.
        host.set(
            "/client.json",
            TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
        );
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem())?;
        Ok(Fixtures {
            ca,
            _host: host,
            ns,
            dir,
            cimd_id,
        })
    }
}

/// A running `steward serve`, killed when dropped.
struct Server {
    child: Child,
    pid: u32,
    base: String,
    dir: tempfile::TempDir,
    pg_database: bool,
}

impl Drop for Server {
    /// SIGTERM first, so the server shuts down as in production (and a
    /// profiler wrapping it can write its output); SIGKILL after 30 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn config_toml(port: u16, db: &str, dir: &Path, fx: &Fixtures, opts: &BenchOptions, tls: bool) -> String {
    let algorithm = opts.algorithm.as_str();
    let p = |name: &str| toml_str(&dir.join(name).display().to_string());
    let mut t = String::new();
    let _ = writeln!(t, "listen = \"127.0.0.1:{port}\"");
    let _ = writeln!(t, "default_resource = {}", toml_str(RESOURCE));
    let _ = writeln!(t, "default_scopes = [\"mcp:tools\"]\n");
    let _ = writeln!(t, "[database]\nurl = {}\n", toml_str(db));
    let _ = writeln!(
        t,
        "[keys]\nalgorithm = {}\nencryption_key_file = {}\n",
        toml_str(algorithm),
        p("kek")
    );
    let _ = writeln!(
        t,
        "[egress]\nallow_networks = [\"127.0.0.2/32\"]\nextra_root_certs = [{}]\ndns_servers = [\"{}\"]\n",
        toml_str(&fx.dir.path().join("ca.pem").display().to_string()),
        fx.ns.addr()
    );
    let _ = writeln!(t, "[dev]\nauto_approve_user = \"alice\"\n");
    if opts.scenarios.contains(&Scenario::Register) {
        // The registration rate limits exist to stop sprawl, not to measure:
        // raised so the run measures the registration path itself. (Written
        // only when registering, so a build without [dcr] still starts.)
        let _ = writeln!(
            t,
            "[dcr]\nmode = \"open\"\n[dcr.rate_limit]\nper_address_per_minute = 100000000\n\
             global_per_minute = 100000000\n"
        );
    }
    if tls {
        let _ = writeln!(
            t,
            "[tls]\ncert_file = {}\nkey_file = {}\n",
            p("tls.pem"),
            p("tls.key")
        );
    }
    let _ = writeln!(
        t,
        "[[resources]]\nuri = {}\nname = \"Bench MCP\"\nintrospection_clients = [\"bench\"]\n\
         [resources.scopes]\n\"mcp:tools\" = \"Use the server's tools\"\n",
        toml_str(RESOURCE)
    );
    let _ = writeln!(
        t,
        "[[clients]]\nclient_id = \"public-app\"\nname = \"Bench public app\"\n\
         grant_types = [\"authorization_code\", \"refresh_token\"]\nredirect_uris = [{}]\n",
        toml_str(REDIRECT)
    );
    let _ = writeln!(
        t,
        "[[clients]]\nclient_id = \"bench\"\nname = \"Bench service\"\nsecret_env = \"{SECRET_ENV}\"\n\
         grant_types = [\"client_credentials\"]\nscopes = [\"mcp:tools\"]"
    );
    t
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn start_server(opts: &BenchOptions, fx: &Fixtures, setup: Setup, secret: &str) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    if setup.tls() {
        let (cert, key) = fx.ca.leaf_pem(&["127.0.0.1"]);
        std::fs::write(dir.path().join("tls.pem"), cert)?;
        std::fs::write(dir.path().join("tls.key"), key)?;
    }
    let db = if setup.postgres() {
        seed::create_database(&opts.postgres_url, PG_DATABASE).await?
    } else {
        format!("sqlite://{}/steward.db", dir.path().display())
    };
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, config_toml(port, &db, dir.path(), fx, opts, setup.tls()))?;

    // The dev auto-approve user must exist before the server starts; this
    // also applies the migrations, which the history seed relies on.
    let mut add = Command::new(&opts.steward)
        .arg("--config")
        .arg(&config)
        .args(["users", "add", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", opts.steward.display()))?;
    if let Some(mut stdin) = add.stdin.take() {
        stdin.write_all(b"bench-password-0123456789\n")?;
    }
    let out = add.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "steward users add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if setup.history() {
        let t = std::time::Instant::now();
        eprintln!(
            "seeding {} clients and {} access tokens…",
            opts.history.clients, opts.history.tokens
        );
        seed::seed(&db, opts.history, steward_core::SystemClock.now().seconds()).await?;
        eprintln!("seeded in {:.1} s", t.elapsed().as_secs_f64());
    }

    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut cmd = if let Some((program, args)) = opts.server_prefix.split_first() {
        let mut c = Command::new(program);
        c.args(args).arg(&opts.steward);
        c
    } else if opts.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&opts.steward);
        c
    } else {
        Command::new(&opts.steward)
    };
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env(SECRET_ENV, secret)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = cmd.spawn().context("starting steward serve")?;
    // taskset (and valgrind) exec or host the server in the child's pid.
    let pid = child.id();
    let scheme = if setup.tls() { "https" } else { "http" };
    let server = Server {
        child,
        pid,
        base: format!("{scheme}://127.0.0.1:{port}"),
        dir,
        pg_database: setup.postgres(),
    };
    wait_ready(&server, fx).await?;
    Ok(server)
}

async fn wait_ready(server: &Server, fx: &Fixtures) -> Result<()> {
    let ep = Endpoint::from_url(&server.base, Some(fx.ca.cert_pem().as_bytes()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let mut conn = Conn::new(ep.clone());
        if let Ok(r) = conn.send(http::Method::GET, "/readyz", &[], None).await
            && r.status == http::StatusCode::OK
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            bail!("the server did not become ready within 180 s:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn fmt_ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn row_line(setup: Setup, mode: &str, r: &Report) -> String {
    format!(
        "| {} | {} | {} | {} {} | {} | {} | {} | {} | {} | {} | {} |",
        setup.label(),
        r.scenario.name(),
        mode,
        fmt_rate(r.rate),
        r.scenario.unit(),
        fmt_ms(r.p50_us),
        fmt_ms(r.p99_us),
        fmt_ms(r.max_us),
        r.errors,
        r.server_peak_rss_kib
            .map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
        r.server_cpu
            .map_or_else(|| "?".to_owned(), |c| format!("{:.0}%", c * 100.0)),
        server_us_per_op(r).map_or_else(|| "?".to_owned(), |us| format!("{us:.0}")),
    )
}

const HEADER: &str = "| setup | scenario | mode | rate | p50 ms | p99 ms | max ms | errors | server peak RSS MiB | server CPU | server CPU µs/op |\n|---|---|---|---|---|---|---|---|---|---|---|";

/// Server CPU time per operation: what one operation costs the server,
/// independent of how much of its core other processes took meanwhile.
/// `1e6 / this` is the rate one whole core would sustain.
fn server_us_per_op(r: &Report) -> Option<f64> {
    let cpu = r.server_cpu?;
    (r.rate > 0.0).then(|| cpu * 1e6 / r.rate)
}

/// Runs the benchmark; returns whether every run had zero errors.
pub async fn bench(opts: BenchOptions) -> Result<bool> {
    let fx = Fixtures::start().await?;
    let secret = steward_core::secret::random_token().expose().to_owned();
    println!("# steward-loadgen bench");
    println!("machine: {}", sys::machine());
    println!(
        "driver: CPUs {} ({} tokio workers); server: {}",
        sys::cpus_allowed(None).unwrap_or_default(),
        sys::usable_cpus(),
        if opts.pin {
            "pinned with `taskset -c 0`"
        } else {
            "not pinned"
        }
    );
    println!(
        "load: {} connections, {} s warm-up + {} s measured per run; signing algorithm {}",
        opts.concurrency,
        opts.warmup.as_secs_f64(),
        opts.duration.as_secs_f64(),
        opts.algorithm
    );
    println!();
    println!("{HEADER}");
    let mut rows: Vec<Row> = Vec::new();
    let mut clean = true;
    for &setup in &opts.setups {
        let server = start_server(&opts, &fx, setup, &secret).await?;
        if opts.pin {
            eprintln!(
                "{}: server pid {} on CPUs {}",
                setup.label(),
                server.pid,
                sys::cpus_allowed(Some(server.pid)).unwrap_or_default()
            );
        }
        let endpoint = Endpoint::from_url(&server.base, Some(fx.ca.cert_pem().as_bytes()))?;
        let target = Arc::new(Target::new(
            endpoint,
            Clients {
                confidential_id: "bench".to_owned(),
                confidential_secret: secret.clone(),
                public_id: "public-app".to_owned(),
                public_redirect: REDIRECT.to_owned(),
                cimd_id: Some(fx.cimd_id.clone()),
                cimd_redirect: REDIRECT.to_owned(),
            },
        )?);
        for &scenario in &opts.scenarios {
            let load = Load {
                concurrency: opts.concurrency,
                duration: if opts.count.is_some() {
                    None
                } else {
                    Some(opts.duration)
                },
                count: opts.count,
                rate: None,
                warmup: opts.warmup,
            };
            let peak = run(Arc::clone(&target), scenario, &load, Some(server.pid)).await?;
            println!("{}", row_line(setup, "peak", &peak));
            report_errors(&peak, &mut clean);
            let half = if opts.half_peak.contains(&setup) && peak.rate > 0.0 {
                let paced = Load {
                    rate: Some(peak.rate / 2.0),
                    ..load
                };
                let r = run(Arc::clone(&target), scenario, &paced, Some(server.pid)).await?;
                println!("{}", row_line(setup, "half peak", &r));
                report_errors(&r, &mut clean);
                Some(r)
            } else {
                None
            };
            rows.push(Row {
                setup,
                mode: "peak",
                report: peak,
            });
            if let Some(r) = half {
                rows.push(Row {
                    setup,
                    mode: "half-peak",
                    report: r,
                });
            }
        }
        let pg = server.pg_database;
        drop(server);
        if pg {
            seed::drop_database(&opts.postgres_url, PG_DATABASE).await?;
        }
    }
    println!();
    println!("{}", targets(&rows));
    println!("load average at the end: {}", sys::load_average());
    if let Some(path) = &opts.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(clean)
}

fn report_errors(r: &Report, clean: &mut bool) {
    if r.errors > 0 {
        *clean = false;
        eprintln!(
            "ERROR: {} errors in {}; first: {}",
            r.errors,
            r.scenario.name(),
            r.first_error.as_deref().unwrap_or("?")
        );
    }
}

/// The targets beside what was measured.
fn targets(rows: &[Row]) -> String {
    let find = |setup: Setup, mode: &str, s: Scenario| {
        rows.iter()
            .find(|r| r.setup == setup && r.mode == mode && r.report.scenario == s)
            .map(|r| &r.report)
    };
    let mut out = String::from(
        "## Targets (sqlite, plain HTTP, server on one core)\n\n| target | measured | met |\n|---|---|---|\n",
    );
    let mut line = |what: String, measured: String, ok: Option<bool>| {
        let met = match ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not measured",
        };
        let _ = writeln!(out, "| {what} | {measured} | {met} |");
    };
    let rate_target = |s: Scenario, min: f64| {
        let r = find(Setup::SqliteHttp, "peak", s);
        (
            format!("{} ≥ {min:.0} {}", s.name(), s.unit()),
            r.map_or_else(String::new, |r| {
                let full_core = server_us_per_op(r).map_or_else(String::new, |us| {
                    format!(
                        " ({:.0} µs server CPU each: {} on a whole core)",
                        us,
                        fmt_rate(1e6 / us)
                    )
                });
                format!("{} {}{full_core}", fmt_rate(r.rate), s.unit())
            }),
            r.map(|r| r.rate >= min),
        )
    };
    for (s, min) in [
        (Scenario::ClientCredentials, 15_000.0),
        (Scenario::CodePreregistered, 3_000.0),
        (Scenario::CodeCimd, 3_000.0),
        (Scenario::Refresh, 8_000.0),
    ] {
        let (a, b, c) = rate_target(s, min);
        line(a, b, c);
    }
    for s in Scenario::ALL {
        if let Some(r) = find(Setup::SqliteHttp, "half-peak", s) {
            line(
                format!("{} p99 < 5 ms at half peak", s.name()),
                format!(
                    "{} ms at {} {}",
                    fmt_ms(r.p99_us),
                    fmt_rate(r.target_rate.unwrap_or(0.0)),
                    s.unit()
                ),
                Some(r.p99_us < 5_000),
            );
        }
    }
    let peak_rss = rows
        .iter()
        .filter(|r| r.setup == Setup::SqliteHttp)
        .filter_map(|r| r.report.server_peak_rss_kib)
        .max();
    line(
        "server peak RSS < 64 MB (sqlite, http runs)".to_owned(),
        peak_rss.map_or_else(String::new, |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        peak_rss.map(|k| k < 64 * 1024),
    );
    for history in [Setup::SqliteHistory, Setup::PostgresHistory] {
        let Some(base) = history.baseline() else { continue };
        for s in Scenario::ALL {
            if let (Some(h), Some(b)) = (find(history, "peak", s), find(base, "peak", s)) {
                let ratio = if b.rate > 0.0 { h.rate / b.rate } else { 0.0 };
                line(
                    format!("{}: {} within 15% of empty", history.label(), s.name()),
                    format!(
                        "{} vs {} {} ({:+.1}%)",
                        fmt_rate(h.rate),
                        fmt_rate(b.rate),
                        s.unit(),
                        (ratio - 1.0) * 100.0
                    ),
                    Some(ratio >= 0.85),
                );
            }
        }
    }
    out
}
