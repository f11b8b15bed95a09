//! Errors (SQL API; any thread): the typed errors of the SQL surface, each with
//! the SQLSTATE a client sees.
//!
//! Kept free of pgrx so that the parsers that produce them can be tested
//! without a database; `api` turns them into `ereport(ERROR)`.

/// An error a SQL call reports to its caller. Nothing is stored when one is raised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Malformed input: a bad address, type, option, URL, signature, ...
    #[error("{message}")]
    InvalidParameter {
        message: String,
        hint: Option<String>,
    },

    /// An object with the same name or id exists already.
    #[error("{kind} \"{name}\" already exists")]
    Duplicate { kind: &'static str, name: String },

    /// A relation of that name exists already (a typed view's name is taken).
    #[error("relation \"{schema}\".\"{name}\" already exists")]
    RelationExists {
        schema: String,
        name: String,
        hint: Option<String>,
    },

    /// The schema named does not exist.
    #[error("schema \"{name}\" does not exist")]
    NoSchema { name: String },

    /// The object named does not exist.
    #[error("{kind} \"{name}\" does not exist")]
    NotFound {
        kind: &'static str,
        name: String,
        hint: Option<String>,
    },

    /// The caller may not do this: a host `eventeum.allowed_hosts` refuses,
    /// a consumer group not granted to the caller.
    #[error("{message}")]
    Forbidden {
        message: String,
        hint: Option<String>,
    },

    /// This database is not the one the worker serves (`eventeum.database`):
    /// what is configured here would never be followed or delivered.
    #[error("eventeum's worker does not serve database \"{database}\"")]
    NotServed { database: String, served: String },

    /// The object is still used by others, e.g. a node that has filters.
    #[error("{kind} \"{name}\" is still in use: {detail}")]
    InUse {
        kind: &'static str,
        name: String,
        detail: String,
    },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidParameter {
            message: message.into(),
            hint: None,
        }
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        ApiError::NotFound {
            kind,
            name: name.into(),
            hint: None,
        }
    }

    /// A connection `eventeum.allowed_hosts` refuses; `what` names the URL or server.
    pub fn refused(refused: crate::netpolicy::Refused, what: &str) -> Self {
        ApiError::Forbidden {
            message: format!("{what}: {refused}"),
            hint: Some(format!(
                "a superuser may allow it in {} (postgresql.conf or ALTER SYSTEM, then reload)",
                crate::netpolicy::SETTING
            )),
        }
    }

    pub fn invalid_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::InvalidParameter {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The five-character SQLSTATE this error is reported with.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter { .. } => "22023", // invalid_parameter_value
            ApiError::Duplicate { .. } => "23505",        // unique_violation
            ApiError::NotFound { .. } => "42704",         // undefined_object
            ApiError::RelationExists { .. } => "42P07",   // duplicate_table
            ApiError::NoSchema { .. } => "3F000",         // invalid_schema_name
            ApiError::InUse { .. } => "2BP01",            // dependent_objects_still_exist
            ApiError::Forbidden { .. } => "42501",        // insufficient_privilege
            ApiError::NotServed { .. } => "55000",        // object_not_in_prerequisite_state
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ApiError::InvalidParameter { hint, .. }
            | ApiError::NotFound { hint, .. }
            | ApiError::Forbidden { hint, .. }
            | ApiError::RelationExists { hint, .. } => hint.clone(),
            ApiError::InUse { .. } => Some("remove the objects that use it first".into()),
            ApiError::NotServed { served, .. } => Some(format!(
                "the worker serves database \"{served}\" (eventeum.database, set in postgresql.conf; a change needs a restart): configure eventeum there"
            )),
            ApiError::Duplicate { .. } | ApiError::NoSchema { .. } => None,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// An error with its sources, `outer: inner: innermost`: a client library's
/// top-level message ("error sending request") rarely says what went wrong.
pub fn display_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}
