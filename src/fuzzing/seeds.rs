//! A valid request of every RPC: what the fuzzer starts from
//! (`fuzz/seeds/rpc_request`) and the property test mutates.

use prost::Message;

use super::rpc::{RPCS, SEED_CONNECTION, SEED_TENANT};
use crate::pb::v1;

/// A valid request of every RPC, as fuzz inputs (`[caller, rpc, message]`):
/// the seeds a fuzzer mutates, and the cases the property test starts from.
pub fn seed_inputs() -> Vec<Vec<u8>> {
    let parent = format!("tenants/{SEED_TENANT}");
    let name = format!("{parent}/connections/{SEED_CONNECTION}");
    let config = |host: &str| prost_types::Struct {
        fields: [(
            "host".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(host.into())),
            },
        )]
        .into(),
    };
    let connection = v1::Connection {
        name: name.clone(),
        display_name: "Orders".into(),
        data_source: "c_minimal".into(),
        config: Some(config("db.internal")),
        labels: [("team".to_owned(), "data".to_owned())].into(),
        product: "reporting".into(),
        ..Default::default()
    };
    let messages: Vec<(&str, Vec<u8>)> = vec![
        (
            "CreateTenant",
            v1::CreateTenantRequest {
                tenant_id: "beta".into(),
                tenant: Some(v1::Tenant {
                    display_name: "Beta".into(),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
        ),
        (
            "GetTenant",
            v1::GetTenantRequest {
                name: parent.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "ListTenants",
            v1::ListTenantsRequest {
                page_size: 1,
                page_token: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "UpdateTenant",
            v1::UpdateTenantRequest {
                tenant: Some(v1::Tenant {
                    name: parent.clone(),
                    display_name: "Acme".into(),
                    labels: [("tier".to_owned(), "gold".to_owned())].into(),
                    egress: Some(v1::EgressPolicy {
                        allow: vec!["10.0.0.0/8:5432".into(), "*.example.com".into()],
                        deny: vec!["[fd00::/8]:1-1024".into()],
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into(), "labels".into(), "egress".into()],
                }),
                etag: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "DeleteTenant",
            v1::DeleteTenantRequest {
                name: "tenants/beta".into(),
                force: true,
            }
            .encode_to_vec(),
        ),
        (
            "ListDataSources",
            v1::ListDataSourcesRequest {
                page_size: 1,
                page_token: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "GetDataSource",
            v1::GetDataSourceRequest {
                name: "dataSources/c_minimal".into(),
            }
            .encode_to_vec(),
        ),
        (
            "CreateConnection",
            v1::CreateConnectionRequest {
                parent: parent.clone(),
                connection: Some(connection.clone()),
                validate_only: false,
            }
            .encode_to_vec(),
        ),
        (
            "GetConnection",
            v1::GetConnectionRequest { name: name.clone() }.encode_to_vec(),
        ),
        (
            "ListConnections",
            v1::ListConnectionsRequest {
                parent: parent.clone(),
                page_size: 1,
                labels: [("env".to_owned(), "fuzz".to_owned())].into(),
                order_by: 1,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "UpdateConnection",
            v1::UpdateConnectionRequest {
                connection: Some(v1::Connection {
                    config: Some(config("db2.internal")),
                    ..connection.clone()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["config.host".into(), "labels".into()],
                }),
                etag: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "DeleteConnection",
            v1::DeleteConnectionRequest {
                name: name.clone(),
                etag: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "BatchDeleteConnections",
            v1::BatchDeleteConnectionsRequest {
                parent: parent.clone(),
                names: vec![name.clone()],
            }
            .encode_to_vec(),
        ),
        (
            "TestConnection",
            v1::TestConnectionRequest {
                target: Some(v1::test_connection_request::Target::Name(name.clone())),
                parent: String::new(),
                timeout_ms: 100,
            }
            .encode_to_vec(),
        ),
        (
            "DiscoverMetadata",
            v1::DiscoverMetadataRequest {
                name: name.clone(),
                schema_filter: "pub*".into(),
                max_tables: 5,
                include_columns: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ClearMetadataCache",
            v1::ClearMetadataCacheRequest {
                target: Some(v1::clear_metadata_cache_request::Target::Parent(
                    parent.clone(),
                )),
            }
            .encode_to_vec(),
        ),
        (
            "ResolveConnection",
            v1::ResolveConnectionRequest { name }.encode_to_vec(),
        ),
        (
            "ListAuditEvents",
            v1::ListAuditEventsRequest {
                parent: parent.clone(),
                page_size: 2,
                filter: "method=CreateConnection AND outcome=OK".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ListAuditEvents",
            v1::ListAuditEventsRequest {
                parent: "tenants/-".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    messages
        .into_iter()
        .map(|(method, message)| {
            let rpc = RPCS.iter().position(|name| *name == method).unwrap_or(0);
            let mut input = vec![0, rpc as u8];
            input.extend(message);
            input
        })
        .collect()
}
