//! Counts what bincode's decoder will charge against its size limit for a value, so
//! that the sender can refuse a message the receiver would refuse.
//!
//! Bincode 2 charges the in-memory size of what it decodes, not the bytes on the wire:
//! 1 byte for a `bool`, `u8` or `i8`, 2, 4, 8 or 16 for wider integers, 4 or 8 for
//! floats, the UTF-8 width of a `char`, 8 for every length (strings, byte buffers,
//! sequences, maps) plus the bytes of a string or byte buffer, 1 for an `Option` tag
//! and 4 for an enum variant index. Units and unit structs are free. The counter below
//! walks a value with serde and adds the same amounts.

use std::fmt;

use serde::ser::{self, Serialize};

/// Bincode's charge for a length prefix: it decodes every length as a `u64`.
const LENGTH: usize = 8;

/// Bincode's charge for an `Option` tag (one `u8`).
const OPTION_TAG: usize = 1;

/// Bincode's charge for an enum variant index (a `u32`).
const VARIANT: usize = 4;

/// The amount bincode's decoder charges against its limit when decoding `value`.
pub(super) fn decoded_size<T: Serialize + ?Sized>(value: &T) -> Result<usize, CountError> {
    let mut counter = Counter(0);
    value.serialize(&mut counter)?;
    Ok(counter.0)
}

/// A `Serialize` implementation failed while being counted.
#[derive(Debug)]
pub(super) struct CountError(String);

impl fmt::Display for CountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CountError {}

impl ser::Error for CountError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CountError(msg.to_string())
    }
}

/// Running total of the charges; saturates so that no value can overflow it.
#[derive(Debug)]
struct Counter(usize);

impl Counter {
    fn add(&mut self, n: usize) -> Result<(), CountError> {
        self.0 = self.0.saturating_add(n);
        Ok(())
    }
}

/// Serializer methods for fixed-size primitives, each charging its in-memory size.
macro_rules! charge_primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), CountError> {
            self.add(std::mem::size_of::<$ty>())
        })*
    };
}

impl ser::Serializer for &mut Counter {
    type Ok = ();
    type Error = CountError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    charge_primitives! {
        serialize_bool: bool,
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
        serialize_f32: f32, serialize_f64: f64,
    }

    fn serialize_char(self, v: char) -> Result<(), CountError> {
        self.add(v.len_utf8())
    }

    fn serialize_str(self, v: &str) -> Result<(), CountError> {
        self.add(LENGTH.saturating_add(v.len()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), CountError> {
        self.add(LENGTH.saturating_add(v.len()))
    }

    fn serialize_none(self) -> Result<(), CountError> {
        self.add(OPTION_TAG)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CountError> {
        self.add(OPTION_TAG)?;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), CountError> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CountError> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), CountError> {
        self.add(VARIANT)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), CountError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), CountError> {
        self.add(VARIANT)?;
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, CountError> {
        self.add(LENGTH)?;
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, CountError> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, CountError> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, CountError> {
        self.add(VARIANT)?;
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, CountError> {
        self.add(LENGTH)?;
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, CountError> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, CountError> {
        self.add(VARIANT)?;
        Ok(self)
    }

    // Bincode's serializer is not human readable either; types that serialize
    // differently for humans must be counted in the form bincode sees.
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Compound serializers: each element or field is counted like a value of its own.
macro_rules! count_elements {
    ($($tr:ident :: $method:ident $(($key:ident))?),* $(,)?) => {
        $(impl ser::$tr for &mut Counter {
            type Ok = ();
            type Error = CountError;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), CountError> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), CountError> {
                Ok(())
            }
        })*
    };
}

count_elements! {
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(key),
    SerializeStructVariant::serialize_field(key),
}

impl ser::SerializeMap for &mut Counter {
    type Ok = ();
    type Error = CountError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CountError> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CountError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), CountError> {
        Ok(())
    }
}
