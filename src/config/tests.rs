//! Tests of the configuration layers.
use super::*;

#[test]
fn flags_override_the_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connvault.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/cv\"\n[plugins.pins]\n\"libconnvault_plugin_x.so\" = \"ab\"\n",
    )
    .unwrap();
    let args = ServeArgs {
        config: Some(file.clone()),
        data_dir: Some("/flag".into()),
        ..ServeArgs::default()
    };
    let config = Config::load(&args).unwrap();
    assert_eq!(config.listen.port(), 6000);
    assert_eq!(config.data_dir, PathBuf::from("/flag"));
    assert_eq!(config.plugins.pins.len(), 1);
    assert_eq!(config.validate_timeout_ms, 2_000);
    assert_eq!(
        config.audit_retention_secs, 0,
        "audit events are kept by default"
    );
    let args = ServeArgs {
        audit_retention_secs: Some(86_400),
        ..args
    };
    assert_eq!(Config::load(&args).unwrap().audit_retention_secs, 86_400);

    let config = Config::load(&ServeArgs {
        io_calls_per_tenant: Some(3),
        tenant_rate_limit: Some(0),
        ..args.clone()
    })
    .unwrap();
    let options = config.host_options();
    assert_eq!(options.io_calls_per_tenant, 3);
    assert_eq!(options.workers_per_plugin, 8, "the host's default");
    assert!(options.require_pins);
    assert_eq!(config.rate_limit().per_second, 0);
    assert_eq!(Config::default().rate_limit().per_second, 1_000);

    std::fs::write(
        &file,
        "[tls]\ncert_file = \"/etc/cv/cert.pem\"\nkey_file = \"/etc/cv/key.pem\"\n[listener]\nmax_connections = 500\nhandshake_timeout_ms = 3000\n",
    )
    .unwrap();
    let args = ServeArgs {
        tls_key_file: Some("/flag/key.pem".into()),
        max_handshakes: Some(7),
        handshake_timeout_ms: Some(2000),
        ..args
    };
    let config = Config::load(&args).unwrap();
    assert_eq!(
        config.tls.cert_file,
        Some(PathBuf::from("/etc/cv/cert.pem"))
    );
    assert_eq!(config.tls.key_file, Some(PathBuf::from("/flag/key.pem")));
    assert_eq!(config.tls.client_ca_file, None);
    assert_eq!(config.listener.max_connections, 500);
    assert_eq!(config.listener.max_handshakes, 7);
    assert_eq!(config.listener.handshake_timeout_ms, 2000);
    assert!(!config.insecure_plaintext);

    std::fs::write(
        &file,
        "[egress]\nallow = [\"127.0.0.1:6379\"]\ndeny = [\"10.9.0.0/16\"]\ndefault = \"deny\"\n",
    )
    .unwrap();
    let egress = Config::load(&args).unwrap().egress;
    assert_eq!(egress.allow, ["127.0.0.1:6379"]);
    assert_eq!(egress.deny, ["10.9.0.0/16"]);
    assert_eq!(egress.default, EgressDefault::Deny);
    let args = ServeArgs {
        egress_allow: vec!["[::1]:5432".into(), "local:9000".into()],
        ..args
    };
    let egress = Config::load(&args).unwrap().egress;
    assert_eq!(egress.allow, ["[::1]:5432", "local:9000"]);
    assert_eq!(egress.deny, ["10.9.0.0/16"]);

    std::fs::write(&file, "lisen = 1\n").unwrap();
    let error = Config::load(&args).unwrap_err().to_string();
    assert!(error.contains("lisen"), "{error}");
}

#[test]
fn request_and_refused_audit_limits_layer_and_refuse_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connvault.toml");
    let defaults = Config::load(&ServeArgs::default()).unwrap();
    assert_eq!(defaults.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
    assert_eq!(
        defaults.refused_audit,
        crate::audit::RefusalLimits::default()
    );
    std::fs::write(
        &file,
        "max_request_bytes = 65536\n[refused_audit]\nper_sec = 3\nper_tenant_burst = 7\n",
    )
    .unwrap();
    let args = ServeArgs {
        config: Some(file.clone()),
        refused_audit_per_sec: Some(4),
        refused_audit_summary_secs: Some(2),
        ..ServeArgs::default()
    };
    let config = Config::load(&args).unwrap();
    assert_eq!(config.max_request_bytes, 65_536);
    let limits = config.refused_audit;
    assert_eq!(
        (limits.per_sec, limits.per_tenant_burst, limits.summary_secs),
        (4, 7, 2),
        "the flag over the file over the default"
    );
    assert_eq!(limits.burst, 100);
    for broken in [
        ServeArgs {
            refused_audit_per_tenant_per_sec: Some(0),
            ..args.clone()
        },
        ServeArgs {
            max_request_bytes: Some(100),
            ..args.clone()
        },
    ] {
        let error = Config::load(&broken).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid(_)), "{error}");
    }
}
