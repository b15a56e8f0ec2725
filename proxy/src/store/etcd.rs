//! The etcd store (being written on another branch).
use super::StoreError;
use crate::config::EtcdSection;
/// Placeholder.
pub struct EtcdStore;
impl EtcdStore {
    /// Placeholder.
    pub async fn connect(_: &EtcdSection) -> Result<super::embedded::EmbeddedStore, StoreError> {
        Err(StoreError::Unavailable("etcd is not supported yet".into()))
    }
}
