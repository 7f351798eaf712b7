//! The README's "Data sources" section is generated from the first-party
//! plugins' schemas (`describe`), so it cannot drift from what the server
//! accepts. This test renders it and compares; with `CONNVAULT_BLESS=1` it
//! rewrites the section instead:
//!
//! ```text
//! CONNVAULT_BLESS=1 cargo test --test e2e readme
//! ```

use std::fmt::Write as _;

use connvault_plugin_host::pb::{self, FieldType};
use connvault_plugin_host::{HostOptions, PluginHost};
use connvault_testkit::{PluginDir, build_plugins, dylib_name, workspace_root};

const BEGIN: &str = "<!-- data-sources:begin -->";
const END: &str = "<!-- data-sources:end -->";

/// (package, plugin file stem) of each first-party plugin.
const PLUGINS: [(&str, &str); 7] = [
    ("connvault-plugin-postgres", "postgres"),
    ("connvault-plugin-mysql", "mysql"),
    ("connvault-plugin-redis", "redis"),
    ("connvault-plugin-jdbc", "jdbc"),
    ("connvault-plugin-sqlserver", "sqlserver"),
    ("connvault-plugin-mongodb", "mongodb"),
    ("connvault-plugin-oracle", "oracle"),
];

/// Text for a markdown table cell: one line, pipes escaped (GitHub's tables
/// need `\|` even inside code spans, where nothing else is an escape).
fn cell(text: &str) -> String {
    text.trim().replace('|', "\\|").replace('\n', " ")
}

fn code(text: &str) -> String {
    format!("`{}`", cell(text))
}

fn type_name(field: &pb::Field) -> &'static str {
    match field.r#type() {
        FieldType::String => "string",
        FieldType::Int => "int",
        FieldType::Bool => "bool",
        FieldType::Enum => "enum",
        FieldType::Text => "text",
        FieldType::StringList => "string list",
        FieldType::Unspecified => "?",
    }
}

fn allowed(field: &pb::Field) -> String {
    let mut parts = Vec::new();
    if !field.allowed_values.is_empty() {
        parts.push(
            field
                .allowed_values
                .iter()
                .map(|value| code(value))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    match (field.min, field.max) {
        (Some(min), Some(max)) => parts.push(format!("{min}–{max}")),
        (Some(min), None) => parts.push(format!("≥ {min}")),
        (None, Some(max)) => parts.push(format!("≤ {max}")),
        (None, None) => {}
    }
    if !field.pattern.is_empty() {
        parts.push(format!("pattern {}", code(&field.pattern)));
    }
    if field.max_length > 0 {
        parts.push(format!("≤ {} bytes", field.max_length));
    }
    parts.join("; ")
}

fn yes(flag: bool) -> &'static str {
    if flag { "yes" } else { "" }
}

/// Markdown for every data source, in plugin load order.
fn render(host: &PluginHost) -> String {
    let mut out = String::new();
    out.push_str(
        "Generated from the plugins' schemas by `tests/e2e/readme.rs` \
         (`CONNVAULT_BLESS=1 cargo test --test e2e readme` rewrites it). \
         Config fields go in `config`, secret fields in `secrets`.\n",
    );
    for (plugin, source) in host.data_sources() {
        let _ = write!(
            out,
            "\n### `{}` — {}\n\n",
            source.id,
            cell(&source.display_name)
        );
        if !source.description.trim().is_empty() {
            let _ = writeln!(out, "{}\n", source.description.trim());
        }
        let aliases = if source.aliases.is_empty() {
            "none".to_owned()
        } else {
            source
                .aliases
                .iter()
                .map(|alias| code(alias))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "- Aliases: {aliases}");
        let _ = writeln!(out, "- Plugin: `{}`", plugin.name());
        let _ = writeln!(
            out,
            "- TLS settings (`tls`): {}",
            if source.supports_tls {
                "honoured"
            } else {
                "ignored"
            }
        );
        let _ = writeln!(
            out,
            "- SSH tunnel (`tunnel`): {}",
            if source.supports_tunnel {
                "supported"
            } else {
                "not supported"
            }
        );
        if !source.secret_bound_fields.is_empty() {
            let _ = writeln!(
                out,
                "- Changing {} requires re-sending the secrets",
                source
                    .secret_bound_fields
                    .iter()
                    .map(|field| code(field))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else {
            let _ = writeln!(
                out,
                "- Changing any config field requires re-sending the secrets"
            );
        }
        out.push_str(
            "\n| Field | Type | Required | Secret | Default | Allowed values / range | Description |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for field in &source.fields {
            let description = if field.description.trim().is_empty() {
                cell(&field.label)
            } else {
                cell(&field.description)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                code(&field.name),
                type_name(field),
                yes(field.required),
                yes(field.secret),
                field.default_value.as_deref().map(code).unwrap_or_default(),
                allowed(field),
                description,
            );
        }
    }
    out
}

/// Replaces the text between the markers; `None` when they are missing.
fn splice(readme: &str, body: &str) -> Option<String> {
    let start = readme.find(BEGIN)? + BEGIN.len();
    let end = start + readme[start..].find(END)?;
    Some(format!("{}\n{body}{}", &readme[..start], &readme[end..]))
}

#[test]
fn readme_data_sources_match_the_plugin_schemas() {
    let packages: Vec<&str> = PLUGINS.iter().map(|(package, _)| *package).collect();
    let built = build_plugins(&packages);
    let dir = PluginDir::new();
    for (_, name) in PLUGINS {
        dir.add(
            &built.join(dylib_name(&format!("connvault_plugin_{name}"))),
            name,
        );
    }
    let host = PluginHost::load_dir(dir.path(), &HostOptions::default());
    assert!(
        host.refused().is_empty(),
        "plugins refused: {:?}",
        host.refused()
    );
    assert_eq!(host.plugins().len(), PLUGINS.len());
    let body = render(&host);

    let path = workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("read README.md");
    let expected = splice(&readme, &body)
        .unwrap_or_else(|| panic!("README.md lacks the markers {BEGIN} ... {END}"));
    if std::env::var_os("CONNVAULT_BLESS").is_some_and(|value| value == "1") {
        if expected != readme {
            std::fs::write(&path, &expected).expect("write README.md");
        }
        return;
    }
    if expected != readme {
        let first = readme
            .lines()
            .zip(expected.lines())
            .position(|(old, new)| old != new)
            .unwrap_or(readme.lines().count().min(expected.lines().count()));
        panic!(
            "README.md's data-source section is out of date (first difference at line {}):\n  README:    {:?}\n  generated: {:?}\n\
             Run `CONNVAULT_BLESS=1 cargo test --test e2e readme` and commit README.md.",
            first + 1,
            readme.lines().nth(first).unwrap_or(""),
            expected.lines().nth(first).unwrap_or(""),
        );
    }
}
