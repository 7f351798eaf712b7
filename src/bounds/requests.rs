//! The bounds of each RPC's request message, field by field. Output-only
//! fields a client may still send (a connection's `etag`, `last_test`...)
//! are ignored by the server but bounded all the same: they are decoded and
//! held in memory like the rest.

use super::*;
use crate::pb::v1;

/// The page tokens, page by page.
fn page_token(check: &mut Check, token: &str) {
    check.bytes("page_token", token, MAX_PAGE_TOKEN_BYTES);
}

/// A connection as a request carries it (create, update, inline test).
fn connection(check: &mut Check, connection: &v1::Connection) {
    check.name("name", &connection.name);
    check.chars(
        "display_name",
        &connection.display_name,
        MAX_CONNECTION_DISPLAY_NAME_CHARS,
    );
    check.bytes(
        "data_source",
        &connection.data_source,
        MAX_DATA_SOURCE_BYTES,
    );
    check.config("config", connection.config.as_ref());
    check.secrets("secrets", &connection.secrets);
    check.strings(
        "secret_fields",
        &connection.secret_fields,
        MAX_SECRETS,
        MAX_SECRET_NAME_BYTES,
    );
    if let Some(tls) = &connection.tls {
        check.within("tls.", |check| {
            check.bytes("ca_pem", &tls.ca_pem, MAX_PEM_BYTES);
            check.bytes("client_cert_pem", &tls.client_cert_pem, MAX_PEM_BYTES);
            check.bytes("client_key_pem", &tls.client_key_pem, MAX_PEM_BYTES);
            check.bytes("server_name", &tls.server_name, MAX_SERVER_NAME_BYTES);
        });
    }
    if let Some(tunnel) = &connection.tunnel {
        check.within("tunnel.", |check| {
            check.bytes("host", &tunnel.host, MAX_TUNNEL_HOST_BYTES);
            check.bytes("user", &tunnel.user, MAX_TUNNEL_USER_BYTES);
            check.bytes("private_key", &tunnel.private_key, MAX_TUNNEL_KEY_BYTES);
            check.bytes(
                "private_key_passphrase",
                &tunnel.private_key_passphrase,
                MAX_TUNNEL_PASSWORD_BYTES,
            );
            check.bytes("password", &tunnel.password, MAX_TUNNEL_PASSWORD_BYTES);
            check.strings(
                "host_key_fingerprints",
                &tunnel.host_key_fingerprints,
                MAX_TUNNEL_FINGERPRINTS,
                MAX_TUNNEL_FINGERPRINT_BYTES,
            );
        });
    }
    check.labels("labels", &connection.labels);
    check.bytes("product", &connection.product, MAX_PRODUCT_BYTES);
    check.bytes("etag", &connection.etag, MAX_ETAG_BYTES);
    if let Some(test) = &connection.last_test {
        check.within("last_test.", |check| test_result(check, test));
    }
}

/// An input `last_test` (output only).
fn test_result(check: &mut Check, test: &v1::TestConnectionResponse) {
    check.bytes("message", &test.message, MAX_TEST_MESSAGE_BYTES);
    check.bytes(
        "server_version",
        &test.server_version,
        MAX_TEST_MESSAGE_BYTES,
    );
    if check.count("stages", test.stages.len(), MAX_TEST_STAGES) {
        for (index, stage) in test.stages.iter().enumerate() {
            if stage.message.len() > MAX_TEST_MESSAGE_BYTES {
                check.bytes(
                    &format!("stages[{index}].message"),
                    &stage.message,
                    MAX_TEST_MESSAGE_BYTES,
                );
            }
        }
    }
}

impl Bounded for v1::CreateConnectionRequest {
    fn bound(&self, check: &mut Check) {
        check.name("parent", &self.parent);
        if let Some(value) = &self.connection {
            check.within("connection.", |check| connection(check, value));
        }
    }
}

impl Bounded for v1::GetConnectionRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}

impl Bounded for v1::ListConnectionsRequest {
    fn bound(&self, check: &mut Check) {
        check.name("parent", &self.parent);
        page_token(check, &self.page_token);
        check.bytes("data_source", &self.data_source, MAX_DATA_SOURCE_BYTES);
        check.bytes("product", &self.product, MAX_PRODUCT_BYTES);
        check.labels("labels", &self.labels);
    }
}

