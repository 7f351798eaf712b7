//! Getting a connection.

use crate::app::App;
use crate::error::ServiceError;
use crate::pb::v1;

impl App {
    /// Gets a connection. Its sealed secrets are opened (and dropped) to prove they are intact.
    pub async fn get_connection(&self, name: &str) -> Result<v1::Connection, ServiceError> {
        let loaded = self.load(name, "name").await?;
        drop(self.open(&loaded)?);
        Ok(loaded.into_view())
    }
}
