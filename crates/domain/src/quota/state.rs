//! How much of a quota is used, in three words: what the SIM list filters by
//! (`GET /sims?quota_state=`) and the fleet summary counts. The bounds are the alerts'
//! ([`super::THRESHOLDS`]: a threshold is crossed when `used * 100 >= threshold * total`), and
//! the migration's `quota_state(total, remaining)` SQL function says the same.

/// A quota's state by its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaState {
    /// Under 80 % used.
    Ok,
    /// At least 80 % used, something left.
    Warning,
    /// Nothing left (100 % used).
    Exhausted,
}

impl QuotaState {
    /// The state of a quota with these numbers (as the provider reports them).
    pub fn of(total: i64, remaining: i64) -> Self {
        if remaining <= 0 {
            return Self::Exhausted;
        }
        let used = i128::from(total) - i128::from(remaining);
        if used * 100 >= 80 * i128::from(total) {
            Self::Warning
        } else {
            Self::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_change_at_80_and_100_percent_used() {
        assert_eq!(QuotaState::of(1000, 1000), QuotaState::Ok);
        assert_eq!(QuotaState::of(1000, 201), QuotaState::Ok);
        assert_eq!(QuotaState::of(1000, 200), QuotaState::Warning);
        assert_eq!(QuotaState::of(1000, 1), QuotaState::Warning);
        assert_eq!(QuotaState::of(1000, 0), QuotaState::Exhausted);
        assert_eq!(QuotaState::of(0, 0), QuotaState::Exhausted);
        assert_eq!(QuotaState::of(7, 2), QuotaState::Ok, "71 % used");
        assert_eq!(QuotaState::of(i64::MAX, 1), QuotaState::Warning, "no overflow");
    }
}
