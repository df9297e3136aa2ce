//! Canonical JSON, streamed: the exact bytes `serde_json::to_vec(&serde_json::to_value(x)?)` gives
//! with serde_json's sorted maps (object keys sorted bytewise at every level, no whitespace, numbers
//! and strings formatted by serde_json), without building the intermediate `Value` tree. Used for the
//! policy version hash. Shapes this writer does not handle (tuple or struct enum variants, non-string
//! map keys) return an error so the caller can fall back to the `Value` path.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Serialize};

/// Why streaming failed; the caller falls back to `serde_json::to_value`.
#[derive(Debug)]
pub(crate) struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(format!(
        "{what} is not supported by the canonical writer"
    )))
}

/// Appends the canonical JSON of `value` to `out`.
pub(crate) fn write<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    value.serialize(Writer { out })
}

fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), Unsupported> {
    serde_json::to_writer(&mut *out, v).map_err(|e| Unsupported(e.to_string()))
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// An object being written: entries are streamed to the end of `out` and then re-emitted sorted.
pub(crate) struct Object<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    entries: Vec<(Cow<'static, str>, usize, usize)>,
    pending_key: Option<String>,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            entries: Vec::new(),
            pending_key: None,
        }
    }

    fn value<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Unsupported> {
        let from = self.out.len();
        value.serialize(Writer {
            out: &mut *self.out,
        })?;
        self.entries.push((key, from, self.out.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), Unsupported> {
        // A later duplicate key wins, as in a `Value` map: stable sort, keep the last of each run.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let body_end = self.out.len();
        self.out.push(b'{');
        let mut first = true;
        for (i, (key, from, to)) in self.entries.iter().enumerate() {
            if self.entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            json(self.out, key.as_ref())?;
            self.out.push(b':');
            self.out.extend_from_within(*from..*to);
        }
        self.out.push(b'}');
        self.out.drain(self.start..body_end);
        Ok(())
    }
}

pub(crate) struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        match serde_json::to_value(key) {
            Ok(serde_json::Value::String(s)) => {
                self.pending_key = Some(s);
                Ok(())
            }
            _ => unsupported("a non-string map key"),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        match self.pending_key.take() {
            Some(key) => self.value(Cow::Owned(key), value),
            None => unsupported("a map value without key"),
        }
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.value(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish()
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        // Route through `Value` so out-of-range handling matches the `Value` path exactly.
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        json(self.out, v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        json(self.out, v)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        json(self.out, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        let mut object = Object::new(self.out);
        object.value(Cow::Borrowed(variant), value)?;
        object.finish()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, Unsupported> {
        self.out.push(b'[');
        Ok(Seq {
            out: self.out,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        unsupported("a tuple enum variant")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, Unsupported> {
        Ok(Object::new(self.out))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object<'a>, Unsupported> {
        Ok(Object::new(self.out))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        unsupported("a struct enum variant")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn via_value<T: Serialize>(v: &T) -> String {
        String::from_utf8(serde_json::to_vec(&serde_json::to_value(v).unwrap()).unwrap()).unwrap()
    }

    fn streamed<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        write(v, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[derive(serde::Serialize)]
    struct Sample {
        zeta: u8,
        alpha: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        mid: Vec<serde_json::Value>,
        float: f64,
        nan: f64,
        neg: i64,
        #[serde(rename = "Upper")]
        upper: bool,
    }

    #[test]
    fn streamed_bytes_equal_the_value_path() {
        let sample = Sample {
            zeta: 1,
            alpha: None,
            skipped: None,
            mid: vec![
                json!({"b": 1, "a": [1.5, "x\"\\\n", null], "é": {"z": {}, "y": []}}),
                json!(1e300),
                json!(-0.0),
                json!(u64::MAX),
            ],
            float: 0.1 + 0.2,
            nan: f64::NAN,
            neg: -7,
            upper: true,
        };
        assert_eq!(streamed(&sample), via_value(&sample));
    }
}
