//! The OpenAPI 3 document of the REST gateway, generated from the same
//! descriptors and `google.api.http` rules the gateway serves: paths from
//! the rules, schemas from the messages (proto3 JSON names and types),
//! descriptions from the protos' comments. docs/openapi.json is this
//! document, committed; a test fails when they differ.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::rules::{Binding, BodyRule, RuleError, Segment};

/// The document, rendered from the compiled descriptors (as served at
/// `/openapi.json` and committed as docs/openapi.json).
pub fn document() -> Result<String, RuleError> {
    let pool = super::pool()?;
    let bindings = super::rules::bindings(&pool)?;
    Ok(render(&bindings))
}

/// Renders the document: pretty JSON, keys sorted, a final newline.
pub fn render(bindings: &[Binding]) -> String {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut wanted: VecDeque<MessageDescriptor> = VecDeque::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for binding in bindings {
        let (path, path_params) = openapi_path(binding);
        let rpc = &binding.rpc;
        let mut operation_id = format!("{}_{}", rpc.parent_service().name(), rpc.name());
        let mut n = 1;
        while !ids.insert(operation_id.clone()) {
            n += 1;
            operation_id = format!("{}_{}{n}", rpc.parent_service().name(), rpc.name());
        }
        let mut parameters: Vec<Value> = path_params;
        parameters.extend(query_parameters(binding));
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(operation_id));
        operation.insert("tags".into(), json!([rpc.parent_service().name()]));
        operation.insert("summary".into(), json!(rpc.name()));
        if let Some(text) = comment(&rpc.parent_file(), rpc.path()) {
            operation.insert("description".into(), json!(text));
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        let body_type = match &binding.body {
            BodyRule::None => None,
            BodyRule::Whole => Some(rpc.input()),
            BodyRule::Field(field) => field_message(&rpc.input(), field),
        };
        if let Some(message) = body_type {
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": {"application/json": {"schema": schema_ref(&message, &mut wanted)}},
                }),
            );
        }
        operation.insert(
            "responses".into(),
            json!({
                "200": {
                    "description": "The reply, in the proto3 JSON mapping.",
                    "content": {"application/json": {"schema": schema_ref(&rpc.output(), &mut wanted)}},
                },
                "default": {
                    "description": "An error (AIP-193): the HTTP status its gRPC code maps to.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            }),
        );
        paths.entry(path).or_default().insert(
            binding.method.as_str().to_ascii_lowercase(),
            Value::Object(operation),
        );
    }
    let mut schemas = Map::new();
    schemas.insert("Error".into(), error_schema());
    while let Some(message) = wanted.pop_front() {
        if schemas.contains_key(message.full_name()) {
            continue;
        }
        let schema = message_schema(&message, &mut wanted);
        schemas.insert(message.full_name().to_owned(), schema);
    }
    let document = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "connvault REST API",
            "version": "v1",
            "description": "The connvault gRPC API served as HTTP+JSON (AIP-127 transcoding of the google.api.http rules in proto/connvault/v1). Bodies use the proto3 JSON mapping; errors are AIP-193 JSON. Generated from the protos: regenerate with `CONNVAULT_WRITE_OPENAPI=1 cargo test --lib openapi`.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
            "schemas": schemas,
        },
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// The OpenAPI path of a template: each `*` becomes a parameter named
/// after the collection before it (`tenants/*` → `{tenant}`).
fn openapi_path(binding: &Binding) -> (String, Vec<Value>) {
    let template = &binding.template;
    let mut path = String::new();
    let mut params = Vec::new();
    let mut previous = "";
    for segment in &template.segments {
        path.push('/');
        match segment {
            Segment::Literal(literal) => {
                path.push_str(literal);
                previous = literal;
            }
            Segment::Any(index) => {
                let field = template
                    .variables
                    .get(*index)
                    .map(|variable| variable.field.as_str())
                    .unwrap_or_default();
                let name = match previous.strip_suffix('s') {
                    Some(singular) if !singular.is_empty() => singular.to_owned(),
                    _ => field.replace('.', "_"),
                };
                path.push('{');
                path.push_str(&name);
                path.push('}');
                params.push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": format!("A segment of `{field}`."),
                    "schema": {"type": "string", "pattern": "^[^/]+$"},
                }));
            }
        }
    }
    if let Some(verb) = &template.verb {
        path.push(':');
        path.push_str(verb);
    }
    (path, params)
}

/// The query parameters: the top-level fields neither the path nor the
/// body binds, that a query string can carry.
fn query_parameters(binding: &Binding) -> Vec<Value> {
    let input = binding.rpc.input();
    let bound: BTreeSet<&str> = binding
        .template
        .variables
        .iter()
        .map(|variable| variable.field.split('.').next().unwrap_or_default())
        .collect();
    let body_field = match &binding.body {
        BodyRule::Whole => return Vec::new(),
        BodyRule::None => None,
        BodyRule::Field(field) => Some(field.as_str()),
    };
    let mut out = Vec::new();
    for field in input.fields() {
        if bound.contains(field.name()) || body_field == Some(field.name()) || field.is_map() {
            continue;
        }
        let Some(mut schema) = query_schema(&field) else {
            continue;
        };
        if field.is_list() {
            schema = json!({"type": "array", "items": schema});
        }
        let mut parameter = Map::new();
        parameter.insert("name".into(), json!(field.json_name()));
        parameter.insert("in".into(), json!("query"));
        if let Some(text) = comment(&input.parent_file(), field.path()) {
            parameter.insert("description".into(), json!(text));
        }
        parameter.insert("schema".into(), schema);
        out.push(Value::Object(parameter));
    }
    out
}

