//! The record-level half of `connvault store verify`: every stored value
//! decodes, every sealed secret opens, each connection's index fields match
//! its record; and how the report prints.

use connvault_crypto::{Keyring, Sealed};
use connvault_store::sled::Visit;
use prost::Message as _;

use super::Report;
use crate::app::secrets_aad;
use crate::names::connection_name;
use crate::pb::v1;
use crate::record_format;

/// Checks the records the store's walk hands over.
pub(super) struct Checker<'a> {
    keyring: Option<&'a Keyring>,
    pub(super) secrets_opened: u64,
    pub(super) problems: Vec<String>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(keyring: Option<&'a Keyring>) -> Self {
        Self {
            keyring,
            secrets_opened: 0,
            problems: Vec::new(),
        }
    }

    pub(super) fn visit(&mut self, visit: Visit<'_>) {
        match visit {
            Visit::Tenant(record) if record_format::decode_tenant(&record.value).is_err() => {
                self.problems.push(format!(
                    "tenant {:?}: its record does not decode",
                    record.tenant_id
                ));
            }
            Visit::Connection(record) => {
                let name = connection_name(&record.tenant_id, &record.id);
                let stored = match record_format::decode_connection(&record.value) {
                    Ok(stored) => stored,
                    Err(_) => {
                        self.problems
                            .push(format!("{name}: its record does not decode"));
                        return;
                    }
                };
                if stored.connection.display_name.to_lowercase() != record.display_name_key {
                    self.problems.push(format!(
                        "{name}: indexed under the name {:?}, its record is named {:?}",
                        record.display_name_key, stored.connection.display_name
                    ));
                }
                // An entry still in the legacy layout (revision 0, rewritten
                // at the server's next start) has no index fields yet.
                if record.revision > 0
                    && record_format::connection_index(&stored.connection) != record.index
                {
                    self.problems.push(format!(
                        "{name}: its list index fields differ from its record"
                    ));
                }
                self.open_secrets(&name, record, &stored.sealed_secrets);
            }
            Visit::Audit(record) if v1::AuditEvent::decode(record.value.as_slice()).is_err() => {
                self.problems.push(format!(
                    "audit entry {}: its event does not decode",
                    record.seq
                ));
            }
            _ => {}
        }
    }

    fn open_secrets(
        &mut self,
        name: &str,
        record: &connvault_store::ConnectionRecord,
        sealed: &[u8],
    ) {
        if sealed.is_empty() {
            return;
        }
        let Some(keyring) = self.keyring else {
            return;
        };
        let opened = Sealed::from_bytes(sealed).ok().and_then(|sealed| {
            keyring
                .open(&secrets_aad(&record.tenant_id, &record.id), &sealed)
                .ok()
        });
        match opened {
            Some(_) => self.secrets_opened += 1,
            None => self
                .problems
                .push(format!("{name}: its sealed secrets do not open")),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        writeln!(f, "data directory: {}", self.data_dir.display())?;
        writeln!(
            f,
            "read: {} tenant(s), {} connection(s) ({} with secrets, all opened: {}), {} name index entr(ies), {} change(s), {} audit entr(ies), {} cache entr(ies)",
            c.tenants,
            c.connections,
            self.secrets_opened,
            if self
                .problems
                .iter()
                .any(|p| p.contains("secrets do not open"))
            {
                "no"
            } else {
                "yes"
            },
            c.names,
            c.changes,
            c.audit_entries,
            c.cache_entries
        )?;
        if !self.progress.is_empty() {
            writeln!(f, "progress: {}", self.progress)?;
        }
        if !self.key_file.is_empty() {
            writeln!(f, "key file: {}", self.key_file)?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "no problems found")
        } else {
            writeln!(f, "{} problem(s):", self.problems.len())?;
            for problem in &self.problems {
                writeln!(f, "  - {problem}")?;
            }
            Ok(())
        }
    }
}
