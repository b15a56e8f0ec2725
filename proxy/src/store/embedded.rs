//! The embedded store: redb in a data directory (being written).
