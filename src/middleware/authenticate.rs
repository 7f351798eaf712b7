//! Authenticates the bearer token of every request and leaves a [`Caller`]
//! in its extensions: the RPC's method name, read from the gRPC path, and
//! the verified principal or why the token was refused.
//!
//! The layer refuses nothing itself. A refusal is audited with the tenant and
//! resource the request names, which only the decoded message tells, so the
//! handler's guard turns a failed [`Caller::identity`] into UNAUTHENTICATED
//! (see `api::guard`). Health and reflection ignore the caller.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tower::{Layer, Service};

use crate::auth::{AuthError, Principal, Verifier};

/// Who is calling which RPC, as the authentication layer found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The RPC's method name, the last segment of the gRPC path
    /// (`CreateConnection` for `/connvault.v1.ConnectionService/CreateConnection`).
    pub method: String,
    /// The verified principal, or why the bearer token was refused.
    pub identity: Result<Arc<Principal>, Arc<AuthError>>,
}

/// Adds a [`Caller`] to every request.
#[derive(Debug, Clone)]
pub struct AuthenticateLayer {
    verifier: Arc<Verifier>,
}

impl AuthenticateLayer {
    /// A layer checking tokens with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = AuthenticateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticateService {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

/// The service [`AuthenticateLayer`] wraps around.
#[derive(Debug, Clone)]
pub struct AuthenticateService<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

/// The method name of a gRPC path: what follows the last `/`.
fn method_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer_token<B>(request: &http::Request<B>) -> Result<&str, AuthError> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?;
    Ok(token.trim())
}

impl<S> AuthenticateService<S> {
    fn caller<B>(&self, request: &http::Request<B>) -> Caller {
        let identity = bearer_token(request)
            .and_then(|token| self.verifier.verify(token))
            .map_err(Arc::new);
        Caller {
            method: method_of(request.uri().path()).to_owned(),
            identity,
        }
    }
}

impl<S, B> Service<http::Request<B>> for AuthenticateService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let caller = self.caller(&request);
        request.extensions_mut().insert(caller);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};
    use std::sync::RwLock;

    use secrecy::SecretString;

    use super::*;
    use crate::auth::{AuthConfig, Minter, Role, load_keys, unix_now};

    /// Answers with the caller the layer left in the request.
    #[derive(Clone)]
    struct Echo;

    impl Service<http::Request<()>> for Echo {
        type Response = Option<Caller>;
        type Error = Infallible;
        type Future = Ready<Result<Option<Caller>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            ready(Ok(request.extensions().get::<Caller>().cloned()))
        }
    }

    #[tokio::test]
    async fn every_request_carries_its_method_and_caller() {
        let config = AuthConfig::default();
        let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
        let keys = load_keys(&config, Some(&secret)).unwrap();
        let verifier = Arc::new(Verifier::new(&config, Arc::new(RwLock::new(keys))));
        let token = Minter::new(&secret, &config)
            .mint("svc", &["acme".into()], &[Role::Reader], unix_now(), 60)
            .unwrap();
        let mut service = AuthenticateLayer::new(verifier).layer(Echo);
        let request = |authorization: &str| {
            http::Request::builder()
                .uri("/connvault.v1.ConnectionService/GetConnection")
                .header("authorization", authorization)
                .body(())
                .unwrap()
        };

        let caller = service
            .call(request(&format!("Bearer {token}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(caller.method, "GetConnection");
        assert_eq!(caller.identity.unwrap().subject, "svc");

        let refused = service
            .call(request("Bearer not.a.token"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(refused.method, "GetConnection");
        assert!(refused.identity.is_err(), "the layer passes a refusal on");
    }

    #[test]
    fn the_method_is_the_last_segment_of_the_path() {
        assert_eq!(
            method_of("/connvault.v1.ConnectionService/CreateConnection"),
            "CreateConnection"
        );
        assert_eq!(method_of("/grpc.health.v1.Health/Check"), "Check");
        assert_eq!(method_of(""), "");
    }

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        let with = |value: &str| {
            http::Request::builder()
                .header("authorization", value)
                .body(())
                .unwrap()
        };
        assert_eq!(bearer_token(&with("Bearer abc ")).unwrap(), "abc");
        assert_eq!(bearer_token(&with("bearer abc")).unwrap(), "abc");
        assert!(matches!(
            bearer_token(&with("Basic abc")),
            Err(AuthError::Missing)
        ));
        let none = http::Request::builder().body(()).unwrap();
        assert!(matches!(bearer_token(&none), Err(AuthError::Missing)));
    }
}
