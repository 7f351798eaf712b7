//! The schema a plugin describes is a contract the host enforces both ways:
//! [`lint`] refuses a plugin whose schema contradicts itself at load, and
//! [`answer`] refuses a validate answer that breaks the schema, so what the
//! server stores is always what the plugin said it would accept.

pub(crate) mod answer;
pub(crate) mod lint;
mod value;

#[cfg(test)]
mod tests;
