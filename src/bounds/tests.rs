//! Each bound on its own, and the proof that the bounds cover every field of
//! every RPC's request: the tests walk the API's descriptors, build a
//! request with one huge string (or one huge collection) anywhere a client
//! could put one, and expect it refused with a violation naming that field.

use std::collections::HashMap;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet, ListValue};

use super::*;
use crate::pb::{self, v1};

/// A string longer than every byte bound, and over four bytes a character
/// longer than every character bound.
const HUGE: usize = 2 * MAX_PEM_BYTES;
/// More entries than any collection may hold.
const MANY: usize = 100_000;

fn fields(error: ServiceError) -> Vec<String> {
    match error {
        ServiceError::InvalidArgument(violations) => {
            violations.into_iter().map(|v| v.field).collect()
        }
        other => panic!("not INVALID_ARGUMENT: {other:?}"),
    }
}

fn refused<T: Bounded>(request: &T) -> Vec<String> {
    fields(check(request).expect_err("over a bound"))
}

fn text(length: usize) -> String {
    "a".repeat(length)
}

#[test]
fn names_are_bounded_in_total_and_by_segment() {
    let get = |name: String| v1::GetConnectionRequest { name };
    assert!(
        check(&get(format!(
            "tenants/{}/connections/{}",
            text(64),
            uuid::Uuid::nil()
        )))
        .is_ok()
    );
    let at_max = format!("{}/{}", text(127), text(MAX_NAME_SEGMENT_BYTES));
    assert_eq!(at_max.len(), MAX_NAME_BYTES);
    assert!(check(&get(at_max.clone())).is_ok());
    assert_eq!(refused(&get(format!("{at_max}/"))), ["name"]);
    let long_segment = format!("tenants/{}", text(MAX_NAME_SEGMENT_BYTES + 1));
    assert_eq!(refused(&get(long_segment)), ["name"]);
    let batch = v1::BatchDeleteConnectionsRequest {
        parent: "tenants/a".into(),
        names: vec![text(10); MAX_BATCH_NAMES + 1],
    };
    assert_eq!(
        refused(&batch),
        ["names"],
        "one violation for the count, none per name"
    );
    let batch = v1::BatchDeleteConnectionsRequest {
        names: vec![text(10), text(MAX_NAME_BYTES + 1)],
        ..batch
    };
    assert_eq!(refused(&batch), ["names[1]"]);
}

#[test]
fn labels_are_bounded_in_entries_keys_and_values_counted_in_characters() {
    let with = |labels: HashMap<String, String>| v1::CreateTenantRequest {
        tenant_id: "acme".into(),
        tenant: Some(v1::Tenant {
            labels,
            ..Default::default()
        }),
    };
    let wide = "é".repeat(MAX_LABEL_KEY_CHARS);
    assert!(wide.len() > MAX_LABEL_KEY_CHARS, "two bytes a character");
    let fine = HashMap::from([(wide.clone(), "ü".repeat(MAX_LABEL_VALUE_CHARS))]);
    assert!(
        check(&with(fine)).is_ok(),
        "bounds in characters, not bytes"
    );
    let long_key = HashMap::from([(format!("{wide}x"), String::new())]);
    let refusal = refused(&with(long_key));
    assert_eq!(refusal.len(), 1);
    assert!(refusal[0].starts_with("tenant.labels.é"), "{refusal:?}");
    assert!(refusal[0].len() <= "tenant.labels.".len() + ECHO_KEY_BYTES);
    let long_value = HashMap::from([("k".to_owned(), text(MAX_LABEL_VALUE_CHARS + 1))]);
    assert_eq!(refused(&with(long_value)), ["tenant.labels.k"]);
    let many: HashMap<String, String> = (0..=MAX_LABELS)
        .map(|i| (format!("{i}{}", text(200)), String::new()))
        .collect();
    assert_eq!(refused(&with(many)), ["tenant.labels"]);
}

