//! The DMARC decision: what a verdict means for the message under our `[auth]` settings.
//! Pure functions, no I/O.

use crate::config::auth::{Auth, DnsErrors, Mode, Quarantine};

/// The DMARC outcome of one message, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dmarc {
    Pass,
    /// Neither SPF nor DKIM passed aligned with the From: domain.
    Fail {
        domain: String,
        policy: Policy,
    },
    /// A DNS error left the verdict open (or the checks ran out of time).
    TempError,
    /// No DMARC record, or one that cannot be used.
    None,
}

/// The policy the domain asks for (after `sp`/`np` and `t=y` were applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deliver,
    /// Deliver marked as quarantined; `hold` keeps it in the queue for an operator.
    Quarantine {
        domain: String,
        hold: bool,
    },
    Reject {
        domain: String,
    },
    Defer,
}

pub fn decide(dmarc: &Dmarc, settings: &Auth) -> Action {
    if settings.mode == Mode::Monitor {
        return Action::Deliver;
    }
    match dmarc {
        Dmarc::Pass | Dmarc::None => Action::Deliver,
        Dmarc::TempError => match settings.dns_errors {
            DnsErrors::Defer => Action::Defer,
            DnsErrors::Accept => Action::Deliver,
        },
        Dmarc::Fail { domain, policy } => match policy {
            Policy::None => Action::Deliver,
            Policy::Reject => Action::Reject {
                domain: domain.clone(),
            },
            Policy::Quarantine => Action::Quarantine {
                domain: domain.clone(),
                hold: settings.quarantine == Quarantine::Hold,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(policy: Policy) -> Dmarc {
        Dmarc::Fail {
            domain: "example.org".into(),
            policy,
        }
    }

    #[test]
    fn enforce_mode_follows_the_published_policy() {
        let settings = Auth::default();
        assert_eq!(decide(&Dmarc::Pass, &settings), Action::Deliver);
        assert_eq!(decide(&Dmarc::None, &settings), Action::Deliver);
        assert_eq!(decide(&fail(Policy::None), &settings), Action::Deliver);
        assert_eq!(
            decide(&fail(Policy::Reject), &settings),
            Action::Reject {
                domain: "example.org".into()
            }
        );
        assert_eq!(
            decide(&fail(Policy::Quarantine), &settings),
            Action::Quarantine {
                domain: "example.org".into(),
                hold: false
            }
        );
        assert_eq!(decide(&Dmarc::TempError, &settings), Action::Defer);
    }

    #[test]
    fn hold_and_accept_options_change_only_their_case() {
        let settings = Auth {
            quarantine: Quarantine::Hold,
            dns_errors: DnsErrors::Accept,
            ..Auth::default()
        };
        assert_eq!(
            decide(&fail(Policy::Quarantine), &settings),
            Action::Quarantine {
                domain: "example.org".into(),
                hold: true
            }
        );
        assert_eq!(decide(&Dmarc::TempError, &settings), Action::Deliver);
        assert!(matches!(
            decide(&fail(Policy::Reject), &settings),
            Action::Reject { .. }
        ));
    }

    #[test]
    fn monitor_mode_acts_on_nothing() {
        let settings = Auth {
            mode: Mode::Monitor,
            quarantine: Quarantine::Hold,
            ..Auth::default()
        };
        for dmarc in [
            fail(Policy::Reject),
            fail(Policy::Quarantine),
            Dmarc::TempError,
        ] {
            assert_eq!(decide(&dmarc, &settings), Action::Deliver);
        }
    }
}
