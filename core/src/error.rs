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

    /// Text that is not a value of one of eventeum's types (`eventeum.address`, ...).
    #[error("invalid input syntax for type {type_name}: \"{input}\": {reason}")]
    InvalidText {
        type_name: &'static str,
        input: String,
        reason: String,
    },

    /// Binary input that is not a value of one of eventeum's types.
    #[error("invalid binary value for type {type_name}: {reason}")]
    InvalidBinary {
        type_name: &'static str,
        reason: String,
    },

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

    /// The SQLSTATE this error is reported with.
    pub fn sqlstate(&self) -> SqlState {
        match self {
            ApiError::InvalidParameter { .. } => SqlState::InvalidParameterValue,
            ApiError::Duplicate { .. } => SqlState::UniqueViolation,
            ApiError::NotFound { .. } => SqlState::UndefinedObject,
            ApiError::RelationExists { .. } => SqlState::DuplicateTable,
            ApiError::NoSchema { .. } => SqlState::InvalidSchemaName,
            ApiError::InUse { .. } => SqlState::DependentObjectsStillExist,
            ApiError::Forbidden { .. } => SqlState::InsufficientPrivilege,
            ApiError::NotServed { .. } => SqlState::ObjectNotInPrerequisiteState,
            ApiError::InvalidText { .. } => SqlState::InvalidTextRepresentation,
            ApiError::InvalidBinary { .. } => SqlState::InvalidBinaryRepresentation,
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
            ApiError::Duplicate { .. }
            | ApiError::NoSchema { .. }
            | ApiError::InvalidText { .. }
            | ApiError::InvalidBinary { .. } => None,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The SQLSTATEs eventeum's SQL API raises, each under PostgreSQL's name
/// for it. The extension maps every one to its error code in one
/// exhaustive match (`api::raise`): a new state does not compile until it
/// is mapped, so none falls back to XX000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlState {
    /// 22023: malformed input.
    InvalidParameterValue,
    /// 23505: a name or id taken.
    UniqueViolation,
    /// 42704: the object named does not exist.
    UndefinedObject,
    /// 42P07: a relation of that name exists.
    DuplicateTable,
    /// 3F000: the schema named does not exist.
    InvalidSchemaName,
    /// 2BP01: still used by other objects.
    DependentObjectsStillExist,
    /// 42501: the caller may not.
    InsufficientPrivilege,
    /// 55000: this database is not the one the worker serves.
    ObjectNotInPrerequisiteState,
    /// 22P02: text that is not a value of the type.
    InvalidTextRepresentation,
    /// 22P03: binary input that is not a value of the type.
    InvalidBinaryRepresentation,
}

impl SqlState {
    /// Its five characters, as a client sees them.
    pub fn code(self) -> &'static str {
        match self {
            SqlState::InvalidParameterValue => "22023",
            SqlState::UniqueViolation => "23505",
            SqlState::UndefinedObject => "42704",
            SqlState::DuplicateTable => "42P07",
            SqlState::InvalidSchemaName => "3F000",
            SqlState::DependentObjectsStillExist => "2BP01",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::InvalidTextRepresentation => "22P02",
            SqlState::InvalidBinaryRepresentation => "22P03",
        }
    }
}

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
