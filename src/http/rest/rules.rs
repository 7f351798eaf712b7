//! The `google.api.http` rules of every public method, read from the
//! descriptor set the server builds for reflection, and the AIP-127 path
//! templates they carry (`/v1/{name=tenants/*/connections/*}:test`).

use axum::http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// The services served over REST, in the order the document lists them.
const SERVICES: [&str; 4] = [
    "connvault.v1.TenantService",
    "connvault.v1.DataSourceService",
    "connvault.v1.ConnectionService",
    "connvault.v1.AuditService",
];

/// Why the rules could not be read (a build defect: the protos are ours).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The descriptor set does not decode.
    #[error("the descriptor set does not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// A service or the `google.api.http` extension is missing.
    #[error("{0} is missing from the descriptor set")]
    Missing(&'static str),
    /// A method has no rule, or a rule that does not parse.
    #[error("{method}: {problem}")]
    Rule {
        /// The method's full name.
        method: String,
        /// What is wrong.
        problem: String,
    },
}

/// Which part of the request the HTTP body fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body: every field not in the path comes from the query string.
    None,
    /// `*`: the body is the request message (path fields override it).
    Whole,
    /// One (message) field of the request.
    Field(String),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal segment (`v1`, `connections`).
    Literal(String),
    /// `*` inside the variable with this index: one segment.
    Any(usize),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// The custom verb after `:`, if any.
    pub verb: Option<String>,
    /// Each variable: the request field path it binds and its own
    /// segments (index range into `segments`).
    pub variables: Vec<Variable>,
}

/// A variable of a template: `{connection.name=tenants/*/connections/*}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The dotted request field path.
    pub field: String,
    /// The first segment it covers.
    pub start: usize,
    /// One past its last segment.
    pub end: usize,
}

/// One HTTP binding of one RPC method.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The HTTP method.
    pub method: Method,
    /// The parsed template.
    pub template: Template,
    /// What the body fills.
    pub body: BodyRule,
    /// The RPC.
    pub rpc: MethodDescriptor,
}

impl Binding {
    /// The gRPC path of the RPC (`/connvault.v1.ConnectionService/GetConnection`).
    pub fn grpc_path(&self) -> String {
        format!(
            "/{}/{}",
            self.rpc.parent_service().full_name(),
            self.rpc.name()
        )
    }
}

