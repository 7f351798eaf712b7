//! TenantService end to end.

use connvault::pb::v1;
use tonic::Code;

use crate::support::{Server, connection, create, violations};

#[tokio::test]
async fn tenants_create_get_list_delete() {
    let server = Server::start();
    let mut tenants = server.tenants().await;
    for id in ["acme", "globex", "initech"] {
        server.create_tenant(id).await;
    }
    let error = tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: "acme".into(),
            tenant: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let error = tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant_id: "bad id!".into(),
            tenant: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violations(&error), ["tenant_id"]);

    let acme = tenants
        .get_tenant(v1::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acme.name, "tenants/acme");
    assert_eq!(acme.display_name, "Tenant acme");
    assert!(acme.create_time.is_some() && !acme.etag.is_empty());
    let missing = tenants
        .get_tenant(v1::GetTenantRequest {
            name: "tenants/nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let first = tenants
        .list_tenants(v1::ListTenantsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.tenants.len(), 2);
    let second = tenants
        .list_tenants(v1::ListTenantsRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first
        .tenants
        .iter()
        .chain(&second.tenants)
        .map(|t| t.name.clone())
        .collect();
    // --dev creates the `dev` tenant.
    assert_eq!(
        names,
        [
            "tenants/acme",
            "tenants/dev",
            "tenants/globex",
            "tenants/initech"
        ]
    );
    assert!(second.next_page_token.is_empty());

    let mut connections = server.connections().await;
    create(&mut connections, "acme", connection("Orders DB", "pw"))
        .await
        .unwrap();
    let refused = tenants
        .delete_tenant(v1::DeleteTenantRequest {
            name: "tenants/acme".into(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    tenants
        .delete_tenant(v1::DeleteTenantRequest {
            name: "tenants/acme".into(),
            force: true,
        })
        .await
        .unwrap();
    let gone = tenants
        .get_tenant(v1::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let list = connections
        .list_connections(v1::ListConnectionsRequest {
            parent: "tenants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(list.code(), Code::NotFound);
    // A connection cannot be created in a tenant that does not exist.
    let orphan = create(&mut connections, "acme", connection("Orders DB", "pw"))
        .await
        .unwrap_err();
    assert_eq!(orphan.code(), Code::NotFound);
}
