//! The interop orchestrator (run by tests/interop/run.sh, which installs the
//! pinned Node and Python clients first).
//!
//! It builds the world the clients need, all on loopback: a test CA; an HTTPS
//! host on 127.0.0.2 serving each client's Client ID Metadata Document under
//! `clients.interop.test`, a name only the harness's own nameserver resolves;
//! two Steward servers (`steward serve --config`), one that makes the user go
//! through the real login and consent forms and one with `[dev]
//! auto_approve_user`; and one example MCP server protected by each. Then it
//! runs every third-party client, acts as the browser for the authorization
//! URLs they print, and gates on their exit status. The MCP clients run twice:
//! once with a metadata document (or pre-registered) client id, once in
//! Dynamic Client Registration mode (RFC 7591, the stacks keep the default
//! `[dcr] mode = "open"`), where each registers at `/register` first and
//! checks it got a `dcr_` client id; `mcp-remote` runs in DCR mode only. A
//! summary table and a closing `N passed, N failed` line end the run.
// A measurement tool: it times requests and waits on deadlines, which is
// elapsed monotonic time, not an expiry of anything Steward stores.
#![allow(clippy::disallowed_methods)]

mod browser;
mod http;
mod runner;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use browser::{Browser, Mode};
use runner::ClientRun;

