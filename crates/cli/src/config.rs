//! Loading settings: embedded defaults, then a TOML file, then `STEWARD_…`
//! environment variables (`__` between nesting levels, e.g.
//! `STEWARD_DATABASE__URL`), then `…_FILE` variants for secrets, each layer
//! overriding the one before. Defaults live in one place: the `Default`
//! impls of `steward_server::settings`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use steward_server::settings::{Settings, TlsSettings};

const PREFIX: &str = "STEWARD_";

/// `STEWARD_…` variables Steward reads for other purposes: never settings.
/// (So are the variables named by `[[clients]] secret_env`.)
const NOT_SETTINGS: &[&str] = &["STEWARD_CONFIG", "STEWARD_LOG", "STEWARD_TEST_POSTGRES_URL"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0}: not found")]
    FileMissing(String),
    #[error("{var}: cannot read {path}: {source}")]
    SecretFile {
        var: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{var}: not a Steward setting{hint} (see docs/configuration.md)")]
    UnknownVariable { var: String, hint: String },
    #[error("{file_var}: {var} is set too; set one of them")]
    Both { file_var: String, var: String },
    #[error("{0}")]
    Invalid(String),
}

/// Every settings key Steward knows, as dotted paths: the sections
/// (`database`, `tls`) and the values (`database.url`), each value marked
/// with whether it is a string (and so may come from a `…_FILE`).
struct KnownKeys {
    sections: BTreeSet<String>,
    values: BTreeMap<String, bool>,
    top: BTreeSet<String>,
}

