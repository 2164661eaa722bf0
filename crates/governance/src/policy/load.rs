//! Loading a policy set: the default set shipped in the binary plus the
//! operator's files, parsed, given stable ids, and validated against the
//! schema before anything is allowed to decide with it.
//!
//! Every error names the file, the line and the column (issue 13 §5:
//! `steward policy check`), so an operator fixes a policy before it reaches
//! a running server — and a reload with an error keeps the running set.

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The schema's source text, shipped in the binary.
pub const SCHEMA_TEXT: &str = include_str!("../../policy/steward.cedarschema");

/// The default policy set's source text, shipped in the binary.
pub const DEFAULT_POLICIES: &str = include_str!("../../policy/default.cedar");

/// The name the default set goes by in errors and in `explain`.
pub const DEFAULT_SOURCE_NAME: &str = "<default>";

/// One policy text and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySource {
    /// A file path, or [`DEFAULT_SOURCE_NAME`].
    pub name: String,
    pub text: String,
}

impl PolicySource {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The default set.
    pub fn default_set() -> Self {
        Self::new(DEFAULT_SOURCE_NAME, DEFAULT_POLICIES)
    }

    /// Reads a policy file.
    pub fn read(path: &Path) -> Result<Self, PolicyError> {
        std::fs::read_to_string(path)
            .map(|text| Self::new(path.display().to_string(), text))
            .map_err(|e| PolicyError::Unreadable {
                file: path.display().to_string(),
                message: e.to_string(),
            })
    }
}

/// Which policies make up the running set (`governance.policy_files`,
/// `governance.include_default_policies`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Start from the default set (on by default). Off, the operator's files
    /// are the whole set: no permit in them means nothing is granted.
    pub include_default: bool,
    pub files: Vec<PathBuf>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            include_default: true,
            files: Vec::new(),
        }
    }
}

impl PolicyConfig {
    /// The sources this configuration names, read from disk now.
    pub fn sources(&self) -> Result<Vec<PolicySource>, PolicyError> {
        let mut out = Vec::with_capacity(self.files.len() + 1);
        if self.include_default {
            out.push(PolicySource::default_set());
        }
        for f in &self.files {
            out.push(PolicySource::read(f)?);
        }
        Ok(out)
    }
}

/// One problem in one policy source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Why a policy set could not be loaded. Nothing was swapped in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Parse or schema-validation errors, each with file, line and column.
    #[error("malformed policy: {}", summary(.0))]
    Malformed(Vec<PolicyDiagnostic>),
    #[error("cannot read policy file {file}: {message}")]
    Unreadable { file: String, message: String },
    /// The schema shipped in the binary does not parse: a build defect,
    /// caught by this crate's tests.
    #[error("the built-in policy schema is broken: {0}")]
    Schema(String),
}

