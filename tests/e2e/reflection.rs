//! Reflection and health: what grpcurl and load balancers use.

use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::Server;

#[tokio::test]
async fn reflection_lists_services_and_resolves_a_method() {
    let server = Server::start();
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = tokio_stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "connvault.v1.ConnectionService.CreateConnection".into(),
            )),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let listed = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "connvault.v1.ConnectionService",
        "connvault.v1.TenantService",
        "connvault.v1.DataSourceService",
        "connvault.v1.KeyService",
        "connvault.v1.PluginService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not in {names:?}"
        );
    }
    let file = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = file.message_response else {
        panic!("expected descriptors, got {file:?}");
    };
    use prost::Message;
    let descriptors: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let service = descriptors
        .iter()
        .flat_map(|file| &file.service)
        .find(|service| service.name() == "ConnectionService")
        .expect("ConnectionService descriptor");
    let method = service
        .method
        .iter()
        .find(|m| m.name() == "CreateConnection")
        .unwrap();
    assert_eq!(method.input_type(), ".connvault.v1.CreateConnectionRequest");
    assert_eq!(method.output_type(), ".connvault.v1.Connection");
}

#[tokio::test]
async fn health_reports_serving() {
    let server = Server::start();
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "connvault.v1.ConnectionService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

/// Reflection describes `google.rpc` too: real grpcurl prints a BadRequest's
/// field violations as JSON, not as base64 bytes it cannot decode.
#[test]
fn grpcurl_prints_bad_request_violations_as_json() {
    let server = Server::start();
    let target = server.addr.trim_start_matches("http://").to_owned();
    let output = std::process::Command::new(crate::tls::grpcurl())
        .args(["-plaintext", "-connect-timeout", "10", "-H"])
        .arg(format!(
            "authorization: Bearer {}",
            crate::support::operator_token()
        ))
        .args([
            "-d",
            r#"{"tenantId": "no spaces allowed", "tenant": {}}"#,
            &target,
            "connvault.v1.TenantService/CreateTenant",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("Code: InvalidArgument"), "{text}");
    assert!(
        text.contains(r#""@type":"type.googleapis.com/google.rpc.BadRequest""#)
            && text.contains(r#""fieldViolations":[{"field":"tenant_id""#),
        "grpcurl did not decode the details:\n{text}"
    );
}
