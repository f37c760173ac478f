//! Every refusal of the payments module, each with a stable code.

corebank_kernel::stable_codes! {
    /// Why a payments request was refused or failed.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum PaymentsError {
        #[error("{field}: {message}")]
        InvalidArgument { field: String, message: String } => "invalid_argument",
        #[error("no payment {payment_id}")]
        UnknownPayment { payment_id: String } => "unknown_payment",
        #[error("request {request_id} was made before with a different {field}")]
        ExistsWithDifferent {
            request_id: String,
            field: String,
        } => "exists_with_different_content",
        #[error(
            "payment {payment_id} is past its pivot (the pacs.008 was sent): it can no longer \
             be cancelled"
        )]
        PastPivot { payment_id: String } => "past_pivot",
        #[error("payment {payment_id} cannot be cancelled now: {message}")]
        CannotCancel { payment_id: String, message: String } => "cannot_cancel",
        /// The payment is not where the request needs it (not held for review, or decided the
        /// other way already).
        #[error("payment {payment_id}: {message}")]
        InvalidPaymentState { payment_id: String, message: String } => "invalid_payment_state",
        /// A decision that needs two operators named one, or the same one twice.
        #[error("four eyes: {message}")]
        FourEyesRequired { message: String } => "four_eyes_required",
        /// No operator the gateway vouched for (signed `x-corebank-actor`).
        #[error("no verified operator: {message}")]
        ActorNotAsserted { message: String } => "actor_not_asserted",
        /// A refusal by the deposits module, with its code (`insufficient_funds`, …).
        #[error("{message}")]
        Deposits { code: String, message: String } => code.as_str(),
        /// A message from the rail whose signature did not hold, or a delivery taken before:
        /// nothing of it was taken.
        #[error("{refusal}")]
        RailDelivery {
            refusal: crate::rail_signature::Refusal,
        } => refusal.code(),
        #[error("unavailable: {message}")]
        Unavailable { message: String } => "unavailable",
        #[error("internal error: {message}")]
        Internal { message: String } => "internal",
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &str;
}

impl PaymentsError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> PaymentsError {
        PaymentsError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<corebank_db::DbError> for PaymentsError {
    fn from(error: corebank_db::DbError) -> PaymentsError {
        match error {
            corebank_db::DbError::Unavailable { message } => PaymentsError::Unavailable { message },
            other => PaymentsError::Internal {
                message: other.to_string(),
            },
        }
    }
}

impl From<corebank_outbox::OutboxError> for PaymentsError {
    fn from(error: corebank_outbox::OutboxError) -> PaymentsError {
        PaymentsError::Internal {
            message: error.to_string(),
        }
    }
}

impl From<corebank_saga::SagaError> for PaymentsError {
    fn from(error: corebank_saga::SagaError) -> PaymentsError {
        match error {
            corebank_saga::SagaError::PastPivot { id } => {
                PaymentsError::PastPivot { payment_id: id }
            }
            corebank_saga::SagaError::NotFound { id } => {
                PaymentsError::UnknownPayment { payment_id: id }
            }
            corebank_saga::SagaError::InvalidState { id, message, .. } => {
                PaymentsError::CannotCancel {
                    payment_id: id,
                    message,
                }
            }
            corebank_saga::SagaError::Unavailable { message } => {
                PaymentsError::Unavailable { message }
            }
            other => PaymentsError::Internal {
                message: other.to_string(),
            },
        }
    }
}
