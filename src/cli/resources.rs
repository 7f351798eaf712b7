//! `connvault tenants`, `data-sources` and `audit`.

use std::time::Duration;

use crate::pb::v1;
use v1::audit_service_client::AuditServiceClient;
use v1::data_source_service_client::DataSourceServiceClient;
use v1::tenant_service_client::TenantServiceClient;

use super::output::{self, Columns, Output, print_list, print_one, to_json};
use super::{CliError, Connect};

const TENANT_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("DISPLAY NAME", "displayName"),
    ("CREATED", "createTime"),
];
const DATA_SOURCE_COLUMNS: Columns = &[
    ("ID", "id"),
    ("DISPLAY NAME", "displayName"),
    ("PLUGIN", "plugin"),
    ("VERSION", "pluginVersion"),
    ("TLS", "supportsTls"),
];
const FIELD_COLUMNS: Columns = &[
    ("FIELD", "name"),
    ("TYPE", "type"),
    ("REQUIRED", "required"),
    ("SECRET", "secret"),
    ("DEFAULT", "defaultValue"),
    ("DESCRIPTION", "description"),
];
const AUDIT_COLUMNS: Columns = &[
    ("SEQ", "sequence"),
    ("TIME", "time"),
    ("PRINCIPAL", "principal"),
    ("TENANT", "tenant"),
    ("METHOD", "method"),
    ("OUTCOME", "outcome"),
    ("RESOURCE", "resource"),
];