impl KnownKeys {
    fn new() -> KnownKeys {
        // `tls` is absent by default; a sample makes its keys known too.
        let sample = Settings {
            tls: Some(TlsSettings {
                cert_file: "cert.pem".into(),
                key_file: "key.pem".into(),
            }),
            ..Settings::default()
        };
        let mut known = KnownKeys {
            sections: BTreeSet::new(),
            values: BTreeMap::new(),
            top: BTreeSet::new(),
        };
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&sample) {
            known.top = map.keys().cloned().collect();
            known.walk("", &map);
        }
        known
    }

    fn walk(&mut self, prefix: &str, map: &serde_json::Map<String, serde_json::Value>) {
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                serde_json::Value::Object(inner) => {
                    self.walk(&key, inner);
                    self.sections.insert(key);
                }
                // Option<String> settings are null by default.
                other => {
                    let stringy = matches!(other, serde_json::Value::String(_) | serde_json::Value::Null);
                    self.values.insert(key, stringy);
                }
            }
        }
    }

    /// Is `rest` (a variable name without `STEWARD_`, lowercased) meant as a
    /// setting? See "Which `STEWARD_…` variables are settings" in
    /// docs/configuration.md.
    fn looks_like_setting(&self, rest: &str) -> bool {
        rest.contains("__")
            || self
                .top
                .iter()
                .any(|k| rest == k || rest.strip_prefix(k.as_str()).is_some_and(|r| r.starts_with('_')))
    }

    fn classify(&self, rest: &str) -> EnvKind {
        if !self.looks_like_setting(rest) {
            return EnvKind::NotASetting;
        }
        let dotted = rest.replace("__", ".");
        if self.values.contains_key(&dotted) || self.sections.contains(&dotted) {
            return EnvKind::Setting(dotted);
        }
        if let Some(key) = dotted.strip_suffix("_file")
            && self.values.get(key) == Some(&true)
        {
            return EnvKind::File(key.to_owned());
        }
        EnvKind::Unknown
    }

    /// `(did you mean STEWARD_DATABASE__URL?)` when only underscores differ.
    fn hint(&self, var: &str) -> String {
        let squash = |s: &str| s.replace('_', "").to_ascii_lowercase();
        let wanted = squash(var);
        self.values
            .keys()
            .chain(self.sections.iter())
            .map(|k| format!("{PREFIX}{}", k.to_ascii_uppercase().replace('.', "__")))
            .find(|candidate| squash(candidate) == wanted || squash(&format!("{candidate}_FILE")) == wanted)
            .map(|c| {
                if squash(&c) == wanted {
                    format!(" (did you mean {c}?)")
                } else {
                    format!(" (did you mean {c}_FILE?)")
                }
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EnvKind {
    /// Not Steward's variable (or one it reads for another purpose).
    NotASetting,
    /// Sets this dotted key.
    Setting(String),
    /// Reads this dotted key from the file the variable names.
    File(String),
    /// Meant as a setting, but names none.
    Unknown,
}

/// Loads and validates the settings. Every error is one line naming the
/// setting, the variable or the file at fault.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let known = KnownKeys::new();
    let vars: Vec<(String, EnvKind)> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.len() > PREFIX.len() && k[..PREFIX.len()].eq_ignore_ascii_case(PREFIX))
        .filter(|k| !NOT_SETTINGS.contains(&k.as_str()))
        .map(|k| {
            let kind = known.classify(&k[PREFIX.len()..].to_ascii_lowercase());
            (k, kind)
        })
        .collect();
    // Which variable set a key, to name it in errors.
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    for (var, kind) in &vars {
        if let EnvKind::Setting(key) | EnvKind::File(key) = kind {
            if let Some(other) = origin.get(key) {
                let (file_var, var) = if matches!(kind, EnvKind::File(_)) {
                    (var.clone(), other.clone())
                } else {
                    (other.clone(), var.clone())
                };
                return Err(ConfigError::Both { file_var, var });
            }
            origin.insert(key.clone(), var.clone());
        }
    }

    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::FileMissing(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let settings_vars: BTreeSet<String> = vars
        .iter()
        .filter(|(_, kind)| matches!(kind, EnvKind::Setting(_)))
        .map(|(var, _)| var[PREFIX.len()..].to_ascii_lowercase())
        .collect();
    figment = figment.merge(
        Env::prefixed(PREFIX)
            .filter(move |key| settings_vars.contains(&key.as_str().to_ascii_lowercase()))
            .split("__"),
    );
    for (var, kind) in &vars {
        if let EnvKind::File(key) = kind
            && let Some(path) = std::env::var_os(var)
        {
            let contents = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                var: var.clone(),
                path: Path::new(&path).display().to_string(),
                source,
            })?;
            figment = figment.merge(Serialized::global(
                key,
                contents.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
    }
    let mut settings: Settings = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(describe(&e, &origin)))?;
    resolve_relative_paths(&mut settings, &figment);

    // Variables meant as settings that name none are typos — unless a client
    // reads its secret from that variable.
    let secret_vars: BTreeSet<&str> = settings
        .clients
        .iter()
        .filter_map(|c| c.secret_env.as_deref())
        .collect();
    if let Some((var, _)) = vars
        .iter()
        .find(|(var, kind)| *kind == EnvKind::Unknown && !secret_vars.contains(var.as_str()))
    {
        return Err(ConfigError::UnknownVariable {
            var: var.clone(),
            hint: known.hint(var),
        });
    }
    settings
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(settings)
}

/// Makes every relative path written in a configuration file relative to
/// that file's directory, so that `steward --config /etc/steward/steward.toml`
/// finds the same database and key-encryption key from whatever directory it
/// is run (a `steward keys list` from another directory used to create a
/// second, empty database there). A path from an environment variable or the
/// embedded defaults stays relative to the working directory, where the
/// shell that set it is.
fn resolve_relative_paths(settings: &mut Settings, figment: &Figment) {
    let base = |key: &str| -> Option<PathBuf> {
        let file = figment.find_metadata(key)?.source.as_ref()?.file_path()?;
        let dir = std::path::absolute(file).ok()?.parent()?.to_path_buf();
        Some(dir)
    };
    let resolve = |path: &mut PathBuf, dir: &Path| {
        if path.is_relative() {
            *path = dir.join(&*path);
        }
    };
    if let Some(dir) = base("database.url") {
        settings.database.url = resolve_sqlite_url(&settings.database.url, &dir);
    }
    if let Some(dir) = base("keys.encryption_key_file") {
        resolve(&mut settings.keys.encryption_key_file, &dir);
    }
    if let Some(dir) = base("governance.policy_files") {
        settings
            .governance
            .policy_files
            .iter_mut()
            .for_each(|p| resolve(p, &dir));
    }
    if let Some(dir) = base("egress.extra_root_certs") {
        settings
            .egress
            .extra_root_certs
            .iter_mut()
            .for_each(|p| resolve(p, &dir));
    }
    if let Some(tls) = settings.tls.as_mut() {
        if let Some(dir) = base("tls.cert_file") {
            resolve(&mut tls.cert_file, &dir);
        }
        if let Some(dir) = base("tls.key_file") {
            resolve(&mut tls.key_file, &dir);
        }
    }
}

/// `sqlite://./data/steward.db` written in `/etc/steward/steward.toml` is
/// `sqlite:///etc/steward/data/steward.db`; an absolute path, an in-memory
/// database and any other URL are left as they are.
fn resolve_sqlite_url(url: &str, dir: &Path) -> String {
    let Some((path, query)) = steward_server::settings::split_sqlite_url(url) else {
        return url.to_owned();
    };
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") || Path::new(path).is_absolute()
    {
        return url.to_owned();
    }
    let joined = dir.join(path.strip_prefix("./").unwrap_or(path));
    if query.is_empty() {
        format!("sqlite://{}", joined.display())
    } else {
        format!("sqlite://{}?{query}", joined.display())
    }
}

/// One line naming the key and where it came from:
/// `database.foo: unknown field … (from steward.toml)`,
/// `steward.toml: TOML parse error at line 2, column 7: …`.
fn describe(err: &figment::Error, origin: &BTreeMap<String, String>) -> String {
    let e = err.clone().into_iter().next().unwrap_or_else(|| err.clone());
    let key = e.path.join(".");
    let mut message = one_line(&e.kind.to_string());
    if let figment::error::Kind::UnknownField(field, expected) = &e.kind
        && let Some(near) = closest(field, expected)
    {
        // `[databse]`: one likely name reads better than the list of all.
        message = format!("unknown field `{field}` (did you mean `{near}`?)");
    }
    if matches!(key.as_str(), "listen" | "metrics.listen") {
        message = format!(
            "{message}: expected an IP address and a port, e.g. 127.0.0.1:8091 or [::1]:8091 \
             (not a host name such as localhost; 0.0.0.0:8091 listens on every interface)"
        );
    }
    let from_file = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(path)) => Some(path.display().to_string()),
        _ => None,
    };
    let source = match (origin.get(&key), &from_file) {
        (_, Some(file)) if key.is_empty() => return format!("{file}: {message}"),
        (_, Some(file)) => format!(" (from {file})"),
        (Some(var), None) => format!(" (from {var})"),
        (None, None) => match &e.metadata {
            Some(m) => format!(" (from {})", m.name),
            None => String::new(),
        },
    };
    if key.is_empty() {
        format!("{message}{source}")
    } else {
        format!("{key}: {message}{source}")
    }
}

