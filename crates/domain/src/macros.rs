//! Trait impls written from one table per type, so that a name is listed once and a variant
//! cannot be forgotten (the generated matches are exhaustive).

/// `EVENT_TYPES` and [`DomainEvent`](crate::DomainEvent) for an event enum whose type names are
/// its variant names: `impl_domain_event!(SimEvent [SimRegistered, SimLabelChanged, …]);`.
macro_rules! impl_domain_event {
    ($event:ident [$($variant:ident),+ $(,)?]) => {
        impl $event {
            /// Every event type this aggregate writes, e.g. for schema docs and subscriptions.
            pub const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];
        }

        impl $crate::DomainEvent for $event {
            fn event_type(&self) -> &'static str {
                match self {
                    $($event::$variant { .. } => stringify!($variant),)+
                }
            }
        }
    };
}

/// [`DomainError`](crate::DomainError) from one row per variant: the stable code and the
/// [`ErrorKind`](crate::ErrorKind) an API answers with, e.g.
/// `impl_domain_error!(SimError { NotFound => "SIM_NOT_FOUND", NotFound; … });`.
macro_rules! impl_domain_error {
    ($error:ident { $($variant:ident => $code:literal, $kind:ident;)+ }) => {
        impl $crate::DomainError for $error {
            fn code(&self) -> &'static str {
                match self {
                    $($error::$variant { .. } => $code,)+
                }
            }

            fn kind(&self) -> $crate::ErrorKind {
                match self {
                    $($error::$variant { .. } => $crate::ErrorKind::$kind,)+
                }
            }
        }
    };
}