/// Every binding of every public method; fails if any method lacks one.
pub fn bindings(pool: &DescriptorPool) -> Result<Vec<Binding>, RuleError> {
    let extension = pool
        .get_extension_by_name("google.api.http")
        .ok_or(RuleError::Missing("google.api.http"))?;
    let mut out = Vec::new();
    for name in SERVICES {
        let service = pool
            .get_service_by_name(name)
            .ok_or(RuleError::Missing(name))?;
        for rpc in service.methods() {
            let problem = |problem: String| RuleError::Rule {
                method: rpc.full_name().to_owned(),
                problem,
            };
            if rpc.is_client_streaming() || rpc.is_server_streaming() {
                return Err(problem("streaming methods are not served over REST".into()));
            }
            let options = rpc.options();
            if !options.has_extension(&extension) {
                return Err(problem("no google.api.http rule".into()));
            }
            let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
                return Err(problem("google.api.http is not a message".into()));
            };
            out.push(binding(&rpc, &rule).map_err(problem)?);
            if let Some(Value::List(more)) = rule
                .get_field_by_name("additional_bindings")
                .map(|value| value.into_owned())
            {
                for extra in more {
                    if let Value::Message(extra) = extra {
                        out.push(binding(&rpc, &extra).map_err(problem)?);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    message
        .get_field_by_name(name)
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn binding(rpc: &MethodDescriptor, rule: &DynamicMessage) -> Result<Binding, String> {
    let verbs = [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ];
    let (method, pattern) = verbs
        .into_iter()
        .find_map(|(field, method)| {
            rule.has_field_by_name(field)
                .then(|| (method, string_field(rule, field)))
        })
        .ok_or_else(|| "the rule has no verb this gateway serves".to_owned())?;
    let template = parse_template(&pattern)?;
    let input = rpc.input();
    for variable in &template.variables {
        check_field_path(&input, &variable.field)?;
    }
    let body = match string_field(rule, "body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        field => {
            check_field_path(&input, field)?;
            BodyRule::Field(field.to_owned())
        }
    };
    Ok(Binding {
        method,
        template,
        body,
        rpc: rpc.clone(),
    })
}

/// A dotted field path must name fields of the message, strings at the end.
fn check_field_path(message: &prost_reflect::MessageDescriptor, path: &str) -> Result<(), String> {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current
            .get_field_by_name(part)
            .ok_or_else(|| format!("{path}: no field {part} in {}", current.full_name()))?;
        if parts.peek().is_some() {
            current = field
                .kind()
                .as_message()
                .cloned()
                .ok_or_else(|| format!("{path}: {part} is not a message"))?;
        }
    }
    Ok(())
}

/// Parses an AIP-127 path template: literals, `{field}` or
/// `{field=segments}` variables of literals and `*`, and an optional
/// `:verb` (no `**`: no method here needs it).
pub fn parse_template(pattern: &str) -> Result<Template, String> {
    let rest = pattern
        .strip_prefix('/')
        .ok_or_else(|| format!("{pattern}: a template starts with /"))?;
    // The verb follows the last `:` outside braces.
    let (path, verb) = match rest.rfind(':') {
        Some(at) if !rest[at..].contains('}') => (&rest[..at], Some(rest[at + 1..].to_owned())),
        _ => (rest, None),
    };
    let mut segments = Vec::new();
    let mut variables = Vec::new();
    let mut chars = path;
    while !chars.is_empty() {
        if let Some(inner) = chars.strip_prefix('{') {
            let close = inner
                .find('}')
                .ok_or_else(|| format!("{pattern}: unclosed variable"))?;
            let (field, sub) = match inner[..close].split_once('=') {
                Some((field, sub)) => (field, sub),
                None => (&inner[..close], "*"),
            };
            let start = segments.len();
            for part in sub.split('/') {
                segments.push(match part {
                    "*" => Segment::Any(variables.len()),
                    "" | "**" => return Err(format!("{pattern}: unsupported segment {part:?}")),
                    literal => Segment::Literal(literal.to_owned()),
                });
            }
            variables.push(Variable {
                field: field.to_owned(),
                start,
                end: segments.len(),
            });
            chars = &inner[close + 1..];
        } else {
            let end = chars.find('/').unwrap_or(chars.len());
            let literal = &chars[..end];
            if literal.is_empty() || literal.contains(['{', '}', '*']) {
                return Err(format!("{pattern}: bad literal {literal:?}"));
            }
            segments.push(Segment::Literal(literal.to_owned()));
            chars = &chars[end..];
        }
        chars = match chars.strip_prefix('/') {
            Some("") => return Err(format!("{pattern}: trailing /")),
            Some(next) => next,
            None if chars.is_empty() => chars,
            None => return Err(format!("{pattern}: expected / after a variable")),
        };
    }
    if verb.as_deref().is_some_and(str::is_empty) {
        return Err(format!("{pattern}: empty verb"));
    }
    Ok(Template {
        segments,
        verb,
        variables,
    })
}

impl Template {
    /// Matches a request path (still percent-encoded); on a match, the value
    /// of each variable (its segments decoded and joined with `/`).
    pub fn matches(&self, path: &str) -> Option<Vec<String>> {
        let path = path.strip_prefix('/')?;
        let path = match &self.verb {
            Some(verb) => path.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => path,
        };
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut decoded = Vec::with_capacity(parts.len());
        for (segment, part) in self.segments.iter().zip(&parts) {
            let value = percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .ok()?
                .into_owned();
            match segment {
                Segment::Literal(literal) if *literal == value => {}
                Segment::Literal(_) => return None,
                // A segment a variable binds is never empty nor a `/` in disguise.
                Segment::Any(_) if value.is_empty() || value.contains('/') => return None,
                Segment::Any(_) => {}
            }
            decoded.push(value);
        }
        Some(
            self.variables
                .iter()
                .map(|variable| decoded[variable.start..variable.end].join("/"))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_match() -> Result<(), String> {
        let template = parse_template("/v1/{name=tenants/*/connections/*}:test")?;
        assert_eq!(template.verb.as_deref(), Some("test"));
        assert_eq!(
            template.matches("/v1/tenants/acme/connections/c%2D1:test"),
            Some(vec!["tenants/acme/connections/c-1".to_owned()])
        );
        assert_eq!(template.matches("/v1/tenants/acme/connections/c1"), None);
        assert_eq!(template.matches("/v1/tenants/acme/connections/:test"), None);
        assert_eq!(
            template.matches("/v1/tenants/a%2Fb/connections/c:test"),
            None
        );
        let plain = parse_template("/v1/{parent=tenants/*}/connections")?;
        assert_eq!(plain.verb, None);
        assert_eq!(
            plain.matches("/v1/tenants/acme/connections"),
            Some(vec!["tenants/acme".to_owned()])
        );
        assert_eq!(plain.matches("/v1/tenants/acme/connections/x"), None);
        let short = parse_template("/v1/{name}")?;
        assert_eq!(short.matches("/v1/x"), Some(vec!["x".to_owned()]));
        assert!(parse_template("v1/x").is_err());
        assert!(parse_template("/v1/{name=**}").is_err());
        assert!(parse_template("/v1/x/").is_err());
        Ok(())
    }

    #[test]
    fn every_public_method_has_a_rule() -> Result<(), RuleError> {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)?;
        let bindings = bindings(&pool)?;
        for name in SERVICES {
            let service = pool
                .get_service_by_name(name)
                .ok_or(RuleError::Missing(name))?;
            for method in service.methods() {
                assert!(
                    bindings.iter().any(|b| b.rpc == method),
                    "{} has no binding",
                    method.full_name()
                );
            }
        }
        Ok(())
    }
}
