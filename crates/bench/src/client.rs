//! Connecting to a server: channels, the bearer-token interceptor, typed clients.

use std::time::Duration;

use anyhow::Context as _;
use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::tenant_service_client::TenantServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Auth {
    /// An interceptor for `token` (`None`: calls go out without credentials).
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        token
            .filter(|token| !token.is_empty())
            .map(|token| {
                format!("Bearer {}", token.trim())
                    .parse::<MetadataValue<Ascii>>()
                    .context("the token is not a valid header value")
            })
            .transpose()
            .map(Self)
    }
}

impl Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel with the token attached.
pub type Chan = InterceptedService<Channel, Auth>;

/// Opens `count` independent HTTP/2 connections to `addr`.
pub async fn connect(addr: &str, count: usize, auth: &Auth) -> anyhow::Result<Vec<Chan>> {
    let addr = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let mut channels = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let channel = Endpoint::from_shared(addr.clone())
            .context("bad server address")?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        channels.push(InterceptedService::new(channel, auth.clone()));
    }
    Ok(channels)
}

/// A connection service client.
pub type ConnectionsClient = ConnectionServiceClient<Chan>;

/// The connection service client of a channel.
pub fn connections(chan: &Chan) -> ConnectionsClient {
    ConnectionServiceClient::new(chan.clone()).max_decoding_message_size(64 << 20)
}

/// The tenant service client of a channel.
pub fn tenants(chan: &Chan) -> TenantServiceClient<Chan> {
    TenantServiceClient::new(chan.clone())
}

/// A `google.protobuf.Struct` of string values.
pub fn config(pairs: &[(&str, String)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(value.clone())),
                    },
                )
            })
            .collect(),
    }
}

/// The connection the load generator creates: a fixture (`testdb`) connection
/// whose `test` connects to `127.0.0.1:port` (the bench's own listener).
pub fn connection(display_name: String, port: u16) -> v1::Connection {
    v1::Connection {
        display_name,
        data_source: "testdb".into(),
        config: Some(config(&[
            ("host", "127.0.0.1".into()),
            ("port", port.to_string()),
            ("user", "app".into()),
            ("database", "orders".into()),
        ])),
        secrets: [(
            "password".to_owned(),
            "bench-secret-password-0123456789".to_owned(),
        )]
        .into_iter()
        .collect(),
        labels: [
            ("env".to_owned(), "bench".to_owned()),
            ("team".to_owned(), "performance".to_owned()),
        ]
        .into_iter()
        .collect(),
        product: "bench".into(),
        ..Default::default()
    }
}
