//! Typed views (SQL API; any thread): each filter's events as a view with a
//! named, typed column per event parameter, over its rows in its kind's
//! table (a column per parameter, or Eventeum's JSON lists in the JSON
//! table), and the partial indexes that make lookups by a parameter fast.
//!
//! Everything here builds SQL text from a filter, so every name in it is
//! quoted ([`ident`]) and every value escaped ([`literal`]): a filter's
//! names come from ABIs nobody here wrote.

mod columns;
mod index;

use alloy::primitives::keccak256;
use serde_json::{json, Value};

pub use columns::{Column, ColumnType};
pub use index::ViewIndex;

use crate::error::{ApiError, ApiResult};
use crate::event::EventSpecification;
use crate::kind::KindTable;

/// Where views go unless the filter names a schema.
pub const DEFAULT_SCHEMA: &str = "eventeum";
/// The most parameters one filter may index.
pub const MAX_INDEXES: usize = 8;
/// Postgres truncates identifiers to NAMEDATALEN - 1 bytes; names are kept within it.
pub const MAX_NAME: usize = 63;
/// The columns after the parameters, in order. A parameter with one of these
/// names gets a trailing `_`.
pub const META_COLUMNS: [&str; 7] = [
    "block_number",
    "block_time",
    "transaction_hash",
    "log_index",
    "status",
    "node",
    "contract_address",
];

/// A filter's `"view"`: none (`false` or `null`), or a view whose name,
/// schema and indexed parameters default when not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewRequest {
    Off,
    On {
        schema: Option<String>,
        name: Option<String>,
        index: Vec<String>,
    },
}

impl Default for ViewRequest {
    fn default() -> Self {
        ViewRequest::On {
            schema: None,
            name: None,
            index: vec![],
        }
    }
}

impl ViewRequest {
    /// Parses `"view"`: absent (a view with the default name), `false`/`null`
    /// (none), a name, or `{"name", "schema", "index": [parameter, …]}`.
    /// Indexed parameters are checked against `spec`'s columns.
    pub fn from_json(value: Option<&Value>, spec: &EventSpecification) -> ApiResult<Self> {
        let request = match value {
            None => ViewRequest::default(),
            Some(Value::Null | Value::Bool(false)) => ViewRequest::Off,
            Some(Value::String(name)) => ViewRequest::On {
                schema: None,
                name: Some(valid_name("view name", name)?),
                index: vec![],
            },
            Some(Value::Object(fields)) => {
                if let Some(unknown) = fields
                    .keys()
                    .find(|k| !["name", "schema", "index"].contains(&k.as_str()))
                {
                    return Err(ApiError::invalid(format!(
                        "view: unknown field \"{unknown}\" (expected name, schema, index)"
                    )));
                }
                let text = |key: &str| -> ApiResult<Option<String>> {
                    match fields.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => valid_name(key, s).map(Some),
                        Some(other) => Err(ApiError::invalid(format!(
                            "view: {key} must be a string, got {other}"
                        ))),
                    }
                };
                let index = match fields.get("index") {
                    None | Some(Value::Null) => vec![],
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| match item {
                            Value::String(s) => Ok(s.clone()),
                            other => Err(ApiError::invalid(format!(
                                "view: index lists column names, got {other}"
                            ))),
                        })
                        .collect::<ApiResult<Vec<_>>>()?,
                    Some(other) => {
                        return Err(ApiError::invalid(format!(
                            "view: index must be an array of column names, got {other}"
                        )))
                    }
                };
                ViewRequest::On {
                    schema: text("schema")?,
                    name: text("name")?,
                    index,
                }
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "view must be false, a name or an object, got {other}"
                )))
            }
        };
        // The worker parses every filter on each configuration change:
        // columns are worked out only when there are indexes to check.
        if let ViewRequest::On { index, .. } = &request {
            if !index.is_empty() {
                check_index(index, &columns::columns(spec))?;
            }
        }
        Ok(request)
    }

    /// Names that are the defaults for filter `filter_id` as defaults, so
    /// that a listed definition parses back to what was listed.
    pub fn normalized(self, filter_id: Option<&str>) -> Self {
        match self {
            ViewRequest::Off => ViewRequest::Off,
            ViewRequest::On {
                schema,
                name,
                index,
            } => ViewRequest::On {
                schema: schema.filter(|s| s != DEFAULT_SCHEMA),
                name: name.filter(|n| filter_id.is_none_or(|id| *n != default_view_name(id))),
                index,
            },
        }
    }

    /// The view as it will be created for filter `filter_id`, or None.
    pub fn resolve(&self, filter_id: &str, spec: &EventSpecification) -> Option<TypedView> {
        match self {
            ViewRequest::Off => None,
            ViewRequest::On {
                schema,
                name,
                index,
            } => Some(TypedView {
                filter_id: filter_id.to_string(),
                schema: schema.clone().unwrap_or_else(|| DEFAULT_SCHEMA.into()),
                name: name.clone().unwrap_or_else(|| default_view_name(filter_id)),
                columns: columns::columns(spec),
                index: index.clone(),
            }),
        }
    }

    /// What the stored definition says: the resolved names, or `false`.
    pub fn to_json(&self, filter_id: &str, spec: &EventSpecification) -> Value {
        match self.resolve(filter_id, spec) {
            None => Value::Bool(false),
            Some(view) => json!({"schema": view.schema, "name": view.name, "index": view.index}),
        }
    }
}

