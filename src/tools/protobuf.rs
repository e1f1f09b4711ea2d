//! A small protobuf encoder, for pprof and OpenTelemetry profiles: varints, fixed 64-bit
//! integers, length-delimited fields and packed repeated integers are all they need.

use std::collections::HashMap;

/// A protobuf message under construction.
#[derive(Default)]
pub(crate) struct Msg(pub(crate) Vec<u8>);

impl Msg {
    pub(crate) fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }

    /// A varint field (omitted when zero, as proto3 does).
    pub(crate) fn int(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.varint((field as u64) << 3);
            self.varint(v);
        }
        self
    }

    pub(crate) fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.varint((field as u64) << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    /// A varint field written even when zero (a `oneof` member must be there to be set).
    pub(crate) fn int_present(&mut self, field: u32, v: u64) -> &mut Self {
        self.varint((field as u64) << 3);
        self.varint(v);
        self
    }

    /// A fixed 64-bit field (omitted when zero).
    pub(crate) fn fixed64(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.varint((field as u64) << 3 | 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }

    /// A message field, written even when empty (a table's zero entry).
    pub(crate) fn message(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }

    pub(crate) fn packed(&mut self, field: u32, vs: &[u64]) -> &mut Self {
        let mut inner = Msg::default();
        for &v in vs {
            inner.varint(v);
        }
        self.bytes(field, &inner.0)
    }
}

/// Interned strings; index 0 is "".
pub(crate) struct Strings {
    pub(crate) table: Vec<String>,
    index: HashMap<String, u64>,
}

impl Strings {
    pub(crate) fn new() -> Self {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    pub(crate) fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}
