//! End-to-end tests and the guest programs they use
