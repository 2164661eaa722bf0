//! `steward-loadgen`: see `steward-loadgen --help` and docs/benchmarks.md.
// A measurement tool: it times requests and waits on deadlines, which is
// elapsed monotonic time, not an expiry of anything Steward stores.
#![allow(clippy::disallowed_methods)]

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use steward_loadgen::bench::{BenchOptions, Setup, bench};
use steward_loadgen::http::Endpoint;
use steward_loadgen::seed::History;
use steward_loadgen::{Clients, Load, Scenario, Target, run, sys};

/// Load driver for Steward: complete OAuth flows on loopback.
#[derive(Debug, Parser)]
#[command(name = "steward-loadgen")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start release servers (SQLite/PostgreSQL, HTTP/TLS, empty/history) and run every scenario.
    Bench(BenchArgs),
    /// Load an already running server.
    Drive(DriveArgs),
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Concurrent keep-alive connections (one worker each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of untimed warm-up before each run.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Do not pin the driver to CPU 1 (by default, on a machine with two or
    /// more CPUs, the driver re-executes itself under `taskset -c 1`).
    #[arg(long)]
    no_pin: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// The release steward binary.
    #[arg(long, default_value = "target/release/steward")]
    steward: PathBuf,
    /// Setups to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite-http,sqlite-tls,postgres-http,postgres-tls,sqlite-history"
    )]
    setups: Vec<Setup>,
    /// Setups that also get a paced run at half their peak rate (latency
    /// target); `--half-peak` with no value for none.
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0.., default_value = "sqlite-http")]
    half_peak: Vec<Setup>,
    /// Scenarios to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "client-credentials,code-preregistered,code-cimd,refresh,introspect,metadata,register"
    )]
    scenarios: Vec<Scenario>,
    /// PostgreSQL server; a fresh `steward_bench` database is created on it and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// keys.algorithm of the server: ES256, EdDSA or RS256.
    #[arg(long, default_value = "ES256")]
    algorithm: String,
    /// History setups: clients seeded.
    #[arg(long, default_value_t = 100_000)]
    history_clients: u64,
    /// History setups: access tokens seeded.
    #[arg(long, default_value_t = 1_000_000)]
    history_tokens: u64,
    /// Also write every run as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Start the server under this command instead of `taskset -c 0`, e.g.
    /// "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out".
    #[arg(long)]
    server_prefix: Option<String>,
    /// Stop each run after this many operations (instead of --duration), for profiles.
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Debug, Args)]
struct DriveArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Base URL of the server (its issuer), loopback only, e.g. http://127.0.0.1:8080
    #[arg(long)]
    target: String,
    /// PEM CA certificate to trust for an https target.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Scenarios to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "client-credentials")]
    scenarios: Vec<Scenario>,
    /// Stop after this many operations instead of after --duration.
    #[arg(long)]
    count: Option<u64>,
    /// Pace at this many operations per second (closed loop when absent).
    #[arg(long)]
    rate: Option<f64>,
    /// Server process to sample for peak RSS and CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Confidential client (client_credentials, introspection).
    #[arg(long, default_value = "bench")]
    client_id: String,
    /// Environment variable holding that client's secret.
    #[arg(long, default_value = "STEWARD_BENCH_SECRET")]
    secret_env: String,
    /// Pre-registered public client with authorization_code and refresh_token.
    #[arg(long, default_value = "public-app")]
    public_client_id: String,
    #[arg(long, default_value = "https://app.example/cb")]
    redirect_uri: String,
    /// A metadata-document client id (https URL) the server can fetch.
    #[arg(long)]
    cimd_client_id: Option<String>,
    #[arg(long, default_value = "https://app.example/cb")]
    cimd_redirect_uri: String,
}

/// On a machine with two or more CPUs the driver runs on CPU 1 and the
/// server on CPU 0, so neither steals the other's cycles. Re-executing under
/// taskset keeps `unsafe` (sched_setaffinity) out of the tree.
fn pin_self(no_pin: bool) -> Option<ExitCode> {
    const MARK: &str = "STEWARD_LOADGEN_PINNED";
    if no_pin || sys::online_cpus() < 2 || std::env::var_os(MARK).is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = std::process::Command::new("taskset")
        .args(["-c", "1"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .status();
    match status {
        Ok(s) => Some(ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1))),
        Err(e) => {
            eprintln!("steward-loadgen: taskset unavailable ({e}); running unpinned");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let no_pin = match &cli.command {
        Command::Bench(a) => a.load.no_pin,
        Command::Drive(a) => a.load.no_pin,
    };
    if let Some(code) = pin_self(no_pin) {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("steward-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Bench(a) => run_bench(a).await,
            Command::Drive(a) => drive(a).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("steward-loadgen: some requests failed (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("steward-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_bench(a: BenchArgs) -> Result<bool> {
    let pin = !a.load.no_pin && sys::online_cpus() >= 2;
    bench(BenchOptions {
        steward: a.steward,
        setups: a.setups,
        scenarios: a.scenarios,
        concurrency: a.load.concurrency,
        duration: Duration::from_secs_f64(a.load.duration),
        warmup: Duration::from_secs_f64(a.load.warmup),
        half_peak: a.half_peak,
        postgres_url: a.postgres_url,
        algorithm: a.algorithm,
        history: History {
            clients: a.history_clients,
            tokens: a.history_tokens,
        },
        pin,
        server_prefix: a
            .server_prefix
            .map(|p| p.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        count: a.count,
        json_out: a.json_out,
    })
    .await
}

async fn drive(a: DriveArgs) -> Result<bool> {
    let ca = a
        .ca_file
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let endpoint = Endpoint::from_url(&a.target, ca.as_deref())?;
    let secret = std::env::var(&a.secret_env).unwrap_or_default();
    let target = Arc::new(Target::new(
        endpoint,
        Clients {
            confidential_id: a.client_id,
            confidential_secret: secret,
            public_id: a.public_client_id,
            public_redirect: a.redirect_uri,
            cimd_id: a.cimd_client_id,
            cimd_redirect: a.cimd_redirect_uri,
        },
    )?);
    println!(
        "driver on CPUs {}; server pid {}",
        sys::cpus_allowed(None).unwrap_or_default(),
        a.server_pid.map_or_else(
            || "unknown".to_owned(),
            |p| format!("{p} on CPUs {}", sys::cpus_allowed(Some(p)).unwrap_or_default())
        )
    );
    let mut clean = true;
    for scenario in a.scenarios {
        let load = Load {
            concurrency: a.load.concurrency,
            duration: if a.count.is_some() {
                None
            } else {
                Some(Duration::from_secs_f64(a.load.duration))
            },
            count: a.count,
            rate: a.rate,
            warmup: Duration::from_secs_f64(a.load.warmup),
        };
        let r = run(Arc::clone(&target), scenario, &load, a.server_pid).await?;
        println!("{}", serde_json::to_string(&r)?);
        if r.errors > 0 {
            clean = false;
            eprintln!(
                "{} errors; first: {}",
                r.errors,
                r.first_error.unwrap_or_default()
            );
        }
    }
    Ok(clean)
}
