//! How the vocabulary is stored (feature `sqlx`, enabled by `updraft-db` only): states, run
//! types and ids as their text, timestamps as integer microseconds, through sqlx's `Any`
//! driver. A stored text that names no known value fails to decode with an error naming the
//! value (never a panic); `updraft-db` reports it as a query error.

use sqlx::any::{Any, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::{DagId, RunId, RunState, RunType, TaskId, TaskState, Timestamp};

/// Stores a type as text: `as_str` to write, `FromStr` (or `new`) to read.
macro_rules! as_text {
    ($name:ty, |$s:ident| $read:expr, |$v:ident| $write:expr) => {
        impl Type<Any> for $name {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }

            fn compatible(ty: &AnyTypeInfo) -> bool {
                <str as Type<Any>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Any> for $name {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let $s = <&str as Decode<'r, Any>>::decode(value)?;
                $read
            }
        }

        impl<'q> Encode<'q, Any> for $name {
            fn encode_by_ref(&self, buf: &mut <Any as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
                let $v = self;
                <String as Encode<'q, Any>>::encode($write, buf)
            }
        }
    };
}

as_text!(TaskState, |s| Ok(s.parse::<TaskState>()?), |v| v.as_str().to_owned());
as_text!(RunState, |s| Ok(s.parse::<RunState>()?), |v| v.as_str().to_owned());
as_text!(RunType, |s| Ok(s.parse::<RunType>()?), |v| v.as_str().to_owned());
as_text!(DagId, |s| Ok(DagId::new(s)), |v| v.as_str().to_owned());
as_text!(TaskId, |s| Ok(TaskId::new(s)), |v| v.as_str().to_owned());
as_text!(RunId, |s| Ok(RunId::new(s)), |v| v.as_str().to_owned());

impl Type<Any> for Timestamp {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Timestamp {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Timestamp::from_micros(<i64 as Decode<'r, Any>>::decode(value)?))
    }
}

impl<'q> Encode<'q, Any> for Timestamp {
    fn encode_by_ref(&self, buf: &mut <Any as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Any>>::encode(self.as_micros(), buf)
    }
}
