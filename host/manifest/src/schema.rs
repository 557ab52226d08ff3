//! Table schemas: the Delta `schemaString` model, conversion to and from Arrow, the CLI column
//! spec (`"id:long,name:string,dt:date"`), and the write-compatibility check.
//!
//! Guarantees: `to_arrow` and `from_arrow` round-trip every supported type; a write is accepted
//! only if every column it shares with the table has the same type, every table column it lacks
//! is nullable, and new columns are nullable and explicitly allowed (schema evolution).

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType as ArrowType, Field as ArrowField, Fields, Schema, TimeUnit};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// A Delta column type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataType {
    Long,
    Integer,
    Short,
    Byte,
    Double,
    Float,
    Boolean,
    String,
    Binary,
    Date,
    /// Microseconds since the epoch, UTC.
    Timestamp,
    /// Microseconds, no time zone.
    TimestampNtz,
    Decimal(u8, i8),
    Struct(Vec<Field>),
    Array(Box<DataType>, bool),
    Map(Box<DataType>, Box<DataType>, bool),
}

/// A named column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub metadata: Map<String, Value>,
}

impl Field {
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type,
            nullable,
            metadata: Map::new(),
        }
    }
}

/// A table schema: an ordered list of top-level columns.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TableSchema {
    pub fields: Vec<Field>,
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Long => f.write_str("long"),
            DataType::Integer => f.write_str("integer"),
            DataType::Short => f.write_str("short"),
            DataType::Byte => f.write_str("byte"),
            DataType::Double => f.write_str("double"),
            DataType::Float => f.write_str("float"),
            DataType::Boolean => f.write_str("boolean"),
            DataType::String => f.write_str("string"),
            DataType::Binary => f.write_str("binary"),
            DataType::Date => f.write_str("date"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampNtz => f.write_str("timestamp_ntz"),
            DataType::Decimal(p, s) => write!(f, "decimal({p},{s})"),
            DataType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", field.name, field.data_type)?;
                }
                f.write_str(">")
            }
            DataType::Array(element, _) => write!(f, "array<{element}>"),
            DataType::Map(key, value, _) => write!(f, "map<{key},{value}>"),
        }
    }
}

impl DataType {
    /// Parses a primitive Delta type name (`long`, `decimal(10,2)`, ...). Aliases: int, bigint, smallint,
    /// tinyint, bool, str, bytes, timestamp_us.
    pub fn parse_primitive(name: &str) -> Option<DataType> {
        let name = name.trim().to_ascii_lowercase();
        let t = match name.as_str() {
            "long" | "bigint" | "int64" => DataType::Long,
            "integer" | "int" | "int32" => DataType::Integer,
            "short" | "smallint" | "int16" => DataType::Short,
            "byte" | "tinyint" | "int8" => DataType::Byte,
            "double" | "float64" => DataType::Double,
            "float" | "real" | "float32" => DataType::Float,
            "boolean" | "bool" => DataType::Boolean,
            "string" | "str" | "utf8" => DataType::String,
            "binary" | "bytes" => DataType::Binary,
            "date" => DataType::Date,
            "timestamp" => DataType::Timestamp,
            "timestamp_ntz" => DataType::TimestampNtz,
            _ => {
                let inner = name.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                let p: u8 = p.trim().parse().ok()?;
                let s: i8 = s.trim().parse().ok()?;
                if p == 0 || p > 38 || s < 0 || s as u8 > p {
                    return None;
                }
                DataType::Decimal(p, s)
            }
        };
        Some(t)
    }

    fn to_json(&self) -> Value {
        match self {
            DataType::Struct(fields) => struct_json(fields),
            DataType::Array(element, contains_null) => json!({
                "type": "array", "elementType": element.to_json(), "containsNull": contains_null
            }),
            DataType::Map(key, value, value_null) => json!({
                "type": "map", "keyType": key.to_json(), "valueType": value.to_json(),
                "valueContainsNull": value_null
            }),
            primitive => Value::String(primitive.to_string()),
        }
    }

