//! Builds a request message from what an HTTP call carries, per its rule
//! (AIP-127): the path's variables, the body (the whole message or one
//! field), and the query string for the fields neither binds. All of it
//! is assembled as one proto3 JSON object and decoded once, so the JSON
//! mapping's rules (names, enums, 64-bit integers, well-known types) apply
//! the same way wherever a value came from.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::rules::{Binding, BodyRule};

/// One refused part of the request: the field (as the caller named it) and
/// why. Descriptions never repeat the value (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct Violation {
    /// The field, dotted, or `body` / the query key.
    pub field: String,
    /// Why.
    pub description: String,
}

fn violation(field: &str, description: impl Into<String>) -> Violation {
    Violation {
        field: field.to_owned(),
        description: description.into(),
    }
}

/// The request message for `binding`, from the path variables' values
/// (in the template's order), the raw query string and the body bytes.
pub fn build(
    binding: &Binding,
    variables: Vec<String>,
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, Violation> {
    let input = binding.rpc.input();
    let mut root = Map::new();
    match &binding.body {
        BodyRule::None if !body.iter().all(u8::is_ascii_whitespace) => {
            return Err(violation("body", "this method takes no body"));
        }
        BodyRule::None => {}
        BodyRule::Whole => {
            if let Some(value) = parse_body(body)? {
                let Value::Object(object) = value else {
                    return Err(violation("body", "expected a JSON object"));
                };
                root = object;
            }
        }
        BodyRule::Field(field) => {
            if let Some(value) = parse_body(body)? {
                set_path(&mut root, field, value);
            }
        }
    }
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| violation("query", "not a valid query string"))?;
        for (key, text) in pairs {
            if binding.body == BodyRule::Whole {
                return Err(violation(&key, "this method takes its fields in the body"));
            }
            if let BodyRule::Field(field) = &binding.body
                && (key == *field || key.starts_with(&format!("{field}.")))
            {
                return Err(violation(&key, "this field is set in the body"));
            }
            let leaf = resolve(&input, &key)?;
            let value = query_value(&leaf, &key, text)?;
            if leaf.is_list() {
                push_path(&mut root, &key, value);
            } else {
                set_path(&mut root, &key, value);
            }
        }
    }
    // The path decides: a name in the body cannot point elsewhere.
    for (variable, value) in binding.template.variables.iter().zip(variables) {
        set_path(&mut root, &variable.field, Value::String(value));
    }
    DynamicMessage::deserialize(input.clone(), Value::Object(root)).map_err(|error| {
        let text = error.to_string();
        // Field names help; a value (perhaps a secret) must not be echoed.
        let description = if text.starts_with("unknown field") || text.starts_with("missing field")
        {
            text
        } else {
            format!(
                "not a valid {} in the proto3 JSON mapping (check each field's type)",
                input.name()
            )
        };
        violation("body", description)
    })
}

fn parse_body(body: &[u8]) -> Result<Option<Value>, Violation> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|error| match error.classify() {
            serde_json::error::Category::Data => violation("body", "unexpected JSON value"),
            _ => violation(
                "body",
                format!(
                    "not valid JSON (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            ),
        })
}

/// The field a dotted query key names (proto or JSON names), through
/// singular message fields.
fn resolve(message: &MessageDescriptor, key: &str) -> Result<FieldDescriptor, Violation> {
    let mut current = message.clone();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(|| violation(key, "unknown field"))?;
        if parts.peek().is_none() {
            return Ok(field);
        }
        current = match field.kind() {
            Kind::Message(next) if !field.is_list() && !field.is_map() => next,
            _ => return Err(violation(key, "not a message field")),
        };
    }
    Err(violation(key, "unknown field"))
}

