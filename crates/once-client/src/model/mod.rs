//! What the provider's answers mean, in the client's types. The provider's JSON is read
//! leniently (numbers as strings, `null` for missing) but never guessed at: a body that does
//! not fit is a decode error.

mod connectivity;
mod event;
mod limits;
mod quota;
mod sim;
mod sms;
mod usage;

pub use connectivity::{
    ConnectionState, ConnectivityStatus, Country, Location, Operator, OperatorCountry, PdpContext, RatType,
};
pub(crate) use event::EventAnswer;
pub use event::{SimEvent, SimEventPage};
pub use limits::{Limit, LimitService, Limits, SetLimits};
pub(crate) use quota::QuotaAnswer;
pub use quota::{Quota, QuotaKind};
pub use sim::{QuotaStatus, Sim, SimPage, SimState, SimUpdate};
pub use sms::{Sms, SmsReceipt, SmsStatus, SmsSubmission, SmsType, TopUpOrder};
pub(crate) use usage::UsageAnswer;
pub use usage::{DailyUsage, DataUsage, SmsUsage};
