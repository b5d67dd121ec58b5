//! A forwarding serde `Deserializer` that hides the lengths sequences and maps claim.
//!
//! Bincode hands serde's visitors a `SeqAccess` or `MapAccess` whose `size_hint` is the
//! length read from the wire, and serde's `Vec`, `HashMap` and similar visitors reserve
//! room for up to 1 MiB from it before a single element is decoded, so before bincode's
//! decode limit can refuse anything. A hostile frame of a few bytes claiming 2^40
//! elements would reserve that 1 MiB whatever the maximum frame size.
//!
//! The wrapper below forwards every call unchanged except in two ways. First, every
//! sequence and map access it hands to a visitor, at any depth, reports no size hint.
//! Serde's visitors then start empty and grow as elements are actually decoded, each
//! of which bincode has already charged against its limit. The element type is unknown
//! when the hint is read (serde multiplies the hint by its size afterwards), so no
//! non-zero hint would bound the reservation for every element type; none is the one
//! that does.
//!
//! Second, the wrapper counts nesting. Serde decodes a nested value by recursing, so a
//! recursive message type would let a frame nest as deep as its size allows and
//! overflow the stack, aborting the process. Every wrapper carries the depth of the
//! value it decodes: the outermost value at 0, each element, key, value, `Some`
//! content, newtype content and enum variant content one deeper than its container (a
//! variant's tag is part of its enum and a `Box` is transparent to serde, so neither is
//! a level). A value deeper than [`MAX_NESTING`] is refused with an error instead of
//! being descended into. The depth is a `u32` copied by value, so the count costs one
//! comparison per value.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};

/// Deepest a value may be nested, the outermost decoded value being at depth 0.
///
/// Far more than any sane message needs, and shallow enough that the recursion it
/// allows takes well under 256 KiB of stack even unoptimized (the nesting tests decode
/// on a thread of that size), against the 2 MiB of a tokio worker thread.
pub(crate) const MAX_NESTING: u32 = 128;

/// A deserializer whose sequences and maps, at any depth, report no size hint, for a
/// value at the given depth.
pub(super) struct Capped<D>(pub(super) D, pub(super) u32);

/// A visitor that wraps whatever it is handed so that nested values stay capped; the
/// depth is that of the value it visits.
struct CappedVisitor<V>(V, u32);

/// A seed whose deserializer is wrapped, for elements, keys, values and variants, with
/// the depth of the value it decodes.
pub(super) struct CappedSeed<S>(pub(super) S, pub(super) u32);

/// A sequence access without a size hint; the depth is that of the sequence.
struct CappedSeq<A>(A, u32);

/// A map access without a size hint; the depth is that of the map.
struct CappedMap<A>(A, u32);

/// An enum access whose variant contents stay capped; the depth is that of the enum.
struct CappedEnum<A>(A, u32);

/// A variant access whose contents stay capped; the depth is that of the enum.
struct CappedVariant<A>(A, u32);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CappedSeed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Capped(deserializer, self.1))
    }
}

/// Refuses a value nested deeper than [`MAX_NESTING`], before anything recurses into it.
#[inline]
fn check_depth<E: de::Error>(depth: u32) -> Result<(), E> {
    if depth > MAX_NESTING {
        return Err(E::custom(format_args!(
            "nesting deeper than {MAX_NESTING} levels"
        )));
    }
    Ok(())
}

/// `Deserializer` methods that take only a visitor.
macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            check_depth(self.1)?;
            self.0.$method(CappedVisitor(visitor, self.1))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Capped<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        check_depth(self.1)?;
        self.0
            .deserialize_unit_struct(name, CappedVisitor(visitor, self.1))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        check_depth(self.1)?;
        self.0
            .deserialize_newtype_struct(name, CappedVisitor(visitor, self.1))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        check_depth(self.1)?;
        self.0
            .deserialize_tuple(len, CappedVisitor(visitor, self.1))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        check_depth(self.1)?;
        self.0
            .deserialize_tuple_struct(name, len, CappedVisitor(visitor, self.1))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        check_depth(self.1)?;
        self.0
            .deserialize_struct(name, fields, CappedVisitor(visitor, self.1))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        check_depth(self.1)?;
        self.0
            .deserialize_enum(name, variants, CappedVisitor(visitor, self.1))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// `Visitor` methods for values that contain nothing to cap.
