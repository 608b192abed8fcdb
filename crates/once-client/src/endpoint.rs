//! The names calls go by in errors, logs and the observer: method and documented path.

pub const TOKEN: &str = "POST /oauth/token";
pub const SIMS: &str = "GET /v1/sims";
pub const SIM: &str = "GET /v1/sims/{iccid}";
pub const UPDATE_SIM: &str = "PUT /v1/sims/{iccid}";
pub const STATUS: &str = "GET /v1/sims/{iccid}/status";
pub const USAGE: &str = "GET /v1/sims/{iccid}/usage";
pub const DATA_QUOTA: &str = "GET /v1/sims/{iccid}/quota/data";
pub const SMS_QUOTA: &str = "GET /v1/sims/{iccid}/quota/sms";
pub const TOP_UP: &str = "POST /v1/sims/{iccid}/topup";
pub const SEND_SMS: &str = "POST /v1/sims/{iccid}/sms";
pub const SMS_LIST: &str = "GET /v1/sims/{iccid}/sms";
pub const SMS: &str = "GET /v1/sims/{iccid}/sms/{id}";
pub const EVENTS: &str = "GET /v1/sims/{iccid}/events";
pub const RESET: &str = "POST /v1/sims/{iccid}/reset";
pub const AUTO_TOP_UP: &str = "POST /v1/sims/autoTopup";
pub const LIMITS: &str = "GET /v1/sims/limits";
pub const SET_LIMITS: &str = "POST /v1/sims/limits";
pub const SELECTABLE_LIMITS: &str = "GET /v1/sims/{service}/limits";