/// A query parameter's schema; `None` for messages a query cannot carry.
fn query_schema(field: &FieldDescriptor) -> Option<Value> {
    match field.kind() {
        Kind::Message(message) => well_known(&message).filter(|schema| {
            schema.get("type").and_then(Value::as_str) != Some("object")
                && schema.get("type").is_some()
        }),
        kind => Some(scalar_schema(&kind)),
    }
}

fn field_message(message: &MessageDescriptor, path: &str) -> Option<MessageDescriptor> {
    let mut current = message.clone();
    for part in path.split('.') {
        current = current
            .get_field_by_name(part)?
            .kind()
            .as_message()?
            .clone();
    }
    Some(current)
}

fn schema_ref(message: &MessageDescriptor, wanted: &mut VecDeque<MessageDescriptor>) -> Value {
    if let Some(schema) = well_known(message) {
        return schema;
    }
    wanted.push_back(message.clone());
    json!({"$ref": format!("#/components/schemas/{}", message.full_name())})
}

/// The well-known types, inline in their JSON forms.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Comma-separated field paths."})
        }
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Any" => {
            json!({"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true})
        }
        "google.protobuf.StringValue" => json!({"type": "string", "nullable": true}),
        "google.protobuf.BoolValue" => json!({"type": "boolean", "nullable": true}),
        "google.protobuf.Int32Value" => {
            json!({"type": "integer", "format": "int32", "nullable": true})
        }
        "google.protobuf.UInt32Value" => {
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64, "nullable": true})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": "string", "format": "int64", "nullable": true})
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": "number", "nullable": true})
        }
        "google.protobuf.BytesValue" => {
            json!({"type": "string", "format": "byte", "nullable": true})
        }
        _ => return None,
    })
}

fn scalar_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64})
        }
        // The proto3 JSON mapping writes 64-bit integers as strings.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(values) => json!({
            "type": "string",
            "enum": values.values().map(|value| value.name().to_owned()).collect::<Vec<_>>(),
        }),
        // Messages are handled by the callers.
        Kind::Message(_) => json!({}),
    }
}

fn field_schema(field: &FieldDescriptor, wanted: &mut VecDeque<MessageDescriptor>) -> Value {
    let single = |kind: &Kind, wanted: &mut VecDeque<MessageDescriptor>| match kind {
        Kind::Message(message) => schema_ref(message, wanted),
        other => scalar_schema(other),
    };
    if field.is_map() {
        let value = field
            .kind()
            .as_message()
            .map(|entry| entry.map_entry_value_field().kind())
            .map(|kind| single(&kind, wanted))
            .unwrap_or_else(|| json!({}));
        return json!({"type": "object", "additionalProperties": value});
    }
    let schema = single(&field.kind(), wanted);
    if field.is_list() {
        json!({"type": "array", "items": schema})
    } else {
        schema
    }
}

fn message_schema(message: &MessageDescriptor, wanted: &mut VecDeque<MessageDescriptor>) -> Value {
    let file = message.parent_file();
    let mut properties = Map::new();
    for field in message.fields() {
        let mut schema = field_schema(&field, wanted);
        if let (Some(text), Value::Object(object)) = (comment(&file, field.path()), &mut schema) {
            // A `$ref` takes no siblings in OpenAPI 3.0: wrap it.
            if object.contains_key("$ref") {
                schema = json!({"allOf": [schema], "description": text});
            } else {
                object.insert("description".into(), json!(text));
            }
        }
        properties.insert(field.json_name().to_owned(), schema);
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    if let Some(text) = comment(&file, message.path()) {
        schema.insert("description".into(), json!(text));
    }
    schema.insert("properties".into(), Value::Object(properties));
    Value::Object(schema)
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "An error as AIP-193 writes it for HTTP+JSON: google.rpc.Status with the HTTP status as `code` and the gRPC code's name as `status`.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "format": "int32"},
                    "message": {"type": "string"},
                    "status": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true}},
                },
            },
        },
    })
}

/// The leading comment of the element at `path` in `file`, trimmed.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info
        .location
        .iter()
        .find(|location| location.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let joined = lines.join(" ").trim().to_owned();
    (!joined.is_empty()).then_some(joined)
}

#[cfg(test)]
mod tests {
    /// The committed document is the generated one: a proto change that
    /// is not regenerated fails here. `CONNVAULT_WRITE_OPENAPI=1` rewrites it.
    #[test]
    fn openapi_document_matches_the_protos() -> Result<(), Box<dyn std::error::Error>> {
        let generated = super::document()?;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        if std::env::var_os("CONNVAULT_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated)?;
        }
        // Compared as JSON values, not text: whether serde_json keeps
        // insertion order is a feature another crate of the build may turn
        // on (it does in `cargo test --workspace`), and it changes the text.
        let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let generated: serde_json::Value = serde_json::from_str(&generated)?;
        assert!(
            committed == generated,
            "docs/openapi.json differs from the protos: regenerate with CONNVAULT_WRITE_OPENAPI=1 cargo test --lib openapi"
        );
        Ok(())
    }
}