    fn from_json(value: &Value) -> Result<DataType, String> {
        if let Value::String(name) = value {
            return DataType::parse_primitive(name)
                .ok_or_else(|| format!("unsupported type {name:?}"));
        }
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            "struct" => Ok(DataType::Struct(fields_from_json(value)?)),
            "array" => {
                let element = value
                    .get("elementType")
                    .ok_or("array without elementType")?;
                let contains_null = value
                    .get("containsNull")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                Ok(DataType::Array(
                    Box::new(DataType::from_json(element)?),
                    contains_null,
                ))
            }
            "map" => {
                let key = value.get("keyType").ok_or("map without keyType")?;
                let val = value.get("valueType").ok_or("map without valueType")?;
                let value_null = value
                    .get("valueContainsNull")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                Ok(DataType::Map(
                    Box::new(DataType::from_json(key)?),
                    Box::new(DataType::from_json(val)?),
                    value_null,
                ))
            }
            other => Err(format!("unsupported type {other:?}")),
        }
    }

    /// The Arrow type this Delta type is written as.
    pub fn to_arrow(&self) -> ArrowType {
        match self {
            DataType::Long => ArrowType::Int64,
            DataType::Integer => ArrowType::Int32,
            DataType::Short => ArrowType::Int16,
            DataType::Byte => ArrowType::Int8,
            DataType::Double => ArrowType::Float64,
            DataType::Float => ArrowType::Float32,
            DataType::Boolean => ArrowType::Boolean,
            DataType::String => ArrowType::Utf8,
            DataType::Binary => ArrowType::Binary,
            DataType::Date => ArrowType::Date32,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::TimestampNtz => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Decimal(p, s) => ArrowType::Decimal128(*p, *s),
            DataType::Struct(fields) => {
                ArrowType::Struct(fields.iter().map(Field::to_arrow).collect::<Fields>())
            }
            DataType::Array(element, contains_null) => ArrowType::List(Arc::new(ArrowField::new(
                "element",
                element.to_arrow(),
                *contains_null,
            ))),
            DataType::Map(key, value, value_null) => {
                let entries = ArrowField::new(
                    "key_value",
                    ArrowType::Struct(Fields::from(vec![
                        ArrowField::new("key", key.to_arrow(), false),
                        ArrowField::new("value", value.to_arrow(), *value_null),
                    ])),
                    false,
                );
                ArrowType::Map(Arc::new(entries), false)
            }
        }
    }

    /// The Delta type of an Arrow type; `Err` names the unsupported Arrow type.
    pub fn from_arrow(t: &ArrowType) -> Result<DataType, String> {
        let dt = match t {
            ArrowType::Int64 => DataType::Long,
            ArrowType::Int32 => DataType::Integer,
            ArrowType::Int16 => DataType::Short,
            ArrowType::Int8 => DataType::Byte,
            ArrowType::Float64 => DataType::Double,
            ArrowType::Float32 => DataType::Float,
            ArrowType::Boolean => DataType::Boolean,
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::String,
            ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => DataType::Binary,
            ArrowType::Date32 => DataType::Date,
            ArrowType::Timestamp(TimeUnit::Microsecond, Some(_)) => DataType::Timestamp,
            ArrowType::Timestamp(TimeUnit::Microsecond, None) => DataType::TimestampNtz,
            ArrowType::Decimal128(p, s) => DataType::Decimal(*p, *s),
            ArrowType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|f| Field::from_arrow(f))
                    .collect::<Result<_, _>>()?,
            ),
            ArrowType::List(f) | ArrowType::LargeList(f) | ArrowType::ListView(f) => {
                DataType::Array(
                    Box::new(DataType::from_arrow(f.data_type())?),
                    f.is_nullable(),
                )
            }
            ArrowType::Map(entries, _) => {
                let ArrowType::Struct(kv) = entries.data_type() else {
                    return Err(format!("unsupported Arrow type {t}"));
                };
                if kv.len() != 2 {
                    return Err(format!("unsupported Arrow type {t}"));
                }
                DataType::Map(
                    Box::new(DataType::from_arrow(kv[0].data_type())?),
                    Box::new(DataType::from_arrow(kv[1].data_type())?),
                    kv[1].is_nullable(),
                )
            }
            other => return Err(format!("unsupported Arrow type {other}")),
        };
        Ok(dt)
    }
}

impl Field {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.data_type.to_json(),
            "nullable": self.nullable,
            "metadata": self.metadata,
        })
    }

    fn to_arrow(&self) -> ArrowField {
        ArrowField::new(&self.name, self.data_type.to_arrow(), self.nullable)
    }

    fn from_arrow(f: &ArrowField) -> Result<Field, String> {
        let data_type = DataType::from_arrow(f.data_type())
            .map_err(|e| format!("column `{}`: {e}", f.name()))?;
        Ok(Field::new(f.name(), data_type, f.is_nullable()))
    }

    /// The type as shown in messages, with `not null` when it applies.
    pub fn describe(&self) -> String {
        if self.nullable {
            self.data_type.to_string()
        } else {
            format!("{} not null", self.data_type)
        }
    }
}

