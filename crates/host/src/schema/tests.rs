//! Every lint rule and every kind of answer mismatch, one case each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use connvault_plugin_abi::pb::{self, FieldType, value::Kind};

use super::answer::{Mismatch, check_normalized_config, check_secret_names};
use super::lint::{lint, lint_field};
use super::value;

fn field(name: &str, kind: FieldType) -> pb::Field {
    pb::Field {
        name: name.into(),
        r#type: kind as i32,
        ..Default::default()
    }
}

fn with_default(mut field: pb::Field, default: &str) -> pb::Field {
    field.default_value = Some(default.into());
    field
}

fn port() -> pb::Field {
    pb::Field {
        min: Some(1),
        max: Some(65535),
        ..field("port", FieldType::Int)
    }
}

fn mode() -> pb::Field {
    pb::Field {
        allowed_values: vec!["fast".into(), "safe".into()],
        ..field("mode", FieldType::Enum)
    }
}

fn database() -> pb::Field {
    pb::Field {
        pattern: "[a-z_]+".into(),
        max_length: 8,
        ..field("database", FieldType::String)
    }
}

fn source() -> pb::DataSource {
    pb::DataSource {
        id: "testdb".into(),
        display_name: "Test".into(),
        fields: vec![
            pb::Field {
                required: true,
                ..field("host", FieldType::String)
            },
            port(),
            mode(),
            database(),
            field("tls_on", FieldType::Bool),
            field("ca", FieldType::Text),
            field("hosts", FieldType::StringList),
            pb::Field {
                secret: true,
                required: true,
                ..field("password", FieldType::String)
            },
            pb::Field {
                secret: true,
                ..field("token", FieldType::String)
            },
        ],
        ..Default::default()
    }
}

fn string(text: &str) -> pb::Value {
    pb::Value {
        kind: Some(Kind::StringValue(text.into())),
    }
}

fn int(number: i64) -> pb::Value {
    pb::Value {
        kind: Some(Kind::IntValue(number)),
    }
}

fn list(entries: &[&str]) -> pb::Value {
    pb::Value {
        kind: Some(Kind::ListValue(pb::StringList {
            values: entries.iter().map(|entry| (*entry).to_owned()).collect(),
        })),
    }
}

fn config(pairs: &[(&str, pb::Value)]) -> BTreeMap<String, pb::Value> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

fn lint_problem(field: pb::Field) -> String {
    lint_field(&field).expect_err("the lint should refuse this field")
}

#[test]
fn the_lint_accepts_sound_fields() {
    for field in [
        with_default(port(), "5432"),
        with_default(mode(), "FAST"),
        with_default(database(), "public"),
        with_default(database(), ""),
        with_default(field("tls_on", FieldType::Bool), "yes"),
        with_default(field("ca", FieldType::Text), "line one\nline two"),
        field("hosts", FieldType::StringList),
    ] {
        assert_eq!(lint_field(&field), Ok(()), "{}", field.name);
    }
}

#[test]
fn the_lint_refuses_each_broken_rule() {
    let cases = [
        (with_default(port(), "many"), "default is not an integer"),
        (
            with_default(port(), "70000"),
            "default is above the maximum 65535",
        ),
        (with_default(port(), "0"), "default is below the minimum 1"),
        (
            with_default(field("on", FieldType::Bool), "maybe"),
            "default is not a boolean",
        ),
        (
            with_default(mode(), "slow"),
            "default is not one of the allowed values",
        ),
        (
            with_default(database(), "Public"),
            "default does not match the field's pattern",
        ),
        (
            with_default(database(), "very_long_name"),
            "default is longer than 8 bytes",
        ),
        (
            with_default(field("host", FieldType::String), "a\nb"),
            "default is not a single line",
        ),
        (
            with_default(field("hosts", FieldType::StringList), "a"),
            "default is set on a string list",
        ),
        (
            with_default(
                pb::Field {
                    secret: true,
                    ..field("password", FieldType::String)
                },
                "hunter2",
            ),
            "is a secret and has a default",
        ),
        (
            field("mode", FieldType::Enum),
            "is an enum with no allowed values",
        ),
        (
            pb::Field {
                pattern: "([a-z]+".into(),
                ..field("database", FieldType::String)
            },
            "pattern does not compile (",
        ),
        (
            pb::Field {
                pattern_message: "must be a database name".into(),
                ..field("database", FieldType::String)
            },
            "has a pattern message but no pattern",
        ),
        (
            pb::Field {
                min: Some(10),
                max: Some(1),
                ..field("port", FieldType::Int)
            },
            "minimum 10 is above its maximum 1",
        ),
    ];
    for (field, expected) in cases {
        let problem = lint_problem(field);
        assert!(problem.contains(expected), "{problem:?} lacks {expected:?}");
    }
}

#[test]
fn the_lint_never_quotes_a_secret_default() {
    let problem = lint_problem(with_default(
        pb::Field {
            secret: true,
            ..field("password", FieldType::String)
        },
        "hunter2",
    ));
    assert!(!problem.contains("hunter2"), "{problem}");
}

#[test]
fn a_lint_refusal_names_the_data_source_and_the_field() {
    let mut broken = source();
    broken.fields.push(field("level", FieldType::Enum));
    let describe = pb::DescribeResponse {
        data_sources: vec![broken],
        ..Default::default()
    };
    assert_eq!(
        lint(&describe),
        Err("data source testdb: field level: is an enum with no allowed values".into())
    );
    let sound = pb::DescribeResponse {
        data_sources: vec![source()],
        ..Default::default()
    };
    assert_eq!(lint(&sound), Ok(()));
}

