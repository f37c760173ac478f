//! Error enums whose every variant is declared together with its stable code, so the code
//! table is written once, beside the message, and cannot miss a variant.

/// Declares an error enum and its code method: each variant is followed by `=> code`, where
/// the code is a string literal or an expression over the variant's own fields (for a
/// variant that carries the code of another component). The generated method is an
/// exhaustive `match`, so a new variant cannot be added without its code.
///
/// ```ignore
/// corebank_kernel::stable_codes! {
///     #[derive(Debug, thiserror::Error)]
///     pub enum PaymentsError {
///         #[error("no payment {payment_id}")]
///         UnknownPayment { payment_id: String } => "unknown_payment",
///         #[error("{message}")]
///         Deposits { code: String, message: String } => code.as_str(),
///     }
///     /// The stable, machine-readable code.
///     pub fn code(&self) -> &str;
/// }
/// ```
#[macro_export]
macro_rules! stable_codes {
    (
        $(#[$enum_meta:meta])*
        $enum_vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident $({ $($field:ident : $field_type:ty),* $(,)? })? => $code:expr
            ),* $(,)?
        }
        $(#[$method_meta:meta])*
        $method_vis:vis fn $method:ident(&self) -> $code_type:ty;
    ) => {
        $(#[$enum_meta])*
        $enum_vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant $({ $($field: $field_type),* })?,
            )*
        }

        impl $name {
            $(#[$method_meta])*
            $method_vis fn $method(&self) -> $code_type {
                match self {
                    $(
                        #[allow(
                            unused_variables,
                            reason = "a variant's code may read any of its fields, or none"
                        )]
                        $name::$variant { $($($field),*)? } => $code,
                    )*
                }
            }
        }
    };
}