fn struct_json(fields: &[Field]) -> Value {
    json!({"type": "struct", "fields": fields.iter().map(Field::to_json).collect::<Vec<_>>()})
}

fn fields_from_json(value: &Value) -> Result<Vec<Field>, String> {
    let fields = value
        .get("fields")
        .and_then(Value::as_array)
        .ok_or("struct without fields")?;
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or("field without name")?;
            let t = f
                .get("type")
                .ok_or_else(|| format!("field `{name}` without type"))?;
            let data_type = DataType::from_json(t).map_err(|e| format!("field `{name}`: {e}"))?;
            let nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
            let metadata = f
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Ok(Field {
                name: name.to_string(),
                data_type,
                nullable,
                metadata,
            })
        })
        .collect()
}

impl TableSchema {
    pub fn new(fields: Vec<Field>) -> Self {
        Self { fields }
    }

    /// The column named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The Delta `schemaString`.
    pub fn to_schema_string(&self) -> String {
        struct_json(&self.fields).to_string()
    }

    /// Parses a Delta `schemaString` (also the JSON schema file the CLI accepts).
    pub fn from_schema_string(s: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(s).map_err(|e| format!("schema is not JSON: {e}"))?;
        Ok(Self {
            fields: fields_from_json(&value)?,
        })
    }

    /// The Arrow schema of the table's rows (partition columns included).
    pub fn to_arrow(&self) -> Schema {
        Schema::new(self.fields.iter().map(Field::to_arrow).collect::<Vec<_>>())
    }

    /// The table schema of Arrow rows; the error names the column with an unsupported type.
    pub fn from_arrow(schema: &Schema) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| Field::from_arrow(f))
            .collect::<Result<_, _>>()
            .map_err(Error::Invalid)?;
        Ok(Self { fields })
    }

    /// Parses a column spec: `"id:long,name:string not null,amount:decimal(10,2),dt:date"`.
    pub fn parse_spec(spec: &str) -> Result<Self> {
        let mut fields: Vec<Field> = Vec::new();
        for item in split_top_level(spec) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (name, type_spec) = item.split_once(':').ok_or_else(|| {
                Error::Invalid(format!(
                    "column spec {item:?} is not name:type (e.g. id:long)"
                ))
            })?;
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::Invalid(format!(
                    "column spec {item:?} has an empty name"
                )));
            }
            let mut type_spec = type_spec.trim().to_string();
            let mut nullable = true;
            let lower = type_spec.to_ascii_lowercase();
            if let Some(stripped) = lower.strip_suffix("not null") {
                type_spec = stripped.trim().to_string();
                nullable = false;
            } else if let Some(stripped) = type_spec.strip_suffix('!') {
                type_spec = stripped.trim().to_string();
                nullable = false;
            }
            let data_type = DataType::parse_primitive(&type_spec).ok_or_else(|| {
                Error::Invalid(format!(
                    "column `{name}`: unknown type {type_spec:?}; use long, integer, short, byte, double, \
                     float, boolean, string, binary, date, timestamp, timestamp_ntz or decimal(p,s)"
                ))
            })?;
            if fields.iter().any(|f| f.name == name) {
                return Err(Error::Invalid(format!("column `{name}` is listed twice")));
            }
            fields.push(Field::new(name, data_type, nullable));
        }
        if fields.is_empty() {
            return Err(Error::Invalid("the schema has no columns".into()));
        }
        Ok(Self { fields })
    }

    /// Checks that rows with schema `write` may be appended to a table with schema `self`.
    /// Returns the evolved table schema when `evolve` is set and the write adds nullable columns.
    pub fn check_write(&self, write: &TableSchema, evolve: bool) -> Result<Option<TableSchema>> {
        for table_field in &self.fields {
            match write.field(&table_field.name) {
                Some(w) => {
                    let same_type = w.data_type == table_field.data_type;
                    let nullability_ok = table_field.nullable || !w.nullable;
                    if !same_type || !nullability_ok {
                        return Err(Error::SchemaMismatch {
                            column: table_field.name.clone(),
                            table_type: table_field.describe(),
                            write_type: w.describe(),
                        });
                    }
                }
                None if table_field.nullable => {}
                None => {
                    return Err(Error::SchemaMismatch {
                        column: table_field.name.clone(),
                        table_type: table_field.describe(),
                        write_type: "no such column (the table column is not nullable)".into(),
                    });
                }
            }
        }
        let mut added = Vec::new();
        for w in &write.fields {
            if self.field(&w.name).is_some() {
                continue;
            }
            if !evolve {
                return Err(Error::SchemaMismatch {
                    column: w.name.clone(),
                    table_type: "no such column (enable schema evolution to add it)".into(),
                    write_type: w.describe(),
                });
            }
            if !w.nullable {
                return Err(Error::SchemaMismatch {
                    column: w.name.clone(),
                    table_type: "no such column (only nullable columns can be added)".into(),
                    write_type: w.describe(),
                });
            }
            added.push(w.clone());
        }
        if added.is_empty() {
            return Ok(None);
        }
        let mut evolved = self.clone();
        evolved.fields.extend(added);
        Ok(Some(evolved))
    }
}