impl Bounded for v1::UpdateConnectionRequest {
    fn bound(&self, check: &mut Check) {
        if let Some(value) = &self.connection {
            check.within("connection.", |check| connection(check, value));
        }
        if let Some(mask) = &self.update_mask {
            check.strings(
                "update_mask.paths",
                &mask.paths,
                MAX_MASK_PATHS,
                MAX_MASK_PATH_BYTES,
            );
        }
        check.bytes("etag", &self.etag, MAX_ETAG_BYTES);
    }
}

impl Bounded for v1::DeleteConnectionRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
        check.bytes("etag", &self.etag, MAX_ETAG_BYTES);
    }
}

impl Bounded for v1::BatchDeleteConnectionsRequest {
    fn bound(&self, check: &mut Check) {
        check.name("parent", &self.parent);
        check.names("names", &self.names, MAX_BATCH_NAMES);
    }
}

impl Bounded for v1::TestConnectionRequest {
    fn bound(&self, check: &mut Check) {
        use v1::test_connection_request::Target;
        match &self.target {
            Some(Target::Name(name)) => check.name("name", name),
            Some(Target::Connection(value)) => {
                check.within("connection.", |check| connection(check, value));
            }
            None => {}
        }
        check.name("parent", &self.parent);
    }
}

impl Bounded for v1::DiscoverMetadataRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
        check.chars("schema_filter", &self.schema_filter, MAX_GLOB_CHARS);
        check.chars("table_filter", &self.table_filter, MAX_GLOB_CHARS);
    }
}

impl Bounded for v1::ClearMetadataCacheRequest {
    fn bound(&self, check: &mut Check) {
        use v1::clear_metadata_cache_request::Target;
        match &self.target {
            Some(Target::Name(name)) => check.name("name", name),
            Some(Target::Parent(parent)) => check.name("parent", parent),
            None => {}
        }
    }
}

impl Bounded for v1::ResolveConnectionRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}

/// A tenant as a request carries it (create, update).
fn tenant(check: &mut Check, tenant: &v1::Tenant) {
    check.name("name", &tenant.name);
    check.chars(
        "display_name",
        &tenant.display_name,
        MAX_TENANT_DISPLAY_NAME_CHARS,
    );
    check.labels("labels", &tenant.labels);
    check.bytes("etag", &tenant.etag, MAX_ETAG_BYTES);
    if let Some(egress) = &tenant.egress {
        check.within("egress.", |check| {
            for (field, rules) in [("allow", &egress.allow), ("deny", &egress.deny)] {
                check.strings(field, rules, MAX_EGRESS_RULES, MAX_EGRESS_RULE_BYTES);
            }
        });
    }
    if let Some(forms) = &tenant.forms {
        use crate::app::forms::settings_bounds as form;
        check.within("forms.", |check| {
            for (field, origins) in [
                ("allowed_redirect_origins", &forms.allowed_redirect_origins),
                ("frame_ancestors", &forms.frame_ancestors),
            ] {
                check.strings(field, origins, form::MAX_ORIGINS, form::MAX_ORIGIN_BYTES);
            }
            check.strings(
                "allowed_data_sources",
                &forms.allowed_data_sources,
                form::MAX_FORM_DATA_SOURCES,
                MAX_DATA_SOURCE_BYTES,
            );
            check.chars(
                "branding_display_name",
                &forms.branding_display_name,
                form::MAX_BRANDING_CHARS,
            );
            check.bytes("accent_color", &forms.accent_color, 7);
        });
    }
}

impl Bounded for v1::CreateTenantRequest {
    fn bound(&self, check: &mut Check) {
        check.bytes("tenant_id", &self.tenant_id, MAX_TENANT_ID_BYTES);
        if let Some(value) = &self.tenant {
            check.within("tenant.", |check| tenant(check, value));
        }
    }
}

impl Bounded for v1::UpdateTenantRequest {
    fn bound(&self, check: &mut Check) {
        if let Some(value) = &self.tenant {
            check.within("tenant.", |check| tenant(check, value));
        }
        if let Some(mask) = &self.update_mask {
            check.strings(
                "update_mask.paths",
                &mask.paths,
                MAX_MASK_PATHS,
                MAX_MASK_PATH_BYTES,
            );
        }
        check.bytes("etag", &self.etag, MAX_ETAG_BYTES);
    }
}