fn check_index(index: &[String], columns: &[Column]) -> ApiResult<()> {
    if index.len() > MAX_INDEXES {
        return Err(ApiError::invalid(format!(
            "view: at most {MAX_INDEXES} parameters may be indexed"
        )));
    }
    for (i, name) in index.iter().enumerate() {
        if index[..i].contains(name) {
            return Err(ApiError::invalid(format!(
                "view: \"{name}\" is indexed twice"
            )));
        }
        match columns.iter().find(|c| &c.name == name) {
            None => {
                return Err(ApiError::invalid_with_hint(
                    format!("view: no parameter column \"{name}\" to index"),
                    format!(
                        "the view's parameter columns are: {}",
                        columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
            Some(c) if !c.ty.is_scalar() => {
                return Err(ApiError::invalid(format!(
                    "view: \"{name}\" is a {} column; only numeric, text, bytea and boolean columns are indexed",
                    c.ty.sql()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether Postgres keeps `name` as given: 1..=63 bytes without control characters.
pub(crate) fn kept_as_given(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control)
}

fn valid_name(what: &str, name: &str) -> ApiResult<String> {
    if !kept_as_given(name) {
        return Err(ApiError::invalid(format!(
            "view: {what} {name:?} must be 1 to {MAX_NAME} bytes without control characters"
        )));
    }
    Ok(name.to_string())
}

/// The view name a filter gets when it names none: its id in lower case,
/// every run of other characters than a-z, 0-9 and _ made one `_`, prefixed
/// `filter_` when it would start with a digit (or be empty), and cut to 63
/// bytes with a hash of the id when longer.
pub fn default_view_name(filter_id: &str) -> String {
    let mut name = String::new();
    for c in filter_id.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let mut name = name.trim_matches('_').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "filter_");
    }
    if name.len() > MAX_NAME {
        name.truncate(MAX_NAME - 9);
        name.push('_');
        name.push_str(&short_hash(filter_id));
    }
    name
}

fn short_hash(text: &str) -> String {
    alloy::primitives::hex::encode(&keccak256(text.as_bytes())[..4])
}

/// A filter's view, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedView {
    pub filter_id: String,
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Names of the parameter columns to index.
    pub index: Vec<String>,
}

impl TypedView {
    /// `"schema"."name"`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    /// `CREATE VIEW` over `source`: parameters first, then
    /// [`META_COLUMNS`]. It runs with the privileges of who reads it
    /// (security_invoker): a view grants nothing its table does not.
    pub fn create_sql(&self, source: &ViewSource) -> String {
        let mut select: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} AS {}", source.column(i, c, "e."), ident(&c.name)))
            .collect();
        select.extend([
            "e.block_number".to_string(),
            "to_timestamp(e.block_timestamp) AS block_time".into(),
            "e.transaction_hash".into(),
            "e.log_index".into(),
            "e.status".into(),
            format!("{}::text AS node", literal(&source.node)),
            "e.address AS contract_address".into(),
        ]);
        format!(
            "CREATE VIEW {} WITH (security_invoker = true) AS\nSELECT {}\n  FROM {} AS e\n WHERE e.node_key = {} AND e.filter_key = {}",
            self.qualified_name(),
            select.join(",\n       "),
            source.table.qualified_name(),
            source.node_key,
            source.filter_key
        )
    }

    /// The comment that marks the view as this filter's: only such a view is
    /// ever dropped or left in place as ours.
    pub fn comment(&self) -> String {
        marker(&self.filter_id)
    }

    /// The indexes it asks for, one per indexed parameter: a partial index
    /// on the filter's rows in `source` of the column and `block_number`, so
    /// `WHERE col = $1 ORDER BY block_number DESC` walks it.
    pub fn indexes(&self, source: &ViewSource) -> Vec<ViewIndex> {
        self.index
            .iter()
            .filter_map(|name| {
                self.columns
                    .iter()
                    .enumerate()
                    .find(|(_, c)| &c.name == name)
            })
            .map(|(i, c)| ViewIndex {
                name: index_name(&self.filter_id, &self.name, &c.name),
                filter_id: self.filter_id.clone(),
                view: self.qualified_name(),
                column: c.name.clone(),
                table: source.table.name(),
                expression: source.column(i, c, ""),
                filter_key: source.filter_key,
            })
            .collect()
    }

    /// The names of the indexes [`TypedView::indexes`] asks for.
    pub fn index_names(&self) -> Vec<String> {
        self.index
            .iter()
            .map(|column| index_name(&self.filter_id, &self.name, column))
            .collect()
    }
}

/// Where a typed view reads its filter's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSource {
    pub table: KindTable,
    /// The rows' `filter_key`.
    pub filter_key: i32,
    /// The rows' `node_key`: the first column the kind table is partitioned
    /// by, so a view that names it reads only its node's partitions.
    pub node_key: i32,
    /// The filter's node, shown in the view's `node` column.
    pub node: String,
}

impl ViewSource {
    /// The expression of column `c`, the `i`th parameter in declaration
    /// order, over the table's row (columns prefixed by `qualifier`).
    fn column(&self, i: usize, c: &Column, qualifier: &str) -> String {
        match self.table {
            KindTable::Typed(_) => format!("{qualifier}p{}", i + 1),
            KindTable::Json => c.expression(qualifier),
        }
    }
}

/// The comment on every typed view: which filter it shows.
pub fn marker(filter_id: &str) -> String {
    format!("eventeum typed view of filter {filter_id}")
}

/// An index's name in schema `eventeum`: readable prefixes of the view and
/// column, and a hash of the filter id and column that keeps it unique.
pub fn index_name(filter_id: &str, view: &str, column: &str) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '_'
                }
            })
            .take(max)
            .collect()
    };
    format!(
        "{}_{}_{}",
        clean(view, 30),
        clean(column, 20),
        short_hash(&format!("{filter_id}\n{column}"))
    )
}

/// A quoted identifier: always double-quoted, `"` doubled. Names never hold
/// NUL (Postgres text cannot, and [`valid_name`] refuses control characters).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal that means the same whatever `standard_conforming_strings` says.
pub fn literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}