#[test]
fn secrets_are_bounded_and_never_echoed() {
    let value = "hunter2-".repeat(MAX_SECRET_BYTES / 8 + 1);
    let create = v1::CreateConnectionRequest {
        parent: "tenants/a".into(),
        connection: Some(v1::Connection {
            secrets: HashMap::from([("password".to_owned(), value.clone())]),
            ..Default::default()
        }),
        validate_only: false,
    };
    let error = check(&create).expect_err("too long a secret");
    assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
    assert_eq!(fields(error), ["connection.secrets.password"]);
    let many = (0..=MAX_SECRETS).map(|i| (i.to_string(), String::new()));
    let create = v1::CreateConnectionRequest {
        connection: Some(v1::Connection {
            secrets: many.collect(),
            ..Default::default()
        }),
        ..create
    };
    assert_eq!(refused(&create), ["connection.secrets"]);
}

#[test]
fn config_is_bounded_in_keys_strings_lists_and_depth() {
    let string = |s: String| Value {
        kind: Some(Kind::StringValue(s)),
    };
    let list = |values: Vec<Value>| Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    };
    let with = |entries: Vec<(String, Value)>| v1::TestConnectionRequest {
        target: Some(v1::test_connection_request::Target::Connection(
            v1::Connection {
                config: Some(Struct {
                    fields: entries.into_iter().collect(),
                }),
                ..Default::default()
            },
        )),
        parent: "tenants/a".into(),
        timeout_ms: 0,
    };
    let fine = vec![
        ("host".to_owned(), string(text(MAX_CONFIG_STRING_BYTES))),
        (
            "hosts".to_owned(),
            list(vec![string("a".into()); MAX_CONFIG_LIST_ITEMS]),
        ),
    ];
    assert!(check(&with(fine)).is_ok());
    let cases = [
        (
            vec![("host".to_owned(), string(text(MAX_CONFIG_STRING_BYTES + 1)))],
            "connection.config.host",
        ),
        (
            vec![(text(MAX_CONFIG_KEY_BYTES + 1), string(String::new()))],
            "connection.config.aaaa",
        ),
        (
            vec![(
                "hosts".to_owned(),
                list(vec![string(String::new()); MAX_CONFIG_LIST_ITEMS + 1]),
            )],
            "connection.config.hosts",
        ),
        (
            vec![(
                "hosts".to_owned(),
                list(vec![string(text(MAX_CONFIG_STRING_BYTES + 1))]),
            )],
            "connection.config.hosts[0]",
        ),
        (
            vec![("deep".to_owned(), list(vec![list(Vec::new())]))],
            "connection.config.deep[0]",
        ),
        (
            (0..=MAX_CONFIG_FIELDS)
                .map(|i| (i.to_string(), string(String::new())))
                .collect(),
            "connection.config",
        ),
    ];
    for (entries, field) in cases {
        let refusal = refused(&with(entries));
        assert_eq!(refusal.len(), 1, "{refusal:?}");
        assert!(refusal[0].starts_with(field), "{refusal:?} for {field}");
    }
}

