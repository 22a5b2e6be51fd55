//! Enums with a stable snake_case name per variant, as stored in D1, sent in JSON and logged.

/// Declares a fieldless enum whose variants each have a stable name, with `ALL` (every variant in
/// declaration order), `as_str` and `parse` (exact match; `None` for anything else):
///
/// ```
/// starling_core::named_enum! {
///     /// Where a tenant's analytics live.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq)]
///     pub enum Isolation {
///         /// The shared database.
///         Pool => "pool",
///         /// A database of its own.
///         Silo => "silo",
///     }
/// }
/// assert_eq!(Isolation::parse("silo"), Some(Isolation::Silo));
/// assert_eq!(Isolation::Pool.as_str(), "pool");
/// assert_eq!(Isolation::parse("Silo"), None);
/// assert_eq!(Isolation::ALL.len(), 2);
/// ```
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The variant with exactly this name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}
