//! Retry schedule: when the next delivery attempt happens, with jitter.
