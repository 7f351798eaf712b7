//! Data sources: what the loaded plugins serve.

use super::App;
use super::pagination::{decode_page_token, encode_page_token, page_size};
use crate::error::ServiceError;
use crate::pb::v1;
use crate::plugin_messages;

impl App {
    /// Lists every data source, in plugin load order.
    pub fn list_data_sources(
        &self,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<v1::ListDataSourcesResponse, ServiceError> {
        let size = page_size(page_size_requested)?;
        let start = match decode_page_token(&self.keyring(), page_token, "dataSources")? {
            Some(offset) => offset
                .parse::<usize>()
                .map_err(|_| ServiceError::invalid("page_token", "is not valid"))?,
            None => 0,
        };
        let all: Vec<v1::DataSource> = self
            .plugins()
            .data_sources()
            .map(|(plugin, source)| {
                plugin_messages::data_source(plugin.name(), plugin.version(), source)
            })
            .collect();
        let end = (start + size).min(all.len());
        let next_page_token = if end < all.len() {
            encode_page_token(&self.keyring(), "dataSources", &end.to_string())?
        } else {
            String::new()
        };
        Ok(v1::ListDataSourcesResponse {
            data_sources: all.into_iter().skip(start).take(size).collect(),
            next_page_token,
        })
    }

    /// Gets a data source by id or alias (`dataSources/POSTGRESQL`), case-insensitively.
    pub fn get_data_source(&self, name: &str) -> Result<v1::DataSource, ServiceError> {
        let id = name
            .strip_prefix("dataSources/")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ServiceError::invalid("name", "must be dataSources/{id}"))?;
        let plugins = self.plugins();
        let (plugin, source) = plugins
            .find(id)
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        Ok(plugin_messages::data_source(
            plugin.name(),
            plugin.version(),
            source,
        ))
    }
}
