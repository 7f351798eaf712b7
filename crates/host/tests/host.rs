//! The plugin host against real shared libraries: a Rust plugin built with the
//! SDK, a C plugin built against the header, and plugins that misbehave.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use connvault_plugin_host::{
    CallError, HostOptions, LoadError, Method, Plugin, PluginHost, ProviderClient, pb,
};
use connvault_testkit::{
    PluginDir, build_plugins, compile_c_example, compile_c_plugin, dylib_name, workspace_root,
};
use prost::Message;

/// The SDK fixture plugin, built by a separate `cargo build` (once per test process).
fn fixture_so() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"))
    })
    .clone()
}

fn load_fixture(options: &HostOptions) -> (PluginDir, Arc<Plugin>) {
    let dir = PluginDir::new();
    dir.add(&fixture_so(), "fixture");
    let host = PluginHost::load_dir(dir.path(), options);
    assert!(host.refused().is_empty(), "{:?}", host.refused());
    let plugin = host.plugins()[0].clone();
    (dir, plugin)
}

fn spec(config: &[(&str, &str)], secrets: &[(&str, &str)]) -> pb::ConnectionSpec {
    pb::ConnectionSpec {
        data_source: "testdb".into(),
        config: config
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    pb::Value {
                        kind: Some(pb::value::Kind::StringValue((*value).to_owned())),
                    },
                )
            })
            .collect(),
        secrets: secrets
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        tls: None,
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn rust_plugin_describes_validates_tests_and_renders() {
    let (_dir, plugin) = load_fixture(&HostOptions::default());
    let describe = plugin.description();
    assert_eq!(describe.name, "connvault-fixture-testplugin");
    assert_eq!(describe.data_sources[0].id, "testdb");
    assert!(
        describe.data_sources[0]
            .fields
            .iter()
            .any(|f| f.name == "password" && f.secret)
    );

    let good = pb::ValidateRequest {
        connection: Some(spec(
            &[("host", "db.example"), ("port", "6543")],
            &[("password", "pw")],
        )),
        ..Default::default()
    };
    let answer = plugin.validate(&good, SECOND).await.unwrap();
    assert!(answer.violations.is_empty(), "{:?}", answer.violations);
    assert_eq!(
        answer.normalized_config["port"].kind,
        Some(pb::value::Kind::IntValue(6543))
    );
    assert_eq!(
        answer.normalized_config["mode"].kind,
        Some(pb::value::Kind::StringValue("normal".into())),
        "defaults are applied"
    );

    let bad = pb::ValidateRequest {
        connection: Some(spec(
            &[
                ("port", "70000"),
                ("colour", "red"),
                ("password", "x"),
                ("database", "a b"),
            ],
            &[],
        )),
        ..Default::default()
    };
    let answer = plugin.validate(&bad, SECOND).await.unwrap();
    let fields: Vec<&str> = answer.violations.iter().map(|v| v.field.as_str()).collect();
    for expected in [
        "config.port",
        "config.colour",
        "config.password",
        "config.database",
        "config.host",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let request = pb::TestRequest {
        connection: Some(spec(&[("host", "127.0.0.1"), ("port", &port)], &[])),
        deadline_ms: 2000,
        egress: None,
    };
    let result = plugin.test("acme", &request, SECOND * 3).await.unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(result.stages[0].stage, pb::Stage::Resolve as i32);
    assert_eq!(result.server_version, "fixture 1.0");
    drop(listener);
    let result = plugin.test("acme", &request, SECOND * 3).await.unwrap();
    assert!(!result.success);
    assert_eq!(result.error_category, pb::ErrorCategory::Unreachable as i32);

    let render = pb::RenderRequest {
        connection: Some(spec(
            &[("host", "h"), ("user", "u")],
            &[("password", "canary-pw")],
        )),
        include_secrets: false,
    };
    let rendered = plugin.render(&render, SECOND).await.unwrap();
    assert_eq!(rendered.uri, "testdb://u:REDACTED@h:5432/");
    let rendered = plugin
        .render(
            &pb::RenderRequest {
                include_secrets: true,
                ..render
            },
            SECOND,
        )
        .await
        .unwrap();
    assert_eq!(rendered.uri, "testdb://u:canary-pw@h:5432/");

    let invalid = pb::RenderRequest {
        connection: Some(spec(&[("host", "x.invalid-by-rule")], &[])),
        include_secrets: false,
    };
    match plugin.render(&invalid, SECOND).await {
        Err(error @ CallError::Application { .. }) => {
            assert_eq!(error.grpc_code(), 3);
            assert_eq!(error.field(), Some("config.host"));
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_method_and_garbage_request_are_typed_errors() {
    let (_dir, plugin) = load_fixture(&HostOptions::default());
    match plugin.call_raw(99, &[], 1024) {
        Err(error @ CallError::Unimplemented { .. }) => assert_eq!(error.grpc_code(), 12),
        other => panic!("expected UNIMPLEMENTED, got {other:?}"),
    }
    let garbage = [0xff_u8; 16];
    assert!(matches!(
        plugin.call_blocking(Method::Validate, &garbage, 1024),
        Err(CallError::BadRequest { .. })
    ));
}

#[tokio::test]
async fn a_panic_is_caught_and_the_next_call_works() {
    let (_dir, plugin) = load_fixture(&HostOptions::default());
    let panicking = pb::TestRequest {
        connection: Some(spec(&[("host", "127.0.0.1"), ("mode", "panic")], &[])),
        deadline_ms: 1000,
        egress: None,
    };
    let error = plugin.test("acme", &panicking, SECOND).await.unwrap_err();
    assert!(matches!(error, CallError::Panicked { .. }), "{error:?}");
    assert!(error.to_string().contains("connvault-fixture-testplugin"));
    assert_eq!(error.grpc_code(), 13);
    assert_eq!(
        plugin
            .stats()
            .panics
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let fine = pb::ValidateRequest {
        connection: Some(spec(&[("host", "h")], &[])),
        ..Default::default()
    };
    assert!(
        plugin
            .validate(&fine, SECOND)
            .await
            .unwrap()
            .violations
            .is_empty()
    );
}

#[tokio::test]
async fn an_oversized_response_is_refused() {
    let options = HostOptions {
        output_limit: 1 << 20,
        ..HostOptions::default()
    };
    let (_dir, plugin) = load_fixture(&options);
    let flood = pb::RenderRequest {
        connection: Some(spec(&[("host", "h"), ("mode", "flood")], &[])),
        include_secrets: false,
    };
    let error = plugin.render(&flood, SECOND * 10).await.unwrap_err();
    assert!(
        matches!(error, CallError::OutputTooLarge { limit, .. } if limit == 1 << 20),
        "{error:?}"
    );
    assert!(error.to_string().contains("more than 1048576 bytes"));
}

#[tokio::test]
async fn the_c_plugin_on_generated_protobuf_code_loads_and_loses_no_data() {
    let build = tempfile::tempdir().unwrap();
    let dir = PluginDir::new();
    dir.add(&compile_c_example(build.path()), "c_minimal");
    let host = PluginHost::load_dir(dir.path(), &HostOptions::default());
    assert!(host.refused().is_empty(), "{:?}", host.refused());
    let (plugin, source) = host.find("C_MINIMAL").expect("alias lookup");
    assert_eq!(plugin.name(), "c-minimal");
    assert_eq!(plugin.version(), "1.1.0");
    assert_eq!(source.id, "c_minimal");
    assert_eq!(source.fields[0].name, "host");
    assert!(source.fields[0].required);
    assert_eq!(source.fields[1].default_value.as_deref(), Some("5432"));
    assert_eq!(
        (source.fields[1].min, source.fields[1].max),
        (Some(1), Some(65535))
    );
    let validate = |config: Vec<(&str, pb::value::Kind)>| pb::ValidateRequest {
        connection: Some(pb::ConnectionSpec {
            data_source: "c_minimal".into(),
            config: config
                .into_iter()
                .map(|(key, kind)| (key.to_owned(), pb::Value { kind: Some(kind) }))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    use pb::value::Kind;

    // Every entry comes back as sent, the default port is added, and the
    // server's check accepts what it would store — also for a config far
    // over the old example's 512-byte buffer.
    let long_host = format!("{}.example.com", "a".repeat(4000));
    for (host_name, port) in [("db.example.com", None), (long_host.as_str(), Some(6543))] {
        let mut config = vec![("host", Kind::StringValue(host_name.to_owned()))];
        if let Some(port) = port {
            config.push(("port", Kind::IntValue(port)));
        }
        let request = validate(config);
        let answer = plugin.validate(&request, SECOND).await.unwrap();
        assert!(answer.violations.is_empty(), "{:?}", answer.violations);
        let sent = &request.connection.as_ref().unwrap().config;
        let mut expected = sent.clone();
        expected.entry("port".into()).or_insert(pb::Value {
            kind: Some(Kind::IntValue(5432)),
        });
        assert_eq!(answer.normalized_config, expected, "no data is lost");
        // It connects nowhere, and says so.
        assert_eq!(answer.targets, Some(pb::NetworkTargets::default()));
        assert!(
            connvault_plugin_host::check_normalized_config(source, sent, &answer.normalized_config)
                .is_empty()
        );
    }

    // What the SDK's check() would report, the C plugin reports by hand.
    let answer = plugin
        .validate(&pb::ValidateRequest::default(), SECOND)
        .await
        .unwrap();
    assert_eq!(answer.violations.len(), 1);
    assert_eq!(answer.violations[0].field, "config.host");
    let answer = plugin
        .validate(
            &validate(vec![
                ("host", Kind::IntValue(1)),
                ("port", Kind::IntValue(70000)),
                ("colour", Kind::StringValue("red".into())),
            ]),
            SECOND,
        )
        .await
        .unwrap();
    let fields: Vec<String> = answer
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    assert_eq!(
        fields,
        [
            "config.colour: is not a field of c_minimal",
            "config.host: must be a string",
            "config.port: must be between 1 and 65535",
        ]
    );
    assert!(answer.normalized_config.is_empty());
    // Undecodable bytes are BAD_REQUEST, not a crash.
    let error = plugin
        .call_blocking(Method::Validate, &[0xff, 0xff, 0xff], 1 << 20)
        .unwrap_err();
    assert!(matches!(error, CallError::BadRequest { .. }), "{error:?}");
    let error = plugin
        .render(&pb::RenderRequest::default(), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unimplemented { .. }));
}

#[test]
fn malformed_response_is_refused() {
    let build = tempfile::tempdir().unwrap();
    let dir = PluginDir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken_plugin.c");
    dir.add(
        &compile_c_plugin(&source, build.path(), "malformed", &["MALFORMED"]),
        "malformed",
    );
    let host = PluginHost::load_dir(dir.path(), &HostOptions::default());
    let reason = host.refused()[0].error.to_string();
    assert!(
        reason.contains("describe failed") && reason.contains("malformed"),
        "{reason}"
    );
}

fn refusal_reason(host: &PluginHost, file: &Path) -> String {
    host.refused()
        .iter()
        .find(|refusal| refusal.path == file)
        .map(|refusal| refusal.error.to_string())
        .unwrap_or_else(|| panic!("{} was not refused: {:?}", file.display(), host.refused()))
}

#[test]
fn bad_plugins_are_refused_with_a_reason_and_the_rest_load() {
    use std::os::unix::fs::PermissionsExt;
    let build = tempfile::tempdir().unwrap();
    let dir = PluginDir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken_plugin.c");
    let mut expected: Vec<(PathBuf, &str)> = Vec::new();
    for (define, reason) in [
        ("BAD_MAGIC", "bad magic"),
        ("WRONG_MAJOR", "built for plugin ABI 2.1"),
        ("SHORT_DESCRIPTOR", "descriptor is 16 bytes"),
        ("NULL_CALL", "null function pointer"),
        ("NO_ENTRY", "does not export connvault_plugin_entry_v1"),
        ("UNDEFINED_SYMBOL", "connvault_symbol_that_does_not_exist"),
    ] {
        let stem = define.to_ascii_lowercase();
        let so = compile_c_plugin(&source, build.path(), &stem, &[define]);
        expected.push((dir.add(&so, &stem), reason));
    }
    let good = dir.add(&fixture_so(), "good");

    let fixture_bytes = std::fs::read(fixture_so()).unwrap();
    let truncated = dir.add_bytes(&fixture_bytes[..fixture_bytes.len() / 2], "truncated");
    expected.push((truncated, "truncated or corrupt"));
    // The same cut with the section-header table unlinked, so only the
    // program headers describe the file: the PT_LOAD bounds check must catch it.
    let parsed = elf::ElfBytes::<elf::endian::AnyEndian>::minimal_parse(&fixture_bytes).unwrap();
    let last_load_end = parsed
        .segments()
        .unwrap()
        .iter()
        .filter(|segment| segment.p_type == elf::abi::PT_LOAD && segment.p_filesz > 2)
        .map(|segment| (segment.p_offset + segment.p_filesz / 2) as usize)
        .max()
        .unwrap();
    let mut unlinked = fixture_bytes[..last_load_end].to_vec();
    unlinked[0x28..0x30].fill(0); // e_shoff
    unlinked[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    let unlinked = dir.add_bytes(&unlinked, "truncated_segment");
    expected.push((unlinked, "ends past the end of the file"));
    let not_elf = dir.add_bytes(b"#!/bin/sh\necho not a library\n", "not_elf");
    expected.push((not_elf, "not a loadable ELF"));
    let writable = dir.add(&fixture_so(), "writable");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o664)).unwrap();
    expected.push((writable, "writable by group or others"));
    let pinned = dir.add(&fixture_so(), "pinned");
    expected.push((pinned.clone(), "does not match the pinned"));
    // A duplicate of `good` loads after it and serves the same ids.
    let duplicate = dir.add(&fixture_so(), "~duplicate");
    expected.push((duplicate, "already served by plugin"));

    let mut pins = BTreeMap::new();
    pins.insert(
        pinned.file_name().unwrap().to_string_lossy().into_owned(),
        "00".repeat(32),
    );
    let host = PluginHost::load_dir(
        dir.path(),
        &HostOptions {
            pins,
            ..HostOptions::default()
        },
    );
    for (file, reason) in &expected {
        let actual = refusal_reason(&host, file);
        assert!(
            actual.contains(reason),
            "{}: {actual:?} lacks {reason:?}",
            file.display()
        );
    }
    assert_eq!(host.refused().len(), expected.len());
    assert_eq!(host.plugins().len(), 1);
    assert_eq!(host.plugins()[0].path(), good);
    assert!(host.find("TEST_DB").is_some());
}

#[test]
fn a_plugin_whose_schema_contradicts_itself_is_refused_and_the_rest_load() {
    let build = tempfile::tempdir().unwrap();
    let dir = PluginDir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema_plugin.c");
    let sound_so = compile_c_plugin(&source, build.path(), "sound", &[]);
    let sound = dir.add(&sound_so, "a_sound");
    let mut expected: Vec<(PathBuf, &str)> = Vec::new();
    for (define, reason) in [
        (
            "DEFAULT_WRONG_TYPE",
            "schema refused: data source schema_ok: field port: default is not an integer",
        ),
        (
            "DEFAULT_OUT_OF_RANGE",
            "field port: default is above the maximum 65535",
        ),
        (
            "SECRET_DEFAULT",
            "field password: is a secret and has a default",
        ),
        ("BAD_PATTERN", "field host: pattern does not compile"),
        (
            "EMPTY_ENUM",
            "field level: is an enum with no allowed values",
        ),
        ("DUPLICATE_FIELD", "field port appears twice"),
        (
            "OTHER_SOURCE",
            "a plugin named schema-fixture is already loaded",
        ),
    ] {
        let stem = define.to_ascii_lowercase();
        let so = compile_c_plugin(&source, build.path(), &stem, &[define]);
        expected.push((dir.add(&so, &format!("b_{stem}")), reason));
    }
    // The sound schema once more: its data source id is taken.
    expected.push((
        dir.add(&sound_so, "c_again"),
        "data source \"schema_ok\" is already served by plugin schema-fixture",
    ));
    let fixture = dir.add(&fixture_so(), "z_fixture");

    let host = PluginHost::load_dir(dir.path(), &HostOptions::default());
    for (file, reason) in &expected {
        let actual = refusal_reason(&host, file);
        assert!(
            actual.contains(reason),
            "{}: {actual:?} lacks {reason:?}",
            file.display()
        );
        assert!(
            !actual.contains("changeme"),
            "a default secret leaked: {actual}"
        );
    }
    assert_eq!(host.refused().len(), expected.len());
    let loaded: Vec<&Path> = host.plugins().iter().map(|plugin| plugin.path()).collect();
    assert_eq!(loaded, [sound.as_path(), fixture.as_path()]);
    assert!(host.find("schema_ok").is_some() && host.find("testdb").is_some());
}

#[test]
fn an_unpinned_plugin_is_refused_when_pins_are_required() {
    let dir = PluginDir::new();
    dir.add(&fixture_so(), "fixture");
    let host = PluginHost::load_dir(
        dir.path(),
        &HostOptions {
            require_pins: true,
            ..HostOptions::default()
        },
    );
    assert!(matches!(
        host.refused()[0].error,
        LoadError::Unpinned { .. }
    ));
    assert!(host.plugins().is_empty());
}

#[test]
fn the_c_header_matches_the_rust_layout() {
    use connvault_plugin_abi::{HostTable, OutputSink, PluginDescriptor};
    use std::mem::{offset_of, size_of};
    let build = tempfile::tempdir().unwrap();
    let program = build.path().join("layout");
    let status = std::process::Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-I"])
        .arg(workspace_root().join("include"))
        .arg("-o")
        .arg(&program)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout.c"))
        .status()
        .unwrap();
    assert!(status.success());
    let output = std::process::Command::new(&program).output().unwrap();
    let c: BTreeMap<String, u64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse().unwrap())
        })
        .collect();
    let d = "connvault_plugin_descriptor";
    let rust: BTreeMap<String, u64> = [
        ("descriptor.size".to_owned(), size_of::<PluginDescriptor>()),
        (format!("{d}.magic"), offset_of!(PluginDescriptor, magic)),
        (format!("{d}.size"), offset_of!(PluginDescriptor, size)),
        (
            format!("{d}.abi_major"),
            offset_of!(PluginDescriptor, abi_major),
        ),
        (
            format!("{d}.abi_minor"),
            offset_of!(PluginDescriptor, abi_minor),
        ),
        (format!("{d}.flags"), offset_of!(PluginDescriptor, flags)),
        (format!("{d}.name"), offset_of!(PluginDescriptor, name)),
        (
            format!("{d}.version"),
            offset_of!(PluginDescriptor, version),
        ),
        (format!("{d}.init"), offset_of!(PluginDescriptor, init)),
        (format!("{d}.call"), offset_of!(PluginDescriptor, call)),
        (
            format!("{d}.destroy"),
            offset_of!(PluginDescriptor, destroy),
        ),
        ("host_table.size".to_owned(), size_of::<HostTable>()),
        (
            "connvault_host_table.size".to_owned(),
            offset_of!(HostTable, size),
        ),
        (
            "connvault_host_table.abi_minor".to_owned(),
            offset_of!(HostTable, abi_minor),
        ),
        (
            "connvault_host_table.ctx".to_owned(),
            offset_of!(HostTable, ctx),
        ),
        (
            "connvault_host_table.log".to_owned(),
            offset_of!(HostTable, log),
        ),
        ("output_sink.size".to_owned(), size_of::<OutputSink>()),
        (
            "connvault_output_sink.ctx".to_owned(),
            offset_of!(OutputSink, ctx),
        ),
        (
            "connvault_output_sink.write".to_owned(),
            offset_of!(OutputSink, write),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key, value as u64))
    .chain([
        ("magic".to_owned(), connvault_plugin_abi::MAGIC),
        (
            "abi_major".to_owned(),
            u64::from(connvault_plugin_abi::ABI_MAJOR),
        ),
        (
            "abi_minor".to_owned(),
            u64::from(connvault_plugin_abi::ABI_MINOR),
        ),
    ])
    .collect();
    assert_eq!(c, rust);
}

#[test]
fn the_plugin_message_round_trips() {
    // Guards the generated code against an accidental package rename.
    let bytes = pb::Error {
        code: 3,
        message: "m".into(),
        field: "f".into(),
        retryable: true,
    }
    .encode_to_vec();
    assert_eq!(pb::Error::decode(bytes.as_slice()).unwrap().field, "f");
}