#[test]
fn two_fields_of_one_name_are_refused() {
    let mut twice = source();
    twice.fields.push(port());
    let describe = pb::DescribeResponse {
        data_sources: vec![twice],
        ..Default::default()
    };
    let problem = crate::describe::check(&describe).unwrap_err();
    assert_eq!(problem, "data source testdb: field port appears twice");
}

fn good_answer() -> BTreeMap<String, pb::Value> {
    config(&[
        ("host", string("db.example")),
        ("port", int(5432)),
        ("mode", string("safe")),
        ("database", string("orders")),
        (
            "tls_on",
            pb::Value {
                kind: Some(Kind::BoolValue(true)),
            },
        ),
        ("ca", string("-----BEGIN-----\nAAAA\n-----END-----")),
        ("hosts", list(&["a", "b"])),
    ])
}

fn problems(
    sent: &BTreeMap<String, pb::Value>,
    answer: &BTreeMap<String, pb::Value>,
) -> Vec<String> {
    check_normalized_config(&source(), sent, answer)
        .iter()
        .map(Mismatch::to_string)
        .collect()
}

#[test]
fn a_fitting_answer_passes() {
    let answer = good_answer();
    assert!(problems(&answer, &answer).is_empty());
    // Optional fields the request left out may stay out; empty strings are unset.
    let minimal = config(&[("host", string("h")), ("database", string(""))]);
    assert!(problems(&BTreeMap::new(), &minimal).is_empty());
}

#[test]
fn each_kind_of_bad_answer_is_named() {
    let cases: Vec<(&str, pb::Value, &str)> = vec![
        (
            "extra",
            string("x"),
            "config.extra: is not a field of the data source",
        ),
        (
            "password",
            string("x"),
            "config.password: is a secret field, returned in the config",
        ),
        ("port", string("5432"), "config.port: is not an integer"),
        ("port", int(0), "config.port: is below the minimum 1"),
        (
            "port",
            int(65536),
            "config.port: is above the maximum 65535",
        ),
        ("tls_on", string("true"), "config.tls_on: is not a boolean"),
        (
            "mode",
            string("FAST"),
            "config.mode: is not one of the allowed values",
        ),
        (
            "mode",
            int(1),
            "config.mode: is not a string from the allowed values",
        ),
        (
            "database",
            string("Orders"),
            "config.database: does not match the field's pattern",
        ),
        (
            "database",
            string("abcdefghi"),
            "config.database: is longer than 8 bytes",
        ),
        ("host", string("a\nb"), "config.host: is not a single line"),
        ("host", int(1), "config.host: is not a string"),
        (
            "hosts",
            string("a"),
            "config.hosts: is not a list of strings",
        ),
        (
            "hosts",
            list(&["ok", "not\nok"]),
            "config.hosts: is not a single line",
        ),
        (
            "host",
            pb::Value { kind: None },
            "config.host: has no value",
        ),
    ];
    for (key, value, expected) in cases {
        let mut answer = good_answer();
        answer.insert(key.into(), value);
        let found = problems(&good_answer(), &answer);
        assert!(
            found.iter().any(|problem| problem == expected),
            "{found:?} lacks {expected:?}"
        );
    }
    let mut long = good_answer();
    let entries: Vec<String> = (0..=value::MAX_LIST_ENTRIES)
        .map(|n| n.to_string())
        .collect();
    long.insert(
        "hosts".into(),
        pb::Value {
            kind: Some(Kind::ListValue(pb::StringList { values: entries })),
        },
    );
    assert_eq!(
        problems(&good_answer(), &long),
        ["config.hosts: has more than 256 entries"]
    );
}

#[test]
fn missing_and_dropped_fields_are_named() {
    // The C example's answer: nothing at all.
    let sent = config(&[("host", string("db")), ("port", int(5432))]);
    assert_eq!(
        problems(&sent, &BTreeMap::new()),
        [
            "config.host: is required but missing from the answer",
            "config.port: was set in the request but dropped from the answer",
        ]
    );
    let empty_host = config(&[("host", string("")), ("port", int(5432))]);
    assert_eq!(
        problems(&sent, &empty_host),
        ["config.host: is required but missing from the answer"]
    );
}

#[test]
fn a_key_that_is_not_a_name_is_not_echoed() {
    let mut answer = good_answer();
    let key = format!("{}\n{}", "x".repeat(100), "secret-looking");
    answer.insert(key, string("v"));
    assert_eq!(
        problems(&good_answer(), &answer),
        ["config.<a key that is not a field name>: is not a field of the data source"]
    );
}

#[test]
fn secrets_must_be_declared_and_required_ones_present() {
    let names = |names: &[&str]| -> Vec<String> {
        check_secret_names(&source(), names.iter().copied())
            .iter()
            .map(Mismatch::to_string)
            .collect()
    };
    assert!(names(&["password"]).is_empty());
    assert!(names(&["password", "token"]).is_empty());
    assert_eq!(
        names(&["password", "api_key"]),
        ["secrets.api_key: is not a secret field of the data source"]
    );
    assert_eq!(
        names(&["password", "host"]),
        ["secrets.host: is not a secret field of the data source"]
    );
    assert_eq!(names(&["token"]), ["secrets.password: is required"]);
}