macro_rules! forward_visit {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        #[inline]
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.0.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CappedVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    forward_visit! {
        visit_bool: bool,
        visit_i8: i8, visit_i16: i16, visit_i32: i32, visit_i64: i64, visit_i128: i128,
        visit_u8: u8, visit_u16: u16, visit_u32: u32, visit_u64: u64, visit_u128: u128,
        visit_f32: f32, visit_f64: f64, visit_char: char,
        visit_str: &str, visit_borrowed_str: &'de str, visit_string: String,
        visit_bytes: &[u8], visit_borrowed_bytes: &'de [u8], visit_byte_buf: Vec<u8>,
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Capped(deserializer, self.1 + 1))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.0
            .visit_newtype_struct(Capped(deserializer, self.1 + 1))
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(CappedSeq(seq, self.1))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(CappedMap(map, self.1))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(CappedEnum(data, self.1))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for CappedSeq<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(CappedSeed(seed, self.1 + 1))
    }

    /// None, whatever the length claimed: see the module docs.
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        None
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CappedMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(CappedSeed(seed, self.1 + 1))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(CappedSeed(seed, self.1 + 1))
    }

    /// None, whatever the length claimed: see the module docs.
    fn size_hint(&self) -> Option<usize> {
        None
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for CappedEnum<A> {
    type Error = A::Error;
    type Variant = CappedVariant<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        // The tag is part of the enum rather than a value inside it, so it is at the
        // enum's depth: the innermost enum of a maximal chain must be able to read it.
        let (tag, variant) = self.0.variant_seed(CappedSeed(seed, self.1))?;
        Ok((tag, CappedVariant(variant, self.1)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for CappedVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(CappedSeed(seed, self.1 + 1))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        // The visitor sees the variant as a sequence at the enum's depth, whose fields
        // are then one deeper, like a newtype variant's contents.
        self.0.tuple_variant(len, CappedVisitor(visitor, self.1))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0
            .struct_variant(fields, CappedVisitor(visitor, self.1))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::marker::PhantomData;

    use serde::{Deserialize, Serialize};

    use super::*;

    fn round_trip<T>(value: &T) -> T
    where
        T: Serialize + for<'de> Deserialize<'de>,
    {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(value, config).expect("encodes");
        let seed = CappedSeed(PhantomData::<T>, 0);
        let (back, used) =
            bincode::serde::seed_decode_from_slice(seed, &bytes, config).expect("decodes");
        assert_eq!(used, bytes.len());
        back
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper(Vec<u16>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        One(Vec<i8>),
        Pair(u128, i128),
        Named {
            map: BTreeMap<u8, Vec<u8>>,
            unit: Unit,
        },
    }

    /// Every kind of value goes through the wrapper unchanged.
    #[test]
    fn values_of_every_shape_round_trip_through_the_wrapper() {
        let mut hash = HashMap::new();
        hash.insert("k".to_owned(), vec![Some(1.5f64), None]);
        let value = (
            hash,
            vec![
                Shape::Empty,
                Shape::One(vec![-1, 2]),
                Shape::Pair(u128::MAX, i128::MIN),
                Shape::Named {
                    map: [(1, vec![9])].into_iter().collect(),
                    unit: Unit,
                },
            ],
            Wrapper(vec![7, 8]),
            ('é', true, 3.25f32, -7i64, ()),
            (String::from("text"), [1u32, 2, 3]),
        );
        assert_eq!(round_trip(&value), value);
    }
}