fn summary(d: &[PolicyDiagnostic]) -> String {
    match d {
        [] => "no details".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn diagnostic(file: &str, text: &str, d: &dyn Diagnostic) -> PolicyDiagnostic {
    let offset = d.labels().and_then(|mut l| l.next()).map_or(0, |l| l.offset());
    let (line, column) = line_column(text, offset);
    let mut message = d.to_string();
    if let Some(help) = d.help() {
        message.push_str(&format!(" ({help})"));
    }
    PolicyDiagnostic {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// A validated policy set, ready to decide, with where each policy came from.
#[derive(Debug)]
pub struct LoadedPolicies {
    pub(crate) set: PolicySet,
    /// Policy id -> source name.
    pub(crate) origin: HashMap<String, String>,
    /// The sources, as loaded (for `explain` and `show`).
    pub(crate) sources: Vec<PolicySource>,
    /// Decisions this set has made, by their whole input (see
    /// [`super::DecisionMemo`]). Lives and dies with the set, so nothing
    /// decided by one set is ever answered by another after a reload.
    pub(crate) memo: super::DecisionMemo,
}

impl LoadedPolicies {
    /// The ids of every policy in the set, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.set.policies().map(|p| p.id().to_string()).collect();
        ids.sort();
        ids
    }

    /// The source a policy came from.
    pub fn origin_of(&self, policy_id: &str) -> Option<&str> {
        self.origin.get(policy_id).map(String::as_str)
    }

    pub fn sources(&self) -> &[PolicySource] {
        &self.sources
    }

    pub fn len(&self) -> usize {
        self.set.num_of_policies()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Parses the embedded schema.
pub fn schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA_TEXT)
        .map(|(s, _warnings)| s)
        .map_err(|e| PolicyError::Schema(e.to_string()))
}

/// The id a policy goes by: its `@id("…")` annotation, or
/// `<source>#<n>` (its position in the source, from 0) without one.
fn policy_name(source: &str, auto_id: &str, annotation: Option<&str>) -> String {
    match annotation {
        Some(id) => id.to_owned(),
        None => {
            let n = auto_id.strip_prefix("policy").unwrap_or(auto_id);
            format!("{source}#{n}")
        }
    }
}

/// Where `@id("id")` is written in `text`, for an error about it.
fn annotation_offset(text: &str, id: &str) -> usize {
    text.find(&format!("\"{id}\"")).unwrap_or(0)
}

/// Parses and validates `sources` into one set. Collects every error of
/// every source before failing, so `policy check` reports them all at once.
pub fn load(schema: &Schema, sources: Vec<PolicySource>) -> Result<LoadedPolicies, PolicyError> {
    let mut diagnostics = Vec::new();
    let mut set = PolicySet::new();
    let mut origin: HashMap<String, String> = HashMap::new();
    for src in &sources {
        let parsed = match src.text.parse::<PolicySet>() {
            Ok(p) => p,
            Err(errs) => {
                diagnostics.extend(errs.iter().map(|e| diagnostic(&src.name, &src.text, e)));
                continue;
            }
        };
        if let Some(t) = parsed.templates().next() {
            diagnostics.push(PolicyDiagnostic {
                file: src.name.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "{} is a template; Steward links no templates, write a static policy",
                    t.id()
                ),
            });
            continue;
        }
        let mut policies: Vec<_> = parsed.policies().collect();
        policies.sort_by_key(|p| {
            p.id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        });
        for p in policies {
            let name = policy_name(&src.name, p.id().as_ref(), p.annotation("id"));
            if let Some(other) = origin.get(&name) {
                let (line, column) = line_column(&src.text, annotation_offset(&src.text, &name));
                diagnostics.push(PolicyDiagnostic {
                    file: src.name.clone(),
                    line,
                    column,
                    message: format!("policy id {name:?} is already used in {other}"),
                });
                continue;
            }
            if let Err(e) = set.add(p.new_id(PolicyId::new(&name))) {
                diagnostics.push(PolicyDiagnostic {
                    file: src.name.clone(),
                    line: 1,
                    column: 1,
                    message: e.to_string(),
                });
                continue;
            }
            origin.insert(name, src.name.clone());
        }
    }
    if diagnostics.is_empty() {
        let validator = Validator::new(schema.clone());
        let result = validator.validate(&set, ValidationMode::Strict);
        for e in result.validation_errors() {
            let id = e.policy_id().to_string();
            let file = origin.get(&id).cloned().unwrap_or_default();
            let text = sources
                .iter()
                .find(|s| s.name == file)
                .map_or("", |s| s.text.as_str());
            let mut d = diagnostic(&file, text, e);
            d.message = format!("policy {id}: {}", d.message);
            diagnostics.push(d);
        }
    }
    if !diagnostics.is_empty() {
        return Err(PolicyError::Malformed(diagnostics));
    }
    Ok(LoadedPolicies {
        set,
        origin,
        sources,
        memo: super::DecisionMemo::default(),
    })
}
