//! `steward clients create|list|show|delete` as processes against a SQLite
//! database in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn steward(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("--config")
        .arg(dir.join("steward.toml"))
        .args(args)
        .env_remove("STEWARD_CONFIG")
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[database]\nurl = \"sqlite://{0}/steward.db\"\n[keys]\nencryption_key_file = \"{0}/kek\"\n",
        dir.path().display()
    );
    std::fs::write(dir.path().join("steward.toml"), toml).unwrap();
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn create_prints_the_secret_once_and_stores_only_its_hash() {
    let dir = setup();
    let out = steward(
        dir.path(),
        &[
            "clients",
            "create",
            "--name",
            "Nightly job",
            "--grant-type",
            "client_credentials",
            "--scope",
            "mcp:tools",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("created client "))
        .unwrap()
        .to_owned();
    assert!(id.starts_with("stw_"), "issued ids are opaque: {id}");
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 43);

    // The database holds the keyed hash, never the secret.
    let db = std::fs::read(dir.path().join("steward.db")).unwrap();
    let wal = std::fs::read(dir.path().join("steward.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the plaintext secret must not be stored"
        );
    }

    let list = stdout(&steward(dir.path(), &["clients", "list"]));
    assert!(list.contains(&id) && list.contains("pre_registered") && list.contains("Nightly job"));
    let show = stdout(&steward(dir.path(), &["clients", "show", &id]));
    assert!(show.contains("client secret (keyed hash stored)"));
    assert!(show.contains("client_credentials"));
    assert!(!show.contains(&secret));

    let del = steward(dir.path(), &["clients", "delete", &id]);
    assert!(del.status.success());
    let again = steward(dir.path(), &["clients", "show", &id]);
    assert!(!again.status.success());
}

#[test]
fn create_refuses_what_configuration_would_refuse() {
    let dir = setup();
    // An https id names a metadata document: never issued.
    let out = steward(
        dir.path(),
        &[
            "clients",
            "create",
            "--client-id",
            "https://app.example/c.json",
            "--public",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https URL"));
    // client_credentials needs a confidential client: said in the CLI's terms.
    let out = steward(
        dir.path(),
        &[
            "clients",
            "create",
            "--public",
            "--grant-type",
            "client_credentials",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("drop --public"), "{stderr}");
    // The code grant needs a redirect URI, and a valid one.
    let out = steward(dir.path(), &["clients", "create", "--public"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--redirect-uri is required for authorization_code"),
        "{stderr}"
    );
    let out = steward(
        dir.path(),
        &[
            "clients",
            "create",
            "--public",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
    );
    assert!(!out.status.success(), "plain http off loopback is refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http://evil.example/cb"), "{stderr}");
    // No refusal names an id that was never created, or creates any state.
    assert!(!stderr.contains("stw_"), "{stderr}");
    assert!(
        !dir.path().join("steward.db").exists(),
        "a refused create leaves no database"
    );
    assert!(!dir.path().join("kek").exists(), "nor a key-encryption key");
    // A duplicate id is refused.
    let ok = steward(
        dir.path(),
        &[
            "clients",
            "create",
            "--client-id",
            "app",
            "--public",
            "--redirect-uri",
            "http://localhost/cb",
        ],
    );
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let dup = steward(
        dir.path(),
        &[
            "clients",
            "create",
            "--client-id",
            "app",
            "--public",
            "--redirect-uri",
            "http://localhost/cb",
        ],
    );
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}