impl Bounded for v1::GetTenantRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}

impl Bounded for v1::ListTenantsRequest {
    fn bound(&self, check: &mut Check) {
        page_token(check, &self.page_token);
    }
}

impl Bounded for v1::DeleteTenantRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}

// The plugin requests carry no fields.
impl Bounded for v1::ListPluginsRequest {
    fn bound(&self, _check: &mut Check) {}
}

impl Bounded for v1::ReloadPluginsRequest {
    fn bound(&self, _check: &mut Check) {}
}

impl Bounded for v1::ListDataSourcesRequest {
    fn bound(&self, check: &mut Check) {
        page_token(check, &self.page_token);
    }
}

impl Bounded for v1::GetDataSourceRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}

impl Bounded for v1::ListAuditEventsRequest {
    fn bound(&self, check: &mut Check) {
        check.name("parent", &self.parent);
        check.bytes("filter", &self.filter, MAX_AUDIT_FILTER_BYTES);
        page_token(check, &self.page_token);
    }
}

impl Bounded for v1::BackupRequest {
    fn bound(&self, _check: &mut Check) {}
}

impl Bounded for v1::ExportTenantRequest {
    fn bound(&self, check: &mut Check) {
        use v1::export_tenant_request::Recipient;
        check.name("name", &self.name);
        match &self.recipient {
            Some(Recipient::AgeRecipient(key)) => {
                check.bytes("age_recipient", key, MAX_AGE_KEY_BYTES)
            }
            Some(Recipient::Passphrase(words)) => {
                check.bytes("passphrase", words, MAX_PASSPHRASE_BYTES)
            }
            None => {}
        }
    }
}

impl Bounded for v1::ImportTenantRequest {
    fn bound(&self, check: &mut Check) {
        use v1::import_tenant_request::Identity;
        match &self.identity {
            Some(Identity::AgeIdentity(key)) => check.bytes("age_identity", key, MAX_AGE_KEY_BYTES),
            Some(Identity::Passphrase(words)) => {
                check.bytes("passphrase", words, MAX_PASSPHRASE_BYTES)
            }
            None => {}
        }
        check.data("data", &self.data, MAX_IMPORT_PIECE_BYTES);
    }
}

impl Bounded for v1::RotateDataKeyRequest {
    fn bound(&self, _check: &mut Check) {}
}

impl Bounded for v1::GetKeyStatusRequest {
    fn bound(&self, _check: &mut Check) {}
}

/// A master key is 32 bytes; anything much longer is not one.
const MAX_MASTER_KEY_BYTES: usize = 64;

impl Bounded for v1::RewrapMasterKeyRequest {
    fn bound(&self, check: &mut Check) {
        check.data(
            "current_master_key",
            &self.current_master_key,
            MAX_MASTER_KEY_BYTES,
        );
        check.data("new_master_key", &self.new_master_key, MAX_MASTER_KEY_BYTES);
    }
}

impl Bounded for v1::CreateFormLinkRequest {
    fn bound(&self, check: &mut Check) {
        use crate::app::forms::{MAX_REDIRECT_URL_BYTES, MAX_STATE_BYTES};
        use v1::create_form_link_request::Flow;
        check.name("parent", &self.parent);
        check.bytes("redirect_url", &self.redirect_url, MAX_REDIRECT_URL_BYTES);
        check.bytes("state", &self.state, MAX_STATE_BYTES);
        match &self.flow {
            Some(Flow::Create(create)) => check.within("create.", |check| {
                check.bytes("data_source", &create.data_source, MAX_DATA_SOURCE_BYTES);
                check.chars(
                    "display_name",
                    &create.display_name,
                    MAX_CONNECTION_DISPLAY_NAME_CHARS,
                );
                check.labels("labels", &create.labels);
                check.bytes("product", &create.product, MAX_PRODUCT_BYTES);
            }),
            Some(Flow::Edit(edit)) => check.within("edit.", |check| {
                check.name("connection", &edit.connection);
            }),
            None => {}
        }
    }
}

impl Bounded for v1::GetFormLinkRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}

impl Bounded for v1::RevokeFormLinkRequest {
    fn bound(&self, check: &mut Check) {
        check.name("name", &self.name);
    }
}
