//! Checking one plugin file before it is deployed (`connvault plugin check`):
//! its name, every load-time check and the schema lint exactly as the server
//! runs them, and smoke calls to `validate` — in a runner process when the
//! options say so, so a plugin that crashes costs the check nothing.
//!
//! The report lists each step as passed, a warning (the plugin works, but
//! users will notice) or a problem (the server would refuse it, or a call
//! failed); [`Report::problems`] counts the last.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connvault_plugin_abi::pb;

use crate::{HostOptions, Plugin, PluginHost, ProviderClient, check_normalized_config};

/// How long each smoke call may take.
const SMOKE_DEADLINE: Duration = Duration::from_secs(10);

/// How a step of the check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fine; the text says what was found.
    Passed(String),
    /// Works, but users will notice; the text says what to change.
    Warning(String),
    /// The server would refuse the file, or a call failed.
    Problem(String),
}

/// One step of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What was checked.
    pub what: String,
    /// How it came out.
    pub outcome: Outcome,
}

/// What checking a plugin file found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The file checked.
    pub file: PathBuf,
    /// Each step, in order.
    pub steps: Vec<Step>,
}

impl Report {
    /// The steps that found a problem.
    pub fn problems(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Problem(_)))
    }

    /// The steps that found something to improve.
    pub fn warnings(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Warning(_)))
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.steps
            .iter()
            .filter(|step| which(&step.outcome))
            .count()
    }

    fn push(&mut self, what: impl Into<String>, outcome: Outcome) {
        self.steps.push(Step {
            what: what.into(),
            outcome,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "checking {}", self.file.display())?;
        for step in &self.steps {
            let (mark, text) = match &step.outcome {
                Outcome::Passed(text) => ("ok     ", text),
                Outcome::Warning(text) => ("warning", text),
                Outcome::Problem(text) => ("PROBLEM", text),
            };
            writeln!(f, "  {mark} {}: {text}", step.what)?;
        }
        writeln!(
            f,
            "{} problem(s), {} warning(s)",
            self.problems(),
            self.warnings()
        )
    }
}