/// A query value as its proto3 JSON form: strings are accepted for every
/// number, so only booleans and messages need care.
fn query_value(field: &FieldDescriptor, key: &str, text: String) -> Result<Value, Violation> {
    if field.is_map() {
        return Err(violation(key, "maps cannot be set from the query string"));
    }
    match field.kind() {
        Kind::Bool => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(violation(key, "expected true or false")),
        },
        Kind::Enum(_) => Ok(match text.parse::<i64>() {
            Ok(number) => Value::from(number),
            Err(_) => Value::String(text),
        }),
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.FieldMask"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue" => Ok(Value::String(text)),
            _ => Err(violation(
                key,
                "messages cannot be set from the query string",
            )),
        },
        _ => Ok(Value::String(text)),
    }
}

/// Puts `value` at a dotted path, making objects on the way (replacing
/// any non-object there); `push` appends to an array instead.
fn insert(map: &mut Map<String, Value>, parts: &[&str], value: Value, push: bool) {
    match parts {
        [] => {}
        [last] if push => match map
            .entry((*last).to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items.push(value),
            other => *other = Value::Array(vec![value]),
        },
        [last] => {
            map.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert(inner, rest, value, push);
            } else {
                let mut inner = Map::new();
                insert(&mut inner, rest, value, push);
                *entry = Value::Object(inner);
            }
        }
    }
}

fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    insert(root, &parts, value, false);
}

fn push_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    insert(root, &parts, value, true);
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DescriptorPool, Value as Field};

    use super::*;
    use crate::http::rest::rules::{self, Binding};

    fn binding(method: &str, verb: &str) -> Result<Binding, Box<dyn std::error::Error>> {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)?;
        rules::bindings(&pool)?
            .into_iter()
            .find(|b| b.rpc.name() == method && b.method.as_str() == verb)
            .ok_or_else(|| format!("no binding for {method}").into())
    }

    #[test]
    fn path_query_and_body_fill_one_message() -> Result<(), Box<dyn std::error::Error>> {
        let update = binding("UpdateConnection", "PATCH")?;
        let message = build(
            &update,
            vec!["tenants/acme/connections/c1".into()],
            Some("updateMask=displayName,labels&etag=%22e1%22"),
            br#"{"displayName": "New", "name": "tenants/other/connections/x"}"#,
        )?;
        let connection = message
            .get_field_by_name("connection")
            .ok_or("no connection")?;
        let connection = connection.as_message().ok_or("not a message")?;
        assert_eq!(
            connection.get_field_by_name("name").as_deref(),
            Some(&Field::String("tenants/acme/connections/c1".into())),
            "the path wins over the body"
        );
        assert_eq!(
            message.get_field_by_name("etag").as_deref(),
            Some(&Field::String("\"e1\"".into()))
        );
        let list = binding("ListConnections", "GET")?;
        let listed = build(
            &list,
            vec!["tenants/acme".into()],
            Some("page_size=5&orderBy=2"),
            b"",
        )?;
        assert_eq!(
            listed.get_field_by_name("page_size").as_deref(),
            Some(&Field::I32(5))
        );
        Ok(())
    }

    #[test]
    fn misplaced_and_malformed_input_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let get = binding("GetConnection", "GET")?;
        let name = || vec!["tenants/acme/connections/c1".to_owned()];
        assert_eq!(
            build(&get, name(), None, b"{}").map_err(|v| v.field),
            Err("body".into())
        );
        assert_eq!(
            build(&get, name(), Some("nope=1"), b"").map_err(|v| v.field),
            Err("nope".into())
        );
        let resolve = binding("ResolveConnection", "POST")?;
        assert_eq!(
            build(&resolve, name(), Some("name=x"), b"").map_err(|v| v.field),
            Err("name".into()),
            "a body-`*` method takes no query fields"
        );
        let create = binding("CreateConnection", "POST")?;
        let bad = build(
            &create,
            vec!["tenants/acme".into()],
            None,
            br#"{"secrets": "do-not-echo"}"#,
        );
        let violation = bad.err().ok_or("accepted a string as a map")?;
        assert!(
            !violation.description.contains("do-not-echo"),
            "{violation:?}"
        );
        let truncated = build(&create, vec!["tenants/acme".into()], None, b"{\"a\"");
        assert!(truncated.is_err());
        Ok(())
    }
}
