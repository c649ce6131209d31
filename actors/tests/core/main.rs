//! Tests of the pure loan core through its public API (one binary keeps link time down).

mod disclosure;
mod lifecycle;
mod payments;
mod properties;
mod purity;
mod schedules;
mod support;
