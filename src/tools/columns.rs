//! Parquet tables written a row group at a time, for the fleet dataset ([`super::export`]).
//! Columns are flat (integers, booleans, UTF-8 text, each required or optional): every engine
//! reads them alike, with no engine-specific functions for nested types.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use super::{ErrorKind, ToolError};

/// Rows held before they are written as a row group, or fewer when they hold this many bytes:
/// memory stays bounded however many rows a table gets.
const ROWS_PER_GROUP: usize = 1 << 16;
const BYTES_PER_GROUP: usize = 8 << 20;

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit signed integer.
    Int64,
    /// A 32-bit signed integer.
    Int32,
    /// A boolean.
    Bool,
    /// UTF-8 text.
    Text,
}

/// A column: its name, type, and whether it may be null.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Whether it may be null.
    pub optional: bool,
}

/// A required column.
pub const fn required(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        optional: false,
    }
}

/// An optional column.
pub const fn optional(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        optional: true,
    }
}

/// One value of a row.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// For an [`Kind::Int64`] column.
    I64(i64),
    /// For an [`Kind::Int32`] column.
    I32(i32),
    /// For a [`Kind::Bool`] column.
    Bool(bool),
    /// For a [`Kind::Text`] column.
    Text(&'a str),
    /// For an optional column.
    Null,
}

impl<'a> Value<'a> {
    /// `v` as an [`Value::I64`]; values past `i64::MAX` (never a real count or time) wrap, as
    /// Parquet has no unsigned 64-bit type every engine reads.
    pub fn u64(v: u64) -> Self {
        Value::I64(v as i64)
    }

