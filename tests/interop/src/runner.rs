//! Runs one client program: captures its output to a log, watches it for an
//! authorization URL on Steward, hands each one to the browser, and gates on
//! the program's exit status.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{Mutex, mpsc};

use crate::browser::{Browser, Mode};

/// One client run.
pub struct ClientRun {
    pub name: String,
    pub what: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The browser serving this run's authorization URLs, if it needs one.
    pub browser: Option<Browser>,
    /// The least number of completed front-channel runs for a pass.
    pub min_authorizations: usize,
    pub timeout: Duration,
}

pub struct Outcome {
    pub name: String,
    pub what: String,
    pub mode: &'static str,
    pub passed: bool,
    pub seconds: f64,
    pub note: String,
    pub log: PathBuf,
}

pub fn mode_name(browser: Option<&Browser>) -> &'static str {
    match browser.map(|b| b.mode) {
        Some(Mode::Forms) => "login+consent forms",
        Some(Mode::AutoApprove) => "dev auto-approve",
        None => "no browser",
    }
}

pub async fn run(spec: ClientRun, logs: &Path) -> Outcome {
    let started = Instant::now();
    let log = logs.join(format!("{}.log", spec.name));
    let mode = mode_name(spec.browser.as_ref());
    let (passed, note) = match run_inner(&spec, &log).await {
        Ok(()) => (true, String::new()),
        Err(e) => (false, format!("{e:#}")),
    };
    Outcome {
        name: spec.name,
        what: spec.what,
        mode,
        passed,
        seconds: started.elapsed().as_secs_f64(),
        note,
        log,
    }
}

async fn run_inner(spec: &ClientRun, log: &Path) -> Result<()> {
    let file = tokio::fs::File::create(log)
        .await
        .with_context(|| format!("creating {}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", spec.program.display()))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let prefix = spec
        .browser
        .as_ref()
        .map(|b| format!("{}/authorize?", b.issuer.as_str().trim_end_matches('/')));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(
            out,
            Arc::clone(&file),
            prefix.clone(),
            tx.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(
            err,
            Arc::clone(&file),
            prefix.clone(),
            tx.clone(),
        )));
    }
    drop(tx);

    // A failed browser step ends the run at once: the client would otherwise
    // wait minutes for an authorization response that will never come.
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<String>();
    let browser = spec.browser.clone();
    let log_file = Arc::clone(&file);
    let front_channel = tokio::spawn(async move {
        let mut results = Vec::new();
        while let Some(url) = rx.recv().await {
            let Some(browser) = &browser else { continue };
            let result = browser.authorize(&url).await;
            let line = match &result {
                Ok(o) => format!("[harness] browser delivered {}\n", o.callback),
                Err(e) => {
                    let _ = failed_tx.send(format!("{e:#}"));
                    format!("[harness] browser failed: {e:#}\n")
                }
            };
            let _ = log_file.lock().await.write_all(line.as_bytes()).await;
            results.push(result);
        }
        results
    });

    let status = tokio::select! {
        status = child.wait() => status.context("waiting for the client")?,
        () = tokio::time::sleep(spec.timeout) => {
            stop(&mut child, readers, front_channel).await;
            anyhow::bail!("timed out after {}s (see log)", spec.timeout.as_secs());
        }
        Some(why) = failed_rx.recv() => {
            stop(&mut child, readers, front_channel).await;
            anyhow::bail!("browser step: {why}");
        }
    };
    for r in readers {
        let _ = r.await;
    }
    let results = front_channel.await.unwrap_or_default();
    let mut completed = 0;
    for r in results {
        match r {
            Ok(_) => completed += 1,
            Err(e) => anyhow::bail!("browser step: {e:#}"),
        }
    }
    if !status.success() {
        anyhow::bail!("exited with {status} (see log)");
    }
    if completed < spec.min_authorizations {
        anyhow::bail!(
            "exited 0, but only {completed} of {} expected authorizations went through the browser",
            spec.min_authorizations
        );
    }
    Ok(())
}

async fn stop<T>(
    child: &mut tokio::process::Child,
    readers: Vec<tokio::task::JoinHandle<()>>,
    front_channel: tokio::task::JoinHandle<T>,
) {
    let _ = child.start_kill();
    let _ = child.wait().await;
    for r in readers {
        let _ = r.await;
    }
    front_channel.abort();
}

/// Copies a child's output stream to the log, sending authorization URLs on.
async fn pump(
    stream: impl AsyncRead + Unpin,
    file: Arc<Mutex<tokio::fs::File>>,
    prefix: Option<String>,
    tx: mpsc::UnboundedSender<String>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(prefix) = &prefix
            && let Some(i) = line.find(prefix.as_str())
        {
            let url: String = line[i..].chars().take_while(|c| !c.is_whitespace()).collect();
            let _ = tx.send(url);
        }
        let mut f = file.lock().await;
        let _ = f.write_all(line.as_bytes()).await;
        let _ = f.write_all(b"\n").await;
    }
}
