//! The etcd store (being written).
