//! Entry points for the fuzz targets (`fuzz/`) and the property tests below:
//! how the host decodes and checks what a plugin answers, reachable from
//! outside the crate. Not part of the host's API: hidden from the docs.
//!
//! Plugin output is untrusted input: every function answers any bytes with
//! a value or an error, never a panic.

use connvault_plugin_abi::pb;

use crate::error::LoadError;

/// A `describe` answer as the host keeps it at load: decoded, named,
/// checked and its schema linted.
pub fn describe(
    bytes: &[u8],
    name: &str,
    version: &str,
) -> Result<pb::DescribeResponse, LoadError> {
    crate::describe::decode(bytes, name, version)
}

/// The application error of an `AppError` answer, capped as the host keeps
/// it; `None` if the bytes do not decode.
pub fn application_error(bytes: &[u8]) -> Option<pb::Error> {
    crate::plugin::application_error(bytes)
}

#[cfg(test)]
mod tests {
    use connvault_plugin_abi::pb::FieldType;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::{CallError, check_normalized_config, check_secret_names};

    /// A schema with a field of every type and rule.
    fn source() -> pb::DataSource {
        let field = |name: &str, kind: FieldType| pb::Field {
            name: name.into(),
            r#type: kind as i32,
            ..Default::default()
        };
        pb::DataSource {
            id: "props".into(),
            display_name: "Props".into(),
            fields: vec![
                pb::Field {
                    required: true,
                    pattern: "[a-z.]+".into(),
                    ..field("host", FieldType::String)
                },
                pb::Field {
                    min: Some(1),
                    max: Some(65535),
                    default_value: Some("5432".into()),
                    ..field("port", FieldType::Int)
                },
                field("ssl", FieldType::Bool),
                pb::Field {
                    allowed_values: vec!["a".into(), "b".into()],
                    ..field("mode", FieldType::Enum)
                },
                field("ca", FieldType::Text),
                field("hosts", FieldType::StringList),
                pb::Field {
                    required: true,
                    secret: true,
                    ..field("password", FieldType::String)
                },
            ],
            secret_bound_fields: vec!["host".into()],
            ..Default::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_describe_answer_is_kept_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(kept) = describe(&bytes, "plugin", "1.0") {
                prop_assert_eq!(kept.name.as_str(), "plugin");
                prop_assert!(crate::describe::check(&kept).is_ok());
            }
        }

        #[test]
        fn a_described_schema_round_trips(seed in any::<u64>()) {
            let mut answer = pb::DescribeResponse {
                data_sources: vec![source()],
                ..Default::default()
            };
            answer.data_sources[0].description = format!("seed {seed}");
            let kept = describe(&answer.encode_to_vec(), "plugin", "1.0").unwrap();
            prop_assert_eq!(&kept.data_sources, &answer.data_sources);
        }

        #[test]
        fn application_errors_are_capped(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Some(error) = application_error(&bytes) {
                prop_assert!(error.message.len() <= 1024 && error.field.len() <= 256);
                let code = CallError::Application { plugin: "p".into(), error }.grpc_code();
                prop_assert!((1..=16).contains(&code));
            }
        }

        #[test]
        fn any_validate_answer_is_checked_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(answer) = pb::ValidateResponse::decode(bytes.as_slice()) {
                let source = source();
                let _ = check_normalized_config(&source, &answer.normalized_config, &answer.normalized_config);
                let _ = check_secret_names(&source, answer.normalized_config.keys().map(String::as_str));
            }
        }
    }
}