/// `connvault tenants ...`
#[derive(Debug, clap::Subcommand)]
pub enum TenantsCommand {
    /// Lists tenants.
    List {
        /// Tenants per page (the server caps it).
        #[arg(long)]
        page_size: Option<i32>,
        /// The page to read (from a previous list).
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Shows one tenant (`tenants/ID` or `ID`).
    Get {
        /// The tenant.
        name: String,
    },
    /// Creates a tenant.
    Create {
        /// The tenant id (lowercase letters, digits, hyphens).
        id: String,
        /// A name for people.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Deletes a tenant (`--force`: and its connections).
    Delete {
        /// The tenant.
        name: String,
        /// Delete its connections too.
        #[arg(long)]
        force: bool,
    },
}

/// `tenants/ID` from `ID` or `tenants/ID`.
pub(crate) fn tenant_name(name: &str) -> String {
    if name.starts_with("tenants/") {
        name.to_owned()
    } else {
        format!("tenants/{name}")
    }
}

impl TenantsCommand {
    /// Runs the verb.
    pub async fn run(self, connect: &Connect, output: Output) -> Result<(), CliError> {
        let mut client = TenantServiceClient::new(connect.channel().await?);
        match self {
            TenantsCommand::List {
                page_size,
                page_token,
            } => {
                let answer = client
                    .list_tenants(v1::ListTenantsRequest {
                        page_size: page_size.unwrap_or_default(),
                        page_token: page_token.unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                let json = to_json(&answer, "connvault.v1.ListTenantsResponse")?;
                print_list(output, &json, "tenants", TENANT_COLUMNS)
            }
            TenantsCommand::Get { name } => {
                let tenant = client
                    .get_tenant(v1::GetTenantRequest {
                        name: tenant_name(&name),
                    })
                    .await?
                    .into_inner();
                print_one(output, &to_json(&tenant, "connvault.v1.Tenant")?)
            }
            TenantsCommand::Create { id, display_name } => {
                let tenant = client
                    .create_tenant(v1::CreateTenantRequest {
                        tenant_id: id,
                        tenant: Some(v1::Tenant {
                            display_name: display_name.unwrap_or_default(),
                            ..Default::default()
                        }),
                    })
                    .await?
                    .into_inner();
                print_one(output, &to_json(&tenant, "connvault.v1.Tenant")?)
            }
            TenantsCommand::Delete { name, force } => {
                let name = tenant_name(&name);
                client
                    .delete_tenant(v1::DeleteTenantRequest {
                        name: name.clone(),
                        force,
                    })
                    .await?;
                deleted(output, &name)
            }
        }
    }
}

/// What a deletion prints: the name, or `{"deleted": name}` as data.
pub(crate) fn deleted(output: Output, name: &str) -> Result<(), CliError> {
    match output {
        Output::Table => {
            println!("deleted {name}");
            Ok(())
        }
        _ => output::print_data(output, &serde_json::json!({ "deleted": name })),
    }
}

/// `connvault data-sources ...`
#[derive(Debug, clap::Subcommand)]
pub enum DataSourcesCommand {
    /// Lists the data sources the loaded plugins serve.
    List,
    /// Shows one data source and its fields (`dataSources/ID` or `ID`).
    Get {
        /// The data source.
        name: String,
    },
}

impl DataSourcesCommand {
    /// Runs the verb.
    pub async fn run(self, connect: &Connect, output: Output) -> Result<(), CliError> {
        let mut client = DataSourceServiceClient::new(connect.channel().await?);
        match self {
            DataSourcesCommand::List => {
                let answer = client
                    .list_data_sources(v1::ListDataSourcesRequest::default())
                    .await?
                    .into_inner();
                let json = to_json(&answer, "connvault.v1.ListDataSourcesResponse")?;
                print_list(output, &json, "dataSources", DATA_SOURCE_COLUMNS)
            }
            DataSourcesCommand::Get { name } => {
                let name = if name.starts_with("dataSources/") {
                    name
                } else {
                    format!("dataSources/{name}")
                };
                let source = client
                    .get_data_source(v1::GetDataSourceRequest { name })
                    .await?
                    .into_inner();
                let doc = to_json(&source, "connvault.v1.DataSource")?;
                if output != Output::Table {
                    return output::print_data(output, &doc);
                }
                let summary = v1::DataSource {
                    fields: Vec::new(),
                    ..source
                };
                print_one(output, &to_json(&summary, "connvault.v1.DataSource")?)?;
                let json = doc.value;
                println!();
                print!(
                    "{}",
                    output::table(
                        json.get("fields")
                            .and_then(serde_json::Value::as_array)
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                        FIELD_COLUMNS
                    )
                );
                Ok(())
            }
        }
    }
}

/// `connvault audit ...`
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Lists audit events, oldest first.
    List {
        /// `tenants/ID`, `ID`, or `tenants/-` for every tenant.
        parent: String,
        /// `method=<Method>` and/or `outcome=<CODE>`, joined by ` AND `.
        #[arg(long)]
        filter: Option<String>,
        /// Events per page (default 50, at most 1000).
        #[arg(long)]
        page_size: Option<i32>,
        /// The page to read (from a previous list).
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Prints new audit events as they are recorded, until interrupted.
    Follow {
        /// `tenants/ID`, `ID`, or `tenants/-` for every tenant.
        parent: String,
        /// `method=<Method>` and/or `outcome=<CODE>`, joined by ` AND `.
        #[arg(long)]
        filter: Option<String>,
        /// Also print the events recorded before now.
        #[arg(long)]
        from_start: bool,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

impl AuditCommand {
    /// Runs the verb.
    pub async fn run(self, connect: &Connect, output: Output) -> Result<(), CliError> {
        let mut client = AuditServiceClient::new(connect.channel().await?);
        match self {
            AuditCommand::List {
                parent,
                filter,
                page_size,
                page_token,
            } => {
                let answer = client
                    .list_audit_events(v1::ListAuditEventsRequest {
                        parent: tenant_name(&parent),
                        filter: filter.unwrap_or_default(),
                        page_size: page_size.unwrap_or_default(),
                        page_token: page_token.unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                let json = to_json(&answer, "connvault.v1.ListAuditEventsResponse")?;
                print_list(output, &json, "events", AUDIT_COLUMNS)
            }
            AuditCommand::Follow {
                parent,
                filter,
                from_start,
                interval_ms,
            } => {
                follow(
                    &mut client,
                    tenant_name(&parent),
                    filter.unwrap_or_default(),
                    from_start,
                    Duration::from_millis(interval_ms.max(100)),
                    output,
                )
                .await
            }
        }
    }
}

/// Polls the log: pages to its end, then asks again from the last page's
/// token, printing each event past the highest sequence printed. Tables
/// print a header once; JSON and YAML print one event per document (JSON
/// lines, YAML documents).
async fn follow(
    client: &mut AuditServiceClient<super::connect::Authed>,
    parent: String,
    filter: String,
    from_start: bool,
    interval: Duration,
    output: Output,
) -> Result<(), CliError> {
    let mut token = String::new();
    let mut last_seen: Option<u64> = None;
    let mut printing = from_start;
    let mut header = true;
    loop {
        let answer = client
            .list_audit_events(v1::ListAuditEventsRequest {
                parent: parent.clone(),
                filter: filter.clone(),
                page_size: 1000,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        for event in &answer.events {
            if last_seen.is_some_and(|seen| event.sequence <= seen) {
                continue;
            }
            last_seen = Some(event.sequence);
            if printing {
                print_event(event, output, &mut header)?;
            }
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        if answer.next_page_token.is_empty() {
            // At the end: from now on everything new is printed.
            printing = true;
            tokio::time::sleep(interval).await;
        } else {
            token = answer.next_page_token;
        }
    }
}

fn print_event(event: &v1::AuditEvent, output: Output, header: &mut bool) -> Result<(), CliError> {
    let doc = to_json(event, "connvault.v1.AuditEvent")?;
    match output {
        Output::Table => {
            let text = output::table(std::slice::from_ref(&doc.value), AUDIT_COLUMNS);
            let mut lines = text.lines();
            let heading = lines.next().unwrap_or_default();
            if std::mem::take(header) {
                println!("{heading}");
            }
            for line in lines {
                println!("{line}");
            }
        }
        Output::Json => println!(
            "{}",
            serde_json::to_string(&doc)
                .map_err(|error| CliError::Internal(format!("JSON: {error}")))?
        ),
        Output::Yaml => {
            println!("---");
            output::print_data(Output::Yaml, &doc)?;
        }
    }
    Ok(())
}