    /// Text, or null.
    pub fn opt_text(v: Option<&'a str>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

/// A column's values not yet written.
enum Values {
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Text(Vec<ByteArray>),
}

/// A Parquet file being written, one row at a time.
pub struct Table {
    path: PathBuf,
    columns: Vec<Column>,
    values: Vec<Values>,
    /// Per optional column, a definition level per row (1 present, 0 null).
    defined: Vec<Vec<i16>>,
    rows: usize,
    /// What the rows held take, roughly.
    held: usize,
    total: u64,
    writer: SerializedFileWriter<BufWriter<File>>,
}

impl Table {
    /// Creates `dir/<name>.parquet` with `columns` (Snappy-compressed, dictionary-encoded).
    pub fn create(dir: &Path, name: &str, columns: &[Column]) -> Result<Table, ToolError> {
        let path = dir.join(format!("{name}.parquet"));
        let fields: String = columns
            .iter()
            .map(|c| {
                let repetition = if c.optional { "optional" } else { "required" };
                let ty = match c.kind {
                    Kind::Int64 => "int64",
                    Kind::Int32 => "int32",
                    Kind::Bool => "boolean",
                    Kind::Text => "binary",
                };
                let text = if c.kind == Kind::Text { " (UTF8)" } else { "" };
                format!("{repetition} {ty} {}{text}; ", c.name)
            })
            .collect();
        let schema =
            parquet::schema::parser::parse_message_type(&format!("message {name} {{ {fields}}}"))
                .map_err(|e| output_error(&path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("vignette {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = File::create(&path).map_err(|e| ToolError::io(&path, e))?;
        let writer =
            SerializedFileWriter::new(BufWriter::new(file), Arc::new(schema), Arc::new(props))
                .map_err(|e| output_error(&path, e))?;
        let values = columns
            .iter()
            .map(|c| match c.kind {
                Kind::Int64 => Values::I64(Vec::new()),
                Kind::Int32 => Values::I32(Vec::new()),
                Kind::Bool => Values::Bool(Vec::new()),
                Kind::Text => Values::Text(Vec::new()),
            })
            .collect();
        Ok(Table {
            path,
            columns: columns.to_vec(),
            values,
            defined: vec![Vec::new(); columns.len()],
            rows: 0,
            held: 0,
            total: 0,
            writer,
        })
    }

    /// Adds a row: one value per column, in the columns' order, of the column's type (or null
    /// where it is optional). A row that does not fit the columns is an error and adds nothing.
    pub fn row(&mut self, row: &[Value]) -> Result<(), ToolError> {
        let fits = row.len() == self.columns.len()
            && row.iter().zip(&self.columns).all(|(v, c)| {
                matches!(
                    (v, c.kind),
                    (Value::I64(_), Kind::Int64)
                        | (Value::I32(_), Kind::Int32)
                        | (Value::Bool(_), Kind::Bool)
                        | (Value::Text(_), Kind::Text)
                ) || matches!(v, Value::Null) && c.optional
            });
        if !fits {
            return Err(ToolError::new(
                ErrorKind::Output,
                format!(
                    "a row of {} does not fit its columns: {row:?}",
                    self.path.display()
                ),
            ));
        }
        for ((v, values), (c, defined)) in row
            .iter()
            .zip(&mut self.values)
            .zip(self.columns.iter().zip(&mut self.defined))
        {
            if c.optional {
                defined.push(!matches!(v, Value::Null) as i16);
            }
            match (v, values) {
                (Value::I64(x), Values::I64(xs)) => xs.push(*x),
                (Value::I32(x), Values::I32(xs)) => xs.push(*x),
                (Value::Bool(x), Values::Bool(xs)) => xs.push(*x),
                (Value::Text(x), Values::Text(xs)) => {
                    self.held += x.len() + 32;
                    xs.push(ByteArray::from(x.as_bytes().to_vec()))
                }
                _ => {}
            }
            self.held += 8;
        }
        self.rows += 1;
        self.total += 1;
        if self.rows >= ROWS_PER_GROUP || self.held >= BYTES_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.total
    }

    /// Writes the rows held as one row group.
    fn flush(&mut self) -> Result<(), ToolError> {
        if self.rows == 0 {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e| output_error(&path, e);
        let mut group = self.writer.next_row_group().map_err(err)?;
        for ((values, c), defined) in self.values.iter_mut().zip(&self.columns).zip(&self.defined) {
            let Some(mut column) = group.next_column().map_err(err)? else {
                break;
            };
            let defs = c.optional.then_some(defined.as_slice());
            match values {
                Values::I64(xs) => column.typed::<Int64Type>().write_batch(xs, defs, None),
                Values::I32(xs) => column.typed::<Int32Type>().write_batch(xs, defs, None),
                Values::Bool(xs) => column.typed::<BoolType>().write_batch(xs, defs, None),
                Values::Text(xs) => column.typed::<ByteArrayType>().write_batch(xs, defs, None),
            }
            .map_err(err)?;
            column.close().map_err(err)?;
            match values {
                Values::I64(xs) => xs.clear(),
                Values::I32(xs) => xs.clear(),
                Values::Bool(xs) => xs.clear(),
                Values::Text(xs) => xs.clear(),
            }
        }
        group.close().map_err(err)?;
        self.defined.iter_mut().for_each(Vec::clear);
        self.rows = 0;
        self.held = 0;
        Ok(())
    }

    /// Writes what is held and the file's footer.
    pub fn finish(mut self) -> Result<u64, ToolError> {
        self.flush()?;
        let path = self.path.clone();
        self.writer.close().map_err(|e| output_error(&path, e))?;
        Ok(self.total)
    }
}

fn output_error(path: &Path, e: parquet::errors::ParquetError) -> ToolError {
    ToolError::new(
        ErrorKind::Output,
        format!("cannot write {}: {e}", path.display()),
    )
    .at(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn rows_are_read_back_across_row_groups_with_nulls() {
        let dir = std::env::temp_dir().join(format!("vignette-columns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let columns = [
            required("id", Kind::Int64),
            optional("name", Kind::Text),
            required("depth", Kind::Int32),
            required("leaf", Kind::Bool),
        ];
        let mut t = Table::create(&dir, "t", &columns).unwrap();
        let n = ROWS_PER_GROUP as i64 + 10;
        for i in 0..n {
            let name = format!("f{i}");
            let name = if i % 3 == 0 {
                Value::Null
            } else {
                Value::Text(&name)
            };
            t.row(&[
                Value::I64(i),
                name,
                Value::I32(i as i32 % 7),
                Value::Bool(i % 2 == 0),
            ])
            .unwrap();
        }
        // A row of the wrong shape is refused and adds nothing.
        assert!(t
            .row(&[Value::Null, Value::Null, Value::I32(0), Value::Bool(true)])
            .is_err());
        assert!(t.row(&[Value::I64(0)]).is_err());
        assert_eq!(t.finish().unwrap(), n as u64);

        let reader = SerializedFileReader::new(File::open(dir.join("t.parquet")).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let rows: Vec<_> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows.len() as i64, n);
        let last = rows.last().unwrap().to_string();
        let i = n - 1;
        assert_eq!(
            last,
            format!(
                "{{id: {i}, name: \"f{i}\", depth: {}, leaf: {}}}",
                i % 7,
                i % 2 == 0
            )
        );
        assert!(rows[3].to_string().contains("name: null"));
        // Windows removes no file still open.
        drop(reader);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
