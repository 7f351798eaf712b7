//! Printing answers: proto3 JSON (the mapping grpcurl and every gRPC JSON
//! gateway use), the same as YAML, or a table of the fields that matter.

use std::fmt::Write as _;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

use super::CliError;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Columns of the fields that matter; a single resource as field: value lines.
    #[default]
    Table,
    /// Proto3 JSON, as grpcurl prints it.
    Json,
    /// The same data as YAML.
    Yaml,
}

/// The descriptors of the API, decoded once.
pub(crate) fn pool() -> Result<&'static DescriptorPool, CliError> {
    static POOL: std::sync::OnceLock<Option<DescriptorPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
        .ok_or_else(|| CliError::Internal("the API descriptors do not decode".into()))
}

/// An answer in proto3 JSON: `value` to read fields from, and the message
/// itself, which prints its fields in the proto's order (a JSON map would sort them).
pub(crate) struct Doc {
    message: DynamicMessage,
    /// The same as a JSON value.
    pub value: Value,
}

impl serde::Serialize for Doc {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.message.serialize_with_options(serializer, &options())
    }
}

fn options() -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(true)
}

/// `message` in proto3 JSON; `full_name` is its proto type, e.g. `connvault.v1.Tenant`.
pub(crate) fn to_json(message: &impl Message, full_name: &str) -> Result<Doc, CliError> {
    let descriptor = pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| CliError::Internal(format!("no descriptor for {full_name}")))?;
    let message = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|error| CliError::Internal(format!("re-decoding {full_name}: {error}")))?;
    let value = message
        .serialize_with_options(serde_json::value::Serializer, &options())
        .map_err(|error| CliError::Internal(format!("{full_name} as JSON: {error}")))?;
    Ok(Doc { message, value })
}

/// A message of type `M` from proto3 JSON (`full_name` is its proto type).
pub(crate) fn from_json<M: Message + Default>(
    value: Value,
    full_name: &str,
) -> Result<M, CliError> {
    let descriptor = pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| CliError::Internal(format!("no descriptor for {full_name}")))?;
    let dynamic = DynamicMessage::deserialize(descriptor, value)
        .map_err(|error| CliError::Input(format!("not a valid {full_name}: {error}")))?;
    M::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|error| CliError::Internal(format!("re-encoding {full_name}: {error}")))
}

/// Columns of a table: (heading, JSON field).
pub(crate) type Columns = &'static [(&'static str, &'static str)];

/// Prints one resource.
pub(crate) fn print_one(output: Output, doc: &Doc) -> Result<(), CliError> {
    match output {
        Output::Table => {
            print!("{}", fields_text(&doc.value));
            Ok(())
        }
        _ => print_data(output, doc),
    }
}

/// Prints a list: `items` in a table, or the whole answer as data.
pub(crate) fn print_list(
    output: Output,
    doc: &Doc,
    items: &str,
    columns: Columns,
) -> Result<(), CliError> {
    let answer = &doc.value;
    match output {
        Output::Table => {
            let rows = answer
                .get(items)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            print!("{}", table(rows, columns));
            if let Some(token) = answer.get("nextPageToken").and_then(Value::as_str) {
                println!("(more: --page-token {token})");
            }
            Ok(())
        }
        _ => print_data(output, doc),
    }
}

/// Prints `value` as JSON or YAML.
pub(crate) fn print_data(output: Output, value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = match output {
        Output::Yaml => serde_yaml_ng::to_string(value)
            .map_err(|error| CliError::Internal(format!("YAML: {error}")))?,
        _ => {
            let mut text = serde_json::to_string_pretty(value)
                .map_err(|error| CliError::Internal(format!("JSON: {error}")))?;
            text.push('\n');
            text
        }
    };
    print!("{text}");
    Ok(())
}

/// A cell: strings bare, everything else as compact JSON, one line.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.replace('\n', " "),
        Some(other) => other.to_string(),
    }
}

/// Rows under headings, columns padded to their widest cell.
pub(crate) fn table(rows: &[Value], columns: Columns) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, field)| cell(row.get(*field)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, (heading, _))| {
            cells
                .iter()
                .map(|row| row[index].chars().count())
                .chain([heading.len()])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let mut text = String::new();
    let mut line = |values: Vec<&str>| {
        let mut out = String::new();
        for (index, value) in values.iter().enumerate() {
            if index + 1 == values.len() {
                out.push_str(value);
            } else {
                let _ = write!(out, "{value:<width$}  ", width = widths[index]);
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(columns.iter().map(|(heading, _)| *heading).collect());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    text
}

/// A resource as `field: value` lines, nested values as compact JSON.
fn fields_text(value: &Value) -> String {
    let Some(object) = value.as_object() else {
        return format!("{}\n", cell(Some(value)));
    };
    let width = object.keys().map(String::len).max().unwrap_or_default();
    object
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {}\n", cell(Some(value))))
        .collect()
}
