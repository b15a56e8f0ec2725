//! Management endpoints. This version has the status API; the Admin API arrives later.

pub mod status;
