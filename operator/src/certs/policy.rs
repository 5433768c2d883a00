//! How long certificates live and how early they are replaced.

use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Lifetimes and margins of a group's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPolicy {
    pub leaf_lifetime: Duration,
    /// A leaf is reissued this long before it expires.
    pub leaf_renew_before: Duration,
    pub ca_lifetime: Duration,
    /// A CA rotation starts this long before the signing CA expires.
    pub ca_renew_before: Duration,
    /// How long a change to a Secret may take to reach every pod that mounts it (kubelet syncs
    /// mounted Secrets every ~1 minute plus its cache TTL). A new CA must have been trusted by
    /// every pod for this long before it signs, and the last leaf of an old CA must have been
    /// replaced for this long before the old CA leaves the bundle.
    pub propagation_delay: Duration,
}

impl Default for CertPolicy {
    fn default() -> Self {
        Self {
            leaf_lifetime: 30 * DAY,
            leaf_renew_before: 10 * DAY,
            ca_lifetime: 365 * DAY,
            ca_renew_before: 60 * DAY,
            propagation_delay: Duration::from_secs(5 * 60),
        }
    }
}

/// A policy the planner cannot keep without a connection failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertPolicyError {
    #[error(
        "leaf renew-before ({renew_before:?}) must be shorter than the leaf lifetime \
         ({lifetime:?}), or every leaf would be reissued at once: lower renew-before"
    )]
    LeafRenewTooLong {
        renew_before: Duration,
        lifetime: Duration,
    },
    #[error(
        "CA renew-before ({renew_before:?}) must be shorter than the CA lifetime \
         ({lifetime:?}), or a new CA would be due as soon as it is issued: lower renew-before"
    )]
    CaRenewTooLong {
        renew_before: Duration,
        lifetime: Duration,
    },
    #[error(
        "leaf renew-before ({renew_before:?}) must be more than twice the propagation delay \
         ({propagation_delay:?}) so that a renewed leaf reaches every pod while the old one is \
         still valid: raise renew-before or lower the delay"
    )]
    LeafRenewShorterThanPropagation {
        renew_before: Duration,
        propagation_delay: Duration,
    },
    #[error(
        "CA renew-before ({renew_before:?}) must be more than three propagation delays \
         ({propagation_delay:?}): a rotation publishes the new CA, waits one delay, reissues \
         every leaf, and the old CA must stay valid until those leaves reached every pod: \
         raise renew-before or lower the delay"
    )]
    CaRenewShorterThanPropagation {
        renew_before: Duration,
        propagation_delay: Duration,
    },
}

impl CertPolicy {
    /// Every reason this policy cannot work, all at once.
    pub fn validate(&self) -> Result<(), Vec<CertPolicyError>> {
        let mut errors = Vec::new();
        if self.leaf_renew_before >= self.leaf_lifetime {
            errors.push(CertPolicyError::LeafRenewTooLong {
                renew_before: self.leaf_renew_before,
                lifetime: self.leaf_lifetime,
            });
        }
        if self.ca_renew_before >= self.ca_lifetime {
            errors.push(CertPolicyError::CaRenewTooLong {
                renew_before: self.ca_renew_before,
                lifetime: self.ca_lifetime,
            });
        }
        if self.leaf_renew_before <= self.propagation_delay.saturating_mul(2) {
            errors.push(CertPolicyError::LeafRenewShorterThanPropagation {
                renew_before: self.leaf_renew_before,
                propagation_delay: self.propagation_delay,
            });
        }
        if self.ca_renew_before <= self.propagation_delay.saturating_mul(3) {
            errors.push(CertPolicyError::CaRenewShorterThanPropagation {
                renew_before: self.ca_renew_before,
                propagation_delay: self.propagation_delay,
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        assert_eq!(CertPolicy::default().validate(), Ok(()));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let policy = CertPolicy {
            leaf_lifetime: DAY,
            leaf_renew_before: 2 * DAY,
            ca_lifetime: DAY,
            ca_renew_before: DAY,
            propagation_delay: DAY,
        };
        let errors = policy.validate().expect_err("nothing here is workable");
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].to_string().contains("lower renew-before"));
    }

    #[test]
    fn propagation_bounds_are_strict() {
        let delay = Duration::from_secs(60);
        let mut policy = CertPolicy {
            leaf_renew_before: 2 * delay,
            ca_renew_before: 3 * delay,
            propagation_delay: delay,
            ..CertPolicy::default()
        };
        assert_eq!(policy.validate().map_err(|e| e.len()), Err(2));
        policy.leaf_renew_before += Duration::from_secs(1);
        policy.ca_renew_before += Duration::from_secs(1);
        assert_eq!(policy.validate(), Ok(()));
    }
}
