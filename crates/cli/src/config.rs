//! Loading settings: embedded defaults, then a TOML file, then `STEWARD_…`
//! environment variables (`__` between nesting levels, e.g.
//! `STEWARD_DATABASE__URL`), then `…_FILE` variants for secrets, each layer
//! overriding the one before. Defaults live in one place: the `Default`
//! impls of `steward_server::settings`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::path::Path;
use steward_server::settings::Settings;

/// Top-level keys an environment variable may set. Other `STEWARD_…`
/// variables (`STEWARD_CONFIG`, `STEWARD_LOG`, `STEWARD_TEST_POSTGRES_URL`,
/// client secrets named by `secret_env`) belong to other readers and are not
/// settings, so they must not trip the unknown-key check.
const ENV_SECTIONS: &[&str] = &[
    "issuer",
    "listen",
    "tls",
    "database",
    "keys",
    "egress",
    "cimd",
    "http",
    "tokens",
    "admin",
    "default_resource",
    "default_scopes",
    "resources",
    "clients",
    "login",
    "dev",
];

/// Settings whose value may instead be read from a file named by
/// `STEWARD_<KEY>_FILE` (for secrets mounted by an orchestrator).
const FILE_SECRETS: &[(&str, &str)] = &[
    ("DATABASE__URL_FILE", "database.url"),
    ("ADMIN__TOKEN_FILE", "admin.token"),
];

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
    #[error("{0}")]
    Invalid(String),
}

/// Loads and validates the settings. Every error names the setting at fault.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::FileMissing(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(
        Env::prefixed("STEWARD_")
            .filter(|key| {
                let k = key.as_str().to_ascii_lowercase();
                let section = k.split("__").next().unwrap_or_default();
                ENV_SECTIONS.contains(&section)
                    && !FILE_SECRETS.iter().any(|(f, _)| f.eq_ignore_ascii_case(&k))
            })
            .split("__"),
    );
    for (suffix, key) in FILE_SECRETS {
        let var = format!("STEWARD_{suffix}");
        if let Some(path) = std::env::var_os(&var) {
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
    let settings: Settings = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(describe(&e)))?;
    settings
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(settings)
}

/// One line naming the key: `database.foo: unknown field ...`.
fn describe(err: &figment::Error) -> String {
    let e = err.clone().into_iter().next().unwrap_or_else(|| err.clone());
    let key = e.path.join(".");
    let source = match &e.metadata {
        Some(m) => match &m.source {
            Some(src) => format!(" (from {src})"),
            None => format!(" (from {})", m.name),
        },
        None => String::new(),
    };
    if key.is_empty() {
        format!("{}{source}", e.kind)
    } else {
        format!("{key}: {}{source}", e.kind)
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
            assert!(err.contains("timeout"), "{err}");
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
