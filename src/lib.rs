//! connvault: keeps the connections a product needs to its customers' data sources.
