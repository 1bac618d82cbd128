//! One definition for each closed set of names (drop reasons, schedulers, forwarding
//! modes, flow states, protocols): `named_enum!` makes the enum, its wire names, the
//! list of all values, parsing and display from one list, as VPP's `foreach_lb_error`
//! does. Adding a reason or a mode is one line.
#![forbid(unsafe_code)]

/// `named_enum! { /// doc  pub enum Name { /// doc  Variant = "name", ... } }` defines a
/// `#[repr(u8)]` enum numbered from 0 in list order, with:
/// `COUNT`, `ALL`, `name()`, `from_u8()`, `FromStr` (error names the allowed values),
/// `Display`, and with the `serde` feature, (de)serialization by name.
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// How many values there are.
            pub const COUNT: usize = [$($text),+].len();
            /// Every value, in declaration (and numbering) order.
            pub const ALL: [$name; Self::COUNT] = [$($name::$variant),+];
            /// The name used in config, API, metrics and docs.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
            /// The value numbered `v` (its `as u8`), if any.
            #[inline(always)]
            pub const fn from_u8(v: u8) -> Option<$name> {
                // One comparison per value, which the compiler folds into a range check
                // (`v` is the value's own number): indexing `ALL` read a table per call.
                $( if v == $name::$variant as u8 {
                    return Some($name::$variant);
                } )+
                None
            }
            /// "a, b or c": the allowed names, for error messages.
            pub fn allowed() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => names.concat(),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl core::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> core::result::Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(format!("`{s}` must be {}", Self::allowed())),
                }
            }
        }

        $crate::serde_by_name!($name);
    };
}

/// (De)serializes a `Display + FromStr` type as its string form (with the `serde` feature).
#[cfg(feature = "serde")]
#[macro_export]
#[doc(hidden)]
macro_rules! serde_by_name {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> core::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> core::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[cfg(not(feature = "serde"))]
#[macro_export]
#[doc(hidden)]
macro_rules! serde_by_name {
    ($name:ident) => {};
}

#[cfg(test)]
mod tests {
    crate::named_enum! {
        enum Colour {
            Red = "red",
            Green = "green",
            Blue = "blue",
        }
    }

    #[test]
    fn one_list_gives_everything() {
        assert_eq!(Colour::COUNT, 3);
        assert_eq!(Colour::ALL, [Colour::Red, Colour::Green, Colour::Blue]);
        assert_eq!(Colour::Green.name(), "green");
        assert_eq!(Colour::from_u8(2), Some(Colour::Blue));
        assert_eq!(Colour::from_u8(3), None);
        assert_eq!("blue".parse::<Colour>(), Ok(Colour::Blue));
        assert_eq!(
            "pink".parse::<Colour>(),
            Err("`pink` must be red, green or blue".to_string())
        );
        assert_eq!(Colour::Red.to_string(), "red");
    }
}