/// The known name nearest to a misspelt one (`databse` → `database`), when
/// it is near enough to be the one meant: at most a third of its letters
/// differ (counting insertions, deletions, substitutions and transpositions).
fn closest(wrong: &str, known: &[&'static str]) -> Option<&'static str> {
    let wrong = wrong.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&wrong, k), *k))
        .filter(|(d, k)| *d > 0 && *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance between two ASCII-ish names.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Folds a multi-line message (a TOML parse error with its source excerpt)
/// into one line, dropping the excerpt.
fn one_line(message: &str) -> String {
    let mut parts = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        // The excerpt: `  |`, `2 | url = `, `  |     ^`.
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('|')
                || t.split_once(" |")
                    .is_some_and(|(n, _)| n.trim().parse::<u64>().is_ok()))
        });
    let first = parts.next().unwrap_or_default().replace("``", "`");
    let rest: Vec<String> = parts.map(|l| l.trim().replace("``", "`")).collect();
    if rest.is_empty() {
        first
    } else {
        format!("{first}: {}", rest.join("; "))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_without_anything() {
        Jail::expect_with(|_jail| {
            let s = load(None).unwrap();
            assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(s.effective_issuer(), "http://127.0.0.1:8080");
            assert_eq!(s.database.url, "sqlite://./steward-data/steward.db");
            Ok(())
        });
    }

    #[test]
    fn file_then_env_override() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "steward.toml",
                "issuer = \"https://auth.example.com\"\n[database]\nurl = \"sqlite://./a.db\"\n",
            )?;
            jail.set_env("STEWARD_DATABASE__URL", "postgres://postgres@127.0.0.1/test");
            jail.set_env("STEWARD_TEST_POSTGRES_URL", "postgres://ignored");
            let s = load(Some(Path::new("steward.toml"))).unwrap();
            assert_eq!(s.issuer, "https://auth.example.com");
            assert_eq!(s.database.url, "postgres://postgres@127.0.0.1/test");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        Jail::expect_with(|jail| {
            jail.create_file("steward.toml", "[database]\nurll = \"x\"\n")?;
            let err = load(Some(Path::new("steward.toml"))).unwrap_err().to_string();
            assert!(err.contains("database.urll") || err.contains("urll"), "{err}");
            assert!(err.contains("unknown field"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_nested_env_key_is_an_error() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_EGRESS__TIMEOUT", "5");
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("STEWARD_EGRESS__TIMEOUT: not a Steward setting"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn unparsable_url_names_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_ISSUER", "not a url");
            let err = load(None).unwrap_err().to_string();
            assert!(err.starts_with("issuer:"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secret_from_file() {
        Jail::expect_with(|jail| {
            jail.create_file("db-url", "postgres://postgres@127.0.0.1/test\n")?;
            jail.set_env("STEWARD_DATABASE__URL_FILE", "db-url");
            let s = load(None).unwrap();
            assert_eq!(s.database.url, "postgres://postgres@127.0.0.1/test");
            Ok(())
        });
    }

    #[test]
    fn env_typo_in_a_section_name_is_an_error_naming_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_DATABSE__URL", "x");
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("STEWARD_DATABSE__URL: not a Steward setting"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn single_underscore_typo_is_an_error_with_a_hint() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_DATABASE_URL", "sqlite://./x.db");
            let err = load(None).unwrap_err().to_string();
            assert!(err.starts_with("STEWARD_DATABASE_URL: "), "{err}");
            assert!(err.contains("did you mean STEWARD_DATABASE__URL?"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn variables_that_are_not_settings_are_left_alone() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_LOG", "debug");
            jail.set_env("STEWARD_CONFIG", "elsewhere.toml");
            jail.set_env("STEWARD_TEST_POSTGRES_URL", "postgres://x");
            jail.set_env("STEWARD_FOO", "1");
            jail.set_env("STEWARD_LOADGEN_PINNED", "1");
            load(None).unwrap();
            Ok(())
        });
    }

    #[test]
    fn a_client_secret_variable_is_not_a_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_CLIENTS_JOB_SECRET", "0123456789abcdef0123");
            // Without a client naming it, it reads as a misspelt setting.
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("STEWARD_CLIENTS_JOB_SECRET: not a Steward setting"),
                "{err}"
            );
            jail.create_file(
                "steward.toml",
                "[[clients]]\nclient_id = \"job\"\nsecret_env = \"STEWARD_CLIENTS_JOB_SECRET\"\n\
                 grant_types = [\"client_credentials\"]\n",
            )?;
            let s = load(Some(Path::new("steward.toml"))).unwrap();
            assert_eq!(s.clients.len(), 1);
            Ok(())
        });
    }

    #[test]
    fn admin_token_from_file() {
        Jail::expect_with(|jail| {
            jail.create_file("admin-token", &format!("{}\n", "t".repeat(40)))?;
            jail.set_env("STEWARD_ADMIN__TOKEN_FILE", "admin-token");
            let s = load(None).unwrap();
            assert_eq!(s.admin.token.as_deref(), Some("t".repeat(40).as_str()));
            Ok(())
        });
    }

    #[test]
    fn any_string_setting_may_come_from_a_file() {
        Jail::expect_with(|jail| {
            jail.create_file("issuer", "https://auth.example.com\n")?;
            jail.set_env("STEWARD_ISSUER_FILE", "issuer");
            jail.create_file("user", "alice")?;
            jail.set_env("STEWARD_DEV__AUTO_APPROVE_USER_FILE", "user");
            let s = load(None).unwrap();
            assert_eq!(s.issuer, "https://auth.example.com");
            assert_eq!(s.dev.auto_approve_user.as_deref(), Some("alice"));
            Ok(())
        });
    }

    #[test]
    fn a_missing_secret_file_names_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_ADMIN__TOKEN_FILE", "no-such-file");
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("STEWARD_ADMIN__TOKEN_FILE: cannot read no-such-file"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_number_setting_has_no_file_variant() {
        Jail::expect_with(|jail| {
            jail.create_file("t", "5")?;
            jail.set_env("STEWARD_EGRESS__TIMEOUT_MS_FILE", "t");
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("STEWARD_EGRESS__TIMEOUT_MS_FILE: not a Steward setting"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn keys_named_file_are_plain_settings() {
        Jail::expect_with(|jail| {
            jail.create_file("c.pem", "")?;
            jail.create_file("k.pem", "")?;
            jail.set_env("STEWARD_TLS__CERT_FILE", "c.pem");
            jail.set_env("STEWARD_TLS__KEY_FILE", "k.pem");
            let s = load(None).unwrap();
            let tls = s.tls.unwrap();
            assert_eq!(tls.cert_file, Path::new("c.pem"));
            assert_eq!(tls.key_file, Path::new("k.pem"));
            Ok(())
        });
    }

    #[test]
    fn a_value_and_its_file_variant_together_are_an_error() {
        Jail::expect_with(|jail| {
            jail.create_file("db-url", "sqlite://./b.db")?;
            jail.set_env("STEWARD_DATABASE__URL", "sqlite://./a.db");
            jail.set_env("STEWARD_DATABASE__URL_FILE", "db-url");
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.starts_with("STEWARD_DATABASE__URL_FILE: STEWARD_DATABASE__URL is set too"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_env_value_names_the_key_and_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_EGRESS__TIMEOUT_MS", "soon");
            let err = load(None).unwrap_err().to_string();
            assert!(err.starts_with("egress.timeout_ms: "), "{err}");
            assert!(err.contains("(from STEWARD_EGRESS__TIMEOUT_MS)"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn toml_syntax_error_is_one_line_naming_the_file_and_line() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "steward.toml",
                "listen = \"127.0.0.1:8080\"\n[database\nurl = 1\n",
            )?;
            let err = load(Some(Path::new("steward.toml"))).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains("steward.toml: "), "{err}");
            assert!(err.contains("line 2"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_the_file() {
        Jail::expect_with(|jail| {
            std::fs::create_dir_all(jail.directory().join("conf/policies")).unwrap();
            jail.create_file("conf/policies/extra.cedar", "")?;
            jail.create_file("conf/ca.pem", "")?;
            jail.create_file(
                "conf/steward.toml",
                "[database]\nurl = \"sqlite://./data/steward.db\"\n\
                 [keys]\nencryption_key_file = \"data/kek\"\n\
                 [governance]\npolicy_files = [\"policies/extra.cedar\", \"/abs/p.cedar\"]\n\
                 [egress]\nextra_root_certs = [\"ca.pem\"]\n",
            )?;
            let conf = std::path::absolute(jail.directory().join("conf")).unwrap();
            let s = load(Some(Path::new("conf/steward.toml"))).unwrap();
            assert_eq!(
                s.database.url,
                format!("sqlite://{}", conf.join("data/steward.db").display())
            );
            assert_eq!(s.keys.encryption_key_file, conf.join("data/kek"));
            assert_eq!(
                s.governance.policy_files,
                vec![conf.join("policies/extra.cedar"), PathBuf::from("/abs/p.cedar")]
            );
            assert_eq!(s.egress.extra_root_certs, vec![conf.join("ca.pem")]);
            Ok(())
        });
    }

    #[test]
    fn relative_paths_from_the_environment_and_the_defaults_stay_with_the_working_directory() {
        Jail::expect_with(|jail| {
            std::fs::create_dir_all(jail.directory().join("conf")).unwrap();
            jail.create_file("conf/steward.toml", "[keys]\nencryption_key_file = \"kek\"\n")?;
            jail.set_env("STEWARD_DATABASE__URL", "sqlite://./here.db");
            let s = load(Some(Path::new("conf/steward.toml"))).unwrap();
            assert_eq!(s.database.url, "sqlite://./here.db");
            let s = load(None).unwrap();
            assert_eq!(s.keys.encryption_key_file, Path::new("./steward-data/kek"));
            Ok(())
        });
    }

    #[test]
    fn sqlite_urls_resolve_only_relative_files() {
        let dir = Path::new("/etc/steward");
        assert_eq!(
            resolve_sqlite_url("sqlite:data/s.db?mode=rwc", dir),
            "sqlite:///etc/steward/data/s.db?mode=rwc"
        );
        for kept in [
            "sqlite:///var/lib/s.db",
            "sqlite::memory:",
            "postgres://h/db",
            "sqlite://",
        ] {
            assert_eq!(resolve_sqlite_url(kept, dir), kept);
        }
    }

    #[test]
    fn a_misspelt_section_gets_a_did_you_mean() {
        Jail::expect_with(|jail| {
            jail.create_file("steward.toml", "[databse]\nurl = \"sqlite://./x.db\"\n")?;
            let err = load(Some(Path::new("steward.toml"))).unwrap_err().to_string();
            assert!(err.contains("unknown field `databse`"), "{err}");
            assert!(err.contains("(did you mean `database`?)"), "{err}");
            jail.create_file("steward.toml", "[egress]\ntimeout_sm = 5\n")?;
            let err = load(Some(Path::new("steward.toml"))).unwrap_err().to_string();
            assert!(err.contains("(did you mean `timeout_ms`?)"), "{err}");
            // Nothing near: no guess.
            jail.create_file("steward.toml", "[frobnicate]\nx = 1\n")?;
            let err = load(Some(Path::new("steward.toml"))).unwrap_err().to_string();
            assert!(!err.contains("did you mean"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_host_name_in_listen_explains_the_expected_form() {
        Jail::expect_with(|jail| {
            jail.create_file("steward.toml", "listen = \"localhost:8091\"\n")?;
            let err = load(Some(Path::new("steward.toml"))).unwrap_err().to_string();
            assert!(err.starts_with("listen: "), "{err}");
            assert!(
                err.contains("expected an IP address and a port, e.g. 127.0.0.1:8091"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        Jail::expect_with(|_jail| {
            assert!(matches!(
                load(Some(Path::new("nope.toml"))),
                Err(ConfigError::FileMissing(_))
            ));
            Ok(())
        });
    }
}
