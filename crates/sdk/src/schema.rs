//! Builders that make a data source's field schema read like a form.

use crate::pb::{self, FieldType};

/// Starts a data source description.
pub fn data_source(id: &str, display_name: &str) -> DataSourceBuilder {
    DataSourceBuilder(pb::DataSource {
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        ..Default::default()
    })
}

/// Builds a [`pb::DataSource`].
#[derive(Debug, Clone)]
pub struct DataSourceBuilder(pb::DataSource);

impl DataSourceBuilder {
    /// Other names clients send for this data source (`POSTGRESQL`, `RDS_POSTGRES`).
    pub fn aliases(mut self, aliases: &[&str]) -> Self {
        self.0
            .aliases
            .extend(aliases.iter().map(|alias| (*alias).to_owned()));
        self
    }

    /// A one-paragraph description.
    pub fn description(mut self, description: &str) -> Self {
        self.0.description = description.to_owned();
        self
    }

    /// Declares that the provider honours the connection's TLS settings.
    pub fn supports_tls(mut self) -> Self {
        self.0.supports_tls = true;
        self
    }

    /// Declares that the provider dials only the addresses and ports the
    /// egress grant approves ([`crate::Egress::approved`]), so connections
    /// may reach it through an SSH tunnel the host opens.
    pub fn supports_tunnel(mut self) -> Self {
        self.0.supports_tunnel = true;
        self
    }

    /// Adds a field; its order in the form is the order of `field` calls.
    pub fn field(mut self, field: FieldBuilder) -> Self {
        let mut field = field.0;
        if field.order == 0 {
            field.order = i32::try_from(self.0.fields.len() + 1).unwrap_or(i32::MAX);
        }
        self.0.fields.push(field);
        self
    }

    /// Fields whose change redirects where secrets go; an update changing one must re-send them.
    pub fn secret_bound(mut self, names: &[&str]) -> Self {
        self.0
            .secret_bound_fields
            .extend(names.iter().map(|name| (*name).to_owned()));
        self
    }

    /// The finished description.
    pub fn build(self) -> pb::DataSource {
        self.0
    }
}

/// Builds a [`pb::Field`].
#[derive(Debug, Clone)]
pub struct FieldBuilder(pb::Field);

fn field(name: &str, field_type: FieldType) -> FieldBuilder {
    FieldBuilder(pb::Field {
        name: name.to_owned(),
        r#type: field_type as i32,
        label: name.to_owned(),
        group: "Connection".to_owned(),
        ..Default::default()
    })
}

/// A single-line string field.
pub fn string(name: &str) -> FieldBuilder {
    field(name, FieldType::String)
}

/// An integer field.
pub fn int(name: &str) -> FieldBuilder {
    field(name, FieldType::Int)
}

/// A boolean field.
pub fn boolean(name: &str) -> FieldBuilder {
    field(name, FieldType::Bool)
}

/// A field whose value is one of `values`.
pub fn enumeration(name: &str, values: &[&str]) -> FieldBuilder {
    let mut builder = field(name, FieldType::Enum);
    builder.0.allowed_values = values.iter().map(|value| (*value).to_owned()).collect();
    builder
}

/// Multi-line text, such as a PEM certificate.
pub fn text(name: &str) -> FieldBuilder {
    field(name, FieldType::Text)
}

/// A list of strings.
pub fn string_list(name: &str) -> FieldBuilder {
    field(name, FieldType::StringList)
}

/// A secret string (a password, a token): sealed at rest, write-only through the API.
pub fn secret(name: &str) -> FieldBuilder {
    let mut builder = field(name, FieldType::String);
    builder.0.secret = true;
    builder.0.group = "Authentication".to_owned();
    builder
}

impl FieldBuilder {
    /// The field must be set.
    pub fn required(mut self) -> Self {
        self.0.required = true;
        self
    }

    /// The value used when the field is not set.
    pub fn default_value(mut self, value: impl ToString) -> Self {
        self.0.default_value = Some(value.to_string());
        self
    }

    /// Inclusive bounds of an integer field.
    pub fn range(mut self, min: i64, max: i64) -> Self {
        self.0.min = Some(min);
        self.0.max = Some(max);
        self
    }

    /// A regular expression the whole value must match. Give it a
    /// [`pattern_message`](Self::pattern_message) too: users see that, never the regex.
    pub fn pattern(mut self, pattern: &str) -> Self {
        self.0.pattern = pattern.to_owned();
        self
    }

    /// What a value that does not match the pattern is told, in words
    /// ("must be letters, digits and underscores").
    pub fn pattern_message(mut self, message: &str) -> Self {
        self.0.pattern_message = message.to_owned();
        self
    }

    /// The longest accepted value in bytes.
    pub fn max_length(mut self, max: u32) -> Self {
        self.0.max_length = max;
        self
    }

    /// The form group ("Connection", "Authentication", "Advanced").
    pub fn group(mut self, group: &str) -> Self {
        self.0.group = group.to_owned();
        self
    }

    /// The form label.
    pub fn label(mut self, label: &str) -> Self {
        self.0.label = label.to_owned();
        self
    }

    /// What the field is for.
    pub fn description(mut self, description: &str) -> Self {
        self.0.description = description.to_owned();
        self
    }
}