/// Splits on commas that are not inside parentheses (so `decimal(10,2)` stays whole).
fn split_top_level(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_types() -> TableSchema {
        let mut fields = vec![];
        for (i, t) in [
            "long",
            "integer",
            "short",
            "byte",
            "double",
            "float",
            "boolean",
            "string",
            "binary",
            "date",
            "timestamp",
            "timestamp_ntz",
            "decimal(10,2)",
        ]
        .iter()
        .enumerate()
        {
            fields.push(Field::new(
                format!("c{i}"),
                DataType::parse_primitive(t).unwrap(),
                i % 2 == 0,
            ));
        }
        fields.push(Field::new(
            "nested",
            DataType::Struct(vec![
                Field::new("a", DataType::Array(Box::new(DataType::Long), true), true),
                Field::new(
                    "m",
                    DataType::Map(Box::new(DataType::String), Box::new(DataType::Double), true),
                    true,
                ),
            ]),
            true,
        ));
        TableSchema::new(fields)
    }

    #[test]
    fn arrow_and_schema_string_round_trip() {
        let schema = all_types();
        let arrow = schema.to_arrow();
        assert_eq!(TableSchema::from_arrow(&arrow).unwrap(), schema);
        let s = schema.to_schema_string();
        assert_eq!(TableSchema::from_schema_string(&s).unwrap(), schema);
        assert!(s.contains("\"decimal(10,2)\""), "{s}");
        assert_eq!(
            arrow.field_with_name("c10").unwrap().data_type(),
            &ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn spec_parses_types_and_nullability() {
        let s = TableSchema::parse_spec(
            "id:long not null, name:string,amt:decimal(12,3),dt:date,ok:bool!",
        )
        .unwrap();
        assert_eq!(s.fields.len(), 5);
        assert!(!s.fields[0].nullable);
        assert_eq!(s.fields[2].data_type, DataType::Decimal(12, 3));
        assert!(!s.fields[4].nullable);
        let err = TableSchema::parse_spec("id:long,x:uuid")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x`") && err.contains("uuid"), "{err}");
        assert!(TableSchema::parse_spec("id").is_err());
    }

    #[test]
    fn incompatible_write_names_column_and_types() {
        let table = TableSchema::parse_spec("id:long,name:string").unwrap();
        let write = TableSchema::parse_spec("id:integer,name:string").unwrap();
        let err = table.check_write(&write, false).unwrap_err();
        let Error::SchemaMismatch {
            column,
            table_type,
            write_type,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(
            (column.as_str(), table_type.as_str(), write_type.as_str()),
            ("id", "long", "integer")
        );
        assert!(err.to_string().contains("`id`"));
    }

    #[test]
    fn new_columns_need_evolution_and_nullability() {
        let table = TableSchema::parse_spec("id:long").unwrap();
        let write = TableSchema::parse_spec("id:long,extra:string").unwrap();
        assert!(matches!(
            table.check_write(&write, false),
            Err(Error::SchemaMismatch { ref column, .. }) if column == "extra"
        ));
        let evolved = table.check_write(&write, true).unwrap().unwrap();
        assert_eq!(evolved.fields.len(), 2);
        let strict = TableSchema::parse_spec("id:long,extra:string not null").unwrap();
        assert!(table.check_write(&strict, true).is_err());
        // Missing nullable column is fine; missing non-null is not.
        let narrow = TableSchema::parse_spec("name:string").unwrap();
        let t2 = TableSchema::parse_spec("id:long,name:string").unwrap();
        assert_eq!(t2.check_write(&narrow, false).unwrap(), None);
        let t3 = TableSchema::parse_spec("id:long not null,name:string").unwrap();
        assert!(t3.check_write(&narrow, false).is_err());
    }
}