#[test]
fn every_other_bound_refuses_one_byte_more() {
    let at = |n: usize| text(n);
    assert_eq!(
        refused(&v1::CreateTenantRequest {
            tenant_id: at(MAX_TENANT_ID_BYTES + 1),
            tenant: None,
        }),
        ["tenant_id"]
    );
    assert_eq!(
        refused(&v1::ListTenantsRequest {
            page_size: 0,
            page_token: at(MAX_PAGE_TOKEN_BYTES + 1),
        }),
        ["page_token"]
    );
    assert_eq!(
        refused(&v1::ListAuditEventsRequest {
            parent: "tenants/-".into(),
            filter: at(MAX_AUDIT_FILTER_BYTES + 1),
            ..Default::default()
        }),
        ["filter"]
    );
    assert_eq!(
        refused(&v1::DiscoverMetadataRequest {
            schema_filter: "é".repeat(MAX_GLOB_CHARS + 1),
            table_filter: "é".repeat(MAX_GLOB_CHARS),
            ..Default::default()
        }),
        ["schema_filter"]
    );
    let update = v1::UpdateConnectionRequest {
        connection: Some(v1::Connection {
            display_name: "é".repeat(MAX_CONNECTION_DISPLAY_NAME_CHARS + 1),
            product: at(MAX_PRODUCT_BYTES + 1),
            data_source: at(MAX_DATA_SOURCE_BYTES + 1),
            tls: Some(v1::TlsConfig {
                ca_pem: at(MAX_PEM_BYTES + 1),
                server_name: at(MAX_SERVER_NAME_BYTES + 1),
                ..Default::default()
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![at(MAX_MASK_PATH_BYTES + 1)],
        }),
        etag: at(MAX_ETAG_BYTES + 1),
    };
    assert_eq!(
        refused(&update),
        [
            "connection.display_name",
            "connection.data_source",
            "connection.tls.ca_pem",
            "connection.tls.server_name",
            "connection.product",
            "update_mask.paths[0]",
            "etag"
        ]
    );
    let within = v1::UpdateConnectionRequest {
        connection: Some(v1::Connection {
            display_name: "é".repeat(MAX_CONNECTION_DISPLAY_NAME_CHARS),
            product: at(MAX_PRODUCT_BYTES),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![at(MAX_MASK_PATH_BYTES); MAX_MASK_PATHS],
        }),
        etag: at(MAX_ETAG_BYTES),
    };
    assert!(check(&within).is_ok());
}

#[test]
fn a_violation_says_how_long_the_value_was_never_what_it_held() {
    let error = check(&v1::GetTenantRequest {
        name: format!("tenants/{}", "secretish".repeat(1000)),
    })
    .expect_err("too long");
    let ServiceError::InvalidArgument(violations) = error else {
        panic!("not INVALID_ARGUMENT");
    };
    assert_eq!(
        violations[0].description,
        "must be at most 256 bytes (it has 9008)"
    );
}

// ---- every field of every request, from the descriptors ----

/// The messages of the descriptor set, by full name (`.connvault.v1.Connection`).
fn messages() -> HashMap<String, DescriptorProto> {
    fn add(out: &mut HashMap<String, DescriptorProto>, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            add(out, &name, nested);
        }
        out.insert(name, message.clone());
    }
    let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut out = HashMap::new();
    for file in &set.file {
        for message in &file.message_type {
            add(&mut out, &format!(".{}", file.package()), message);
        }
    }
    out
}

/// The request type of every RPC of the public API.
fn rpc_inputs() -> Vec<String> {
    let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
    set.file
        .iter()
        .filter(|file| file.package() == "connvault.v1")
        .flat_map(|file| &file.service)
        .flat_map(|service| &service.method)
        .map(|method| method.input_type().to_owned())
        .collect()
}

/// Decodes `bytes` as the request type `name` and checks its bounds.
fn check_encoded(name: &str, bytes: &[u8]) -> Option<Result<(), ServiceError>> {
    macro_rules! requests {
        ($($request:ident),* $(,)?) => {
            match name.strip_prefix(".connvault.v1.")? {
                $(stringify!($request) => Some(check(
                    &v1::$request::decode(bytes).expect("the built request decodes"),
                )),)*
                _ => None,
            }
        };
    }
    requests!(
        CreateConnectionRequest,
        GetConnectionRequest,
        ListConnectionsRequest,
        UpdateConnectionRequest,
        DeleteConnectionRequest,
        BatchDeleteConnectionsRequest,
        TestConnectionRequest,
        DiscoverMetadataRequest,
        ClearMetadataCacheRequest,
        ResolveConnectionRequest,
        CreateTenantRequest,
        UpdateTenantRequest,
        GetTenantRequest,
        ListTenantsRequest,
        DeleteTenantRequest,
        ListDataSourcesRequest,
        GetDataSourceRequest,
        ListAuditEventsRequest,
        BackupRequest,
        ExportTenantRequest,
        ImportTenantRequest,
    )
}

/// One request to build: the encoded bytes, and the field path a
/// violation must start with.
struct Case {
    bytes: Vec<u8>,
    field: String,
    what: String,
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Field `number` as a length-delimited record holding `payload`.
fn delimited(number: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    varint((u64::from(number as u32) << 3) | 2, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// Every way to put one oversized thing in a message of type `name`.
/// `field` is the violation path so far; `exact` says whether deeper names
/// still extend it (inside a map or a well-known type the server names
/// entries its own way, so the path stops there).
fn cases(
    all: &HashMap<String, DescriptorProto>,
    name: &str,
    field: &str,
    exact: bool,
    depth: usize,
) -> Vec<Case> {
    let message = all
        .get(name)
        .unwrap_or_else(|| panic!("no descriptor for {name}"));
    let mut out = Vec::new();
    if depth > 6 {
        return out;
    }
    for descriptor in &message.field {
        let number = descriptor.number();
        let path = if exact {
            if field.is_empty() {
                descriptor.name().to_owned()
            } else {
                format!("{field}.{}", descriptor.name())
            }
        } else {
            field.to_owned()
        };
        let what = format!("{name}.{}", descriptor.name());
        let repeated = descriptor.label() == Label::Repeated;
        match descriptor.r#type() {
            Type::String | Type::Bytes => {
                out.push(Case {
                    bytes: delimited(number, text(HUGE).as_bytes()),
                    field: path.clone(),
                    what: format!("{what}: a huge value"),
                });
                if repeated {
                    out.push(Case {
                        bytes: delimited(number, b"a").repeat(MANY),
                        field: path,
                        what: format!("{what}: many values"),
                    });
                }
            }
            Type::Message => {
                let inner = descriptor.type_name();
                let entry = all
                    .get(inner)
                    .and_then(|d| d.options.as_ref())
                    .is_some_and(|o| o.map_entry());
                // Inside lists, maps and well-known types, paths are the server's own.
                let exact_inside = exact && !repeated && !inner.starts_with(".google.protobuf.");
                if entry {
                    // Distinct keys, or a map decodes them into one entry.
                    let many: Vec<u8> = (0..MANY)
                        .flat_map(|i| delimited(number, &delimited(1, i.to_string().as_bytes())))
                        .collect();
                    out.push(Case {
                        bytes: many,
                        field: path.clone(),
                        what: format!("{what}: many entries"),
                    });
                }
                for case in cases(all, inner, &path, exact_inside, depth + 1) {
                    // A map entry needs a key to be kept apart; any will do.
                    let payload = if entry && !case.bytes.starts_with(&[0x0a]) {
                        [delimited(1, b"k"), case.bytes].concat()
                    } else {
                        case.bytes
                    };
                    out.push(Case {
                        bytes: delimited(number, &payload),
                        field: case.field,
                        what: case.what,
                    });
                }
                if repeated && !entry {
                    out.push(Case {
                        bytes: delimited(number, &[]).repeat(MANY),
                        field: path,
                        what: format!("{what}: many items"),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_string_and_collection_of_every_request_is_bounded() {
    let all = messages();
    let inputs = rpc_inputs();
    assert!(inputs.len() >= 17, "{inputs:?}");
    let mut checked = 0;
    for input in &inputs {
        assert!(
            check_encoded(input, &[]).is_some(),
            "{input} is not in the list of requests this test builds"
        );
        for case in cases(&all, input, "", true, 0) {
            let outcome = check_encoded(input, &case.bytes).expect("listed above");
            let refusal = fields(
                outcome
                    .err()
                    .unwrap_or_else(|| panic!("{}: not refused", case.what)),
            );
            assert!(
                refusal.iter().any(|field| field.starts_with(&case.field)),
                "{}: refused on {refusal:?}, not on {}",
                case.what,
                case.field
            );
            checked += 1;
        }
    }
    // The walk reached inside connections, configs and lists (a walk that
    // stopped early would prove little).
    assert!(checked > 60, "only {checked} cases");
    eprintln!("{checked} oversized requests refused");
}

#[test]
fn the_walk_builds_what_it_claims() {
    // A huge string in `Connection.config`, three messages deep.
    let all = messages();
    let built = cases(&all, ".connvault.v1.CreateConnectionRequest", "", true, 0);
    let config: Vec<&Case> = built
        .iter()
        .filter(|case| case.field == "connection.config")
        .collect();
    assert!(!config.is_empty());
    let struct_value = config
        .iter()
        .map(|case| v1::CreateConnectionRequest::decode(case.bytes.as_slice()).expect("decodes"))
        .filter_map(|request| request.connection?.config)
        .flat_map(|config| config.fields.into_values())
        .any(|value| matches!(value.kind, Some(Kind::StringValue(s)) if s.len() == HUGE));
    assert!(struct_value, "a config value was built with a huge string");
}