const DOC_HOST: &str = "clients.interop.test";
const DOC_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const USER: &str = "alice";
const SCOPE: &str = "mcp:tools";
const PREREGISTERED: &str = "conformance-public";
const INTROSPECTOR: &str = "interop-introspector";
const INTROSPECTOR_SECRET_ENV: &str = "STEWARD_CLIENT_INTEROP_INTROSPECTOR_SECRET";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser, Debug)]
#[command(about = "Drive third-party MCP and OAuth clients against Steward")]
struct Args {
    /// The tests/interop directory (client scripts, node_modules, .cache).
    #[arg(long)]
    dir: PathBuf,
    /// The `steward` binary.
    #[arg(long)]
    steward: PathBuf,
    /// The `steward-example-mcp-server` binary.
    #[arg(long)]
    example: PathBuf,
    /// Node 22 or newer (the conformance suite needs it).
    #[arg(long)]
    node: PathBuf,
    /// Python of the venv with mcp 2.3.0 and authlib 1.9.
    #[arg(long)]
    python_mcp2: PathBuf,
    /// Python of the venv with mcp 1.30.0.
    #[arg(long)]
    python_mcp1: PathBuf,
    /// Run only the clients whose names contain one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    // Children run in other directories: make every path absolute first.
    for path in [
        &mut args.dir,
        &mut args.steward,
        &mut args.example,
        &mut args.node,
        &mut args.python_mcp2,
        &mut args.python_mcp1,
    ] {
        match std::path::absolute(&*path) {
            Ok(abs) => *path = abs,
            Err(e) => {
                eprintln!("interop: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("interop: setup failed: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The clients that fetch a metadata document, one document each.
const CIMD_CLIENTS: &[(&str, &str)] = &[
    ("node-sdk", "MCP TypeScript SDK interop client"),
    ("python-mcp2", "MCP Python SDK 2.x interop client"),
    ("python-mcp1", "MCP Python SDK 1.x interop client"),
    ("conformance", "MCP conformance suite"),
    ("oauth4webapi", "oauth4webapi strict client"),
    ("authlib", "authlib client"),
];

async fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    let dir = args.dir.clone();
    let work = dir.join(".cache").join("run");
    if work.exists() {
        std::fs::remove_dir_all(&work).context("clearing the previous run")?;
    }
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;

    // Metadata documents over real TLS from a name resolved by our own nameserver.
    let ca = TestCa::new();
    let ca_file = work.join("test-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem())?;
    let nameserver = TestNameserver::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    nameserver.set(DOC_HOST, vec![IpAddr::V4(DOC_IP)]);
    let docs = DocumentHost::start(IpAddr::V4(DOC_IP), &ca, &[DOC_HOST]).await;
    let mut cimd = std::collections::BTreeMap::new();
    for (name, title) in CIMD_CLIENTS {
        let path = format!("/{name}.json");
        let client_id = docs.url(DOC_HOST, &path);
        let doc = json!({
            "client_id": client_id,
            "client_name": title,
            // Port-less loopback: real clients come back on an ephemeral port.
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        docs.set(
            &path,
            TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=600"),
        );
        cimd.insert(*name, client_id);
    }

    let password = random_hex(12)?;
    let introspector_secret = random_hex(24)?;
    let [sa, sb, ea, eb] = free_ports::<4>()?;
    let forms = Stack::start(
        &args,
        &work,
        "forms",
        sa,
        ea,
        Mode::Forms,
        &ca_file,
        nameserver.addr(),
        &password,
        &introspector_secret,
    )
    .await
    .context("starting the login+consent stack")?;
    let auto = Stack::start(
        &args,
        &work,
        "auto",
        sb,
        eb,
        Mode::AutoApprove,
        &ca_file,
        nameserver.addr(),
        &password,
        &introspector_secret,
    )
    .await
    .context("starting the auto-approve stack")?;
    println!(
        "interop: setup done in {:.1}s (Steward {} with forms, {} with dev auto-approve; documents at https://{DOC_HOST}:{})",
        started.elapsed().as_secs_f64(),
        forms.issuer.as_str().trim_end_matches('/'),
        auto.issuer.as_str().trim_end_matches('/'),
        docs.addr().port()
    );

    let clients_dir = dir.join("clients");
    let conformance_js = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let cimd_id = |name: &str| cimd.get(name).cloned().unwrap_or_default();
    let node_script = |s: &str| clients_dir.join(s).display().to_string();
    // A client script run against one stack, which also plays its browser.
    let script = |name: &str, what: &str, program: &PathBuf, file: &str, stack: &Stack, env| ClientRun {
        name: name.into(),
        what: what.into(),
        program: program.clone(),
        args: vec![node_script(file)],
        env,
        cwd: dir.clone(),
        browser: Some(stack.browser(&password)),
        min_authorizations: 1,
        timeout: CLIENT_TIMEOUT,
    };
    let with = |mut env: Vec<(String, String)>, extra: &[(&str, String)]| {
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    let path = |p: PathBuf| p.display().to_string();
    let [dcr_callback_port] = free_ports::<1>()?;
    let mut runs = vec![
        script(
            "node-sdk",
            "@modelcontextprotocol/sdk 1.32.2 auth() + StreamableHTTP, tool echo",
            &args.node,
            "node_sdk.mjs",
            &forms,
            forms.client_env(&cimd_id("node-sdk")),
        ),
        script(
            "python-mcp-2.3.0",
            "mcp 2.3.0 OAuthClientProvider(client_metadata_url), tool echo",
            &args.python_mcp2,
            "python_sdk.py",
            &forms,
            forms.client_env(&cimd_id("python-mcp2")),
        ),
        script(
            "python-mcp-1.30.0",
            "mcp 1.30.0 OAuthClientProvider(client_metadata_url), tool echo",
            &args.python_mcp1,
            "python_sdk.py",
            &auto,
            auto.client_env(&cimd_id("python-mcp1")),
        ),
        conformance_run(
            "conformance-cimd",
            &args,
            &conformance_js,
            &forms,
            &cimd_id("conformance"),
            &work,
            &password,
        )?,
        conformance_run(
            "conformance-preregistered",
            &args,
            &conformance_js,
            &auto,
            PREREGISTERED,
            &work,
            &password,
        )?,
        // Dynamic Client Registration (RFC 7591, `[dcr] mode = "open"`, the
        // default): no metadata document, no pre-registered id; each client
        // registers itself (or, for the conformance suite, is registered the
        // way its operator would) and checks it got a `dcr_` id.
        script(
            "node-sdk-dcr",
            "@modelcontextprotocol/sdk 1.32.2 auth() registering by DCR, tool echo",
            &args.node,
            "node_sdk.mjs",
            &forms,
            forms.dcr_env(),
        ),
        script(
            "python-mcp-2.3.0-dcr",
            "mcp 2.3.0 OAuthClientProvider registering by DCR, tool echo",
            &args.python_mcp2,
            "python_sdk.py",
            &auto,
            auto.dcr_env(),
        ),
        script(
            "python-mcp-1.30.0-dcr",
            "mcp 1.30.0 OAuthClientProvider registering by DCR, tool echo",
            &args.python_mcp1,
            "python_sdk.py",
            &forms,
            forms.dcr_env(),
        ),
        script(
            "conformance-dcr",
            "@modelcontextprotocol/conformance 0.2.0-alpha.12 authorization, client registered by DCR",
            &args.node,
            "conformance_dcr.mjs",
            &forms,
            with(
                forms.dcr_env(),
                &[
                    ("INTEROP_CALLBACK_PORT", dcr_callback_port.to_string()),
                    ("INTEROP_CONFORMANCE_JS", path(conformance_js.clone())),
                    ("INTEROP_OUTPUT_DIR", path(work.join("conformance-dcr"))),
                ],
            ),
        ),
        script(
            "mcp-remote-dcr",
            "mcp-remote 0.15.1 stdio proxy registering by DCR; host calls tool echo over stdio",
            &args.node,
            "mcp_remote.mjs",
            &forms,
            with(
                forms.dcr_env(),
                &[
                    (
                        "INTEROP_MCP_REMOTE_JS",
                        path(dir.join("node_modules/mcp-remote/dist/proxy.js")),
                    ),
                    ("INTEROP_STATE_DIR", path(work.join("mcp-remote"))),
                ],
            ),
        ),
        script(
            "oauth4webapi",
            "oauth4webapi 3.8.8: discovery, iss, PKCE, token, refresh, introspect, revoke",
            &args.node,
            "oauth4webapi.mjs",
            &forms,
            with(
                forms.client_env(&cimd_id("oauth4webapi")),
                &[
                    ("INTEROP_INTROSPECT_ID", INTROSPECTOR.to_owned()),
                    ("INTEROP_INTROSPECT_SECRET", introspector_secret.clone()),
                ],
            ),
        ),
        script(
            "authlib",
            "authlib 1.9.6: RFC 8414 metadata + RFC 9068 token validators",
            &args.python_mcp2,
            "authlib_check.py",
            &auto,
            auto.client_env(&cimd_id("authlib")),
        ),
    ];
    if !args.only.is_empty() {
        runs.retain(|r| args.only.iter().any(|o| r.name.contains(o.as_str())));
    }

    let mut outcomes = Vec::new();
    for spec in runs {
        println!(
            "interop: running {} ({})",
            spec.name,
            runner::mode_name(spec.browser.as_ref())
        );
        let outcome = runner::run(spec, &logs).await;
        if !outcome.passed {
            println!("interop: {} FAILED: {}", outcome.name, outcome.note);
            print_tail(&outcome.log, 40);
        }
        outcomes.push(outcome);
    }
    forms.stop().await;
    auto.stop().await;

    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed = outcomes.len() - passed;
    println!();
    println!(
        "{:<27} {:<20} {:<6} {:>6}  what",
        "client", "browser", "result", "secs"
    );
    for o in &outcomes {
        println!(
            "{:<27} {:<20} {:<6} {:>6.1}  {}",
            o.name,
            o.mode,
            if o.passed { "pass" } else { "FAIL" },
            o.seconds,
            o.what
        );
    }
    println!("logs: {}", logs.display());
    println!("interop total {:.1}s", started.elapsed().as_secs_f64());
    println!("interop: {passed} passed, {failed} failed");
    Ok(failed == 0 && passed > 0)
}

fn conformance_run(
    name: &str,
    args: &Args,
    js: &Path,
    stack: &Stack,
    client_id: &str,
    work: &Path,
    password: &str,
) -> Result<ClientRun> {
    let [port] = free_ports::<1>()?;
    let out = work.join(name);
    Ok(ClientRun {
        name: name.into(),
        what: format!(
            "@modelcontextprotocol/conformance 0.2.0-alpha.12 authorization, client {}",
            if client_id.starts_with("https://") {
                "metadata document"
            } else {
                "pre-registered"
            }
        ),
        program: args.node.clone(),
        args: vec![
            js.display().to_string(),
            "authorization".into(),
            "--url".into(),
            stack.issuer.as_str().trim_end_matches('/').to_owned(),
            "--client-id".into(),
            client_id.into(),
            "--resource".into(),
            stack.resource.clone(),
            "--port".into(),
            port.to_string(),
            "--output-dir".into(),
            out.display().to_string(),
        ],
        env: Vec::new(),
        cwd: args.dir.clone(),
        browser: Some(stack.browser(password)),
        min_authorizations: 1,
        timeout: CLIENT_TIMEOUT,
    })
}

/// One Steward and the example MCP server it protects.
struct Stack {
    issuer: Url,
    resource: String,
    mcp_url: String,
    mode: Mode,
    steward: Child,
    example: Child,
}

impl Stack {
    #[allow(clippy::too_many_arguments)]
    async fn start(
        args: &Args,
        work: &Path,
        label: &str,
        steward_port: u16,
        example_port: u16,
        mode: Mode,
        ca_file: &Path,
        nameserver: SocketAddr,
        password: &str,
        introspector_secret: &str,
    ) -> Result<Stack> {
        let dir = work.join(format!("steward-{label}"));
        std::fs::create_dir_all(&dir)?;
        let issuer = format!("http://127.0.0.1:{steward_port}");
        let example_listen = format!("127.0.0.1:{example_port}");
        let resource = format!("http://{example_listen}/mcp");
        let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let dev = if mode == Mode::AutoApprove {
            format!("\n[dev]\nauto_approve_user = {}\n", q(USER))
        } else {
            String::new()
        };
        let config = format!(
            r#"# Written by the interop orchestrator.
issuer = {issuer_q}
listen = {listen_q}
default_resource = {resource_q}
default_scopes = [{scope_q}]

[database]
url = {db_q}

[keys]
encryption_key_file = {kek_q}

# Spelled out although it is the default: the `*-dcr` runs register here.
[dcr]
mode = "open"

[egress]
allow_networks = ["127.0.0.2/32"]
extra_root_certs = [{ca_q}]
dns_servers = [{ns_q}]

[[resources]]
uri = {resource_q}
name = "Interop example MCP server"
scopes = {{ {scope_q} = "Use the example server's tools" }}
introspection_clients = [{introspector_q}]

[[clients]]
client_id = {prereg_q}
name = "MCP conformance suite (pre-registered public client)"
grant_types = ["authorization_code", "refresh_token"]
scopes = [{scope_q}]
redirect_uris = ["http://127.0.0.1/callback"]

[[clients]]
client_id = {introspector_q}
name = "Interop introspection caller"
secret_env = {secret_env_q}
grant_types = ["client_credentials"]
{dev}"#,
            issuer_q = q(&issuer),
            listen_q = q(&format!("127.0.0.1:{steward_port}")),
            resource_q = q(&resource),
            scope_q = q(SCOPE),
            db_q = q(&format!("sqlite://{}", dir.join("steward.db").display())),
            kek_q = q(&dir.join("kek").display().to_string()),
            ca_q = q(&ca_file.display().to_string()),
            ns_q = q(&nameserver.to_string()),
            introspector_q = q(INTROSPECTOR),
            prereg_q = q(PREREGISTERED),
            secret_env_q = q(INTROSPECTOR_SECRET_ENV),
        );
        let config_file = dir.join("steward.toml");
        std::fs::write(&config_file, config)?;

        // `steward users add NAME` reads the password from standard input.
        let mut add = std::process::Command::new(&args.steward)
            .arg("--config")
            .arg(&config_file)
            .args(["users", "add", USER])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running steward users add")?;
        if let Some(mut stdin) = add.stdin.take() {
            writeln!(stdin, "{password}")?;
        }
        let output = add.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "steward users add failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }

        let log = std::fs::File::create(work.join("logs").join(format!("steward-{label}.log")))?;
        let steward = Command::new(&args.steward)
            .arg("--config")
            .arg(&config_file)
            .arg("serve")
            .env(INTROSPECTOR_SECRET_ENV, introspector_secret)
            .env("STEWARD_LOG", "info")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting steward serve")?;
        let mut stack_steward = steward;
        let ready = Url::parse(&format!("{issuer}/readyz"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http::is_ok(&ready).await {
            if let Some(status) = stack_steward.try_wait()? {
                bail!("steward serve exited with {status}; see logs/steward-{label}.log");
            }
            if Instant::now() > deadline {
                bail!("steward serve not ready after 60s; see logs/steward-{label}.log");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let mut example = Command::new(&args.example)
            .args([
                "--listen",
                &example_listen,
                "--issuer",
                &issuer,
                "--resource",
                &resource,
            ])
            .args(["--scope", SCOPE])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the example MCP server")?;
        let example_log = work.join("logs").join(format!("example-{label}.log"));
        let mut log = tokio::fs::File::create(&example_log).await?;
        if let Some(err) = example.stderr.take() {
            let mut errlog =
                tokio::fs::File::create(work.join("logs").join(format!("example-{label}.stderr.log")))
                    .await?;
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut BufReader::new(err), &mut errlog).await;
            });
        }
        let stdout = example.stdout.take().context("example stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let wait = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                log.write_all(format!("{line}\n").as_bytes()).await?;
                if line.starts_with("listening on http://") {
                    return Ok::<_, std::io::Error>(Some(line));
                }
            }
            Ok(None)
        })
        .await;
        match wait {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                bail!("the example MCP server exited before listening; see logs/example-{label}*.log")
            }
            Ok(Err(e)) => bail!("reading the example server's output: {e}"),
            Err(_) => bail!("the example MCP server did not print `listening on` within 30s"),
        }
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            }
        });

        Ok(Stack {
            issuer: Url::parse(&issuer)?,
            mcp_url: resource.clone(),
            resource,
            mode,
            steward: stack_steward,
            example,
        })
    }

    fn browser(&self, password: &str) -> Browser {
        Browser {
            issuer: self.issuer.clone(),
            username: USER.into(),
            password: password.into(),
            mode: self.mode,
        }
    }

    /// What every client script is told.
    fn client_env(&self, client_id: &str) -> Vec<(String, String)> {
        vec![
            (
                "INTEROP_ISSUER".into(),
                self.issuer.as_str().trim_end_matches('/').to_owned(),
            ),
            ("INTEROP_MCP_URL".into(), self.mcp_url.clone()),
            ("INTEROP_RESOURCE".into(), self.resource.clone()),
            ("INTEROP_CLIENT_ID".into(), client_id.into()),
            ("INTEROP_SCOPE".into(), SCOPE.into()),
        ]
    }

    /// What a client script is told in DCR mode: no client id; it registers.
    fn dcr_env(&self) -> Vec<(String, String)> {
        let mut env = self.client_env("");
        env.retain(|(k, _)| k != "INTEROP_CLIENT_ID");
        env.push(("INTEROP_REGISTRATION".into(), "dcr".into()));
        env
    }

    async fn stop(mut self) {
        for child in [&mut self.example, &mut self.steward] {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// `N` distinct free loopback ports: bound together, read, released.
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (slot, l) in ports.iter_mut().zip(&listeners) {
        *slot = l.local_addr()?.port();
    }
    Ok(ports)
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn print_tail(path: &Path, lines: usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    println!("---- last lines of {}", path.display());
    for line in &all[start..] {
        println!("    {line}");
    }
    println!("----");
}