/// Checks the plugin file at `path` as the server would load it with
/// `options` (set `options.isolation` to `Process` and a runner command to
/// run it in a runner), then makes the smoke calls.
pub async fn check(path: &Path, options: &HostOptions) -> Report {
    let mut report = Report {
        file: path.to_owned(),
        steps: Vec::new(),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    report.push(
        "file name",
        if crate::is_plugin_file_name(&name) {
            Outcome::Passed(name)
        } else {
            Outcome::Problem(format!(
                "{name} is skipped by the server: name the file libconnvault_plugin_<name>.so"
            ))
        },
    );
    let files = [path.to_owned()];
    let loading = options.clone();
    let host =
        match tokio::task::spawn_blocking(move || PluginHost::load_files(&files, &loading)).await {
            Ok(host) => host,
            Err(error) => {
                report.push(
                    "load",
                    Outcome::Problem(format!("the load failed: {error}")),
                );
                return report;
            }
        };
    if let Some(refusal) = host.refused().first() {
        report.push(
            "load-time checks and schema lint",
            Outcome::Problem(refusal.error.to_string()),
        );
        return report;
    }
    let Some(plugin) = host.plugins().first() else {
        report.push("load", Outcome::Problem("nothing was loaded".into()));
        return report;
    };
    report.push(
        "load-time checks and schema lint",
        Outcome::Passed(format!(
            "{} {} (SHA-256 {}, {:?} isolation, ABI 1.x)",
            plugin.name(),
            plugin.version(),
            plugin.sha256(),
            plugin.isolation()
        )),
    );
    for source in &plugin.description().data_sources {
        check_source(&mut report, plugin, source).await;
    }
    report
}

/// The smoke calls and warnings for one data source.
async fn check_source(report: &mut Report, plugin: &Arc<Plugin>, source: &pb::DataSource) {
    let id = &source.id;
    report.push(
        format!("describe {id}"),
        Outcome::Passed(format!(
            "{} field(s), {} alias(es)",
            source.fields.len(),
            source.aliases.len()
        )),
    );
    for field in &source.fields {
        if !field.pattern.is_empty() && field.pattern_message.is_empty() {
            report.push(
                format!("field {id}.{}", field.name),
                Outcome::Warning(
                    "has a pattern but no pattern_message: users are told only that the value \
                     is not in the expected form"
                        .into(),
                ),
            );
        }
    }
    let empty = validate_request(id, BTreeMap::new(), BTreeMap::new());
    let outcome = match plugin.validate(&empty, SMOKE_DEADLINE).await {
        Ok(answer) => Outcome::Passed(format!(
            "answered with {} violation(s)",
            answer.violations.len()
        )),
        Err(error) => Outcome::Problem(error.to_string()),
    };
    report.push(format!("validate {id} with no config"), outcome);

    let (config, secrets) = sample(source);
    let request = validate_request(id, config.clone(), secrets);
    let outcome = match plugin.validate(&request, SMOKE_DEADLINE).await {
        Ok(answer) if answer.violations.is_empty() => {
            let mismatches = check_normalized_config(source, &config, &answer.normalized_config);
            if mismatches.is_empty() {
                Outcome::Passed(
                    "valid, and the normalized config keeps every field sent".to_owned(),
                )
            } else {
                let list: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
                Outcome::Problem(format!(
                    "valid, but the server would refuse the normalized config (it stores it, \
                     not the request's): {}",
                    list.join("; ")
                ))
            }
        }
        Ok(answer) => {
            let list: Vec<String> = answer
                .violations
                .iter()
                .map(|violation| format!("{}: {}", violation.field, violation.description))
                .collect();
            Outcome::Passed(format!(
                "answered with {} violation(s) for a made-up config: {}",
                list.len(),
                list.join("; ")
            ))
        }
        Err(error) => Outcome::Problem(error.to_string()),
    };
    report.push(format!("validate {id} with a sample config"), outcome);
}

fn validate_request(
    id: &str,
    config: BTreeMap<String, pb::Value>,
    secrets: BTreeMap<String, String>,
) -> pb::ValidateRequest {
    pb::ValidateRequest {
        connection: Some(pb::ConnectionSpec {
            data_source: id.to_owned(),
            config,
            secrets,
            tls: None,
        }),
        ..pb::ValidateRequest::default()
    }
}

/// A made-up connection: each field's default, or a value of its type
/// within its bounds; secrets a placeholder.
fn sample(source: &pb::DataSource) -> (BTreeMap<String, pb::Value>, BTreeMap<String, String>) {
    use pb::FieldType;
    use pb::value::Kind;
    let mut config = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for field in &source.fields {
        if field.secret {
            secrets.insert(field.name.clone(), "sample-secret".to_owned());
            continue;
        }
        let default = field.default_value.clone();
        let kind = match FieldType::try_from(field.r#type) {
            Ok(FieldType::Int) => Kind::IntValue(
                default
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or_else(|| {
                        field
                            .min
                            .unwrap_or(1)
                            .max(1)
                            .min(field.max.unwrap_or(i64::MAX))
                    }),
            ),
            Ok(FieldType::Bool) => Kind::BoolValue(
                default.is_some_and(|text| matches!(text.as_str(), "true" | "1" | "yes")),
            ),
            Ok(FieldType::Enum) => Kind::StringValue(
                default
                    .or_else(|| field.allowed_values.first().cloned())
                    .unwrap_or_default(),
            ),
            Ok(FieldType::StringList) => Kind::ListValue(pb::StringList {
                values: vec!["sample".to_owned()],
            }),
            _ => Kind::StringValue(default.unwrap_or_else(|| "sample".to_owned())),
        };
        config.insert(field.name.clone(), pb::Value { kind: Some(kind) });
    }
    (config, secrets)
}
