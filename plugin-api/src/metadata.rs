//! Plugin metadata (APISIX's `plugin_metadata/<name>`): one object per plugin name, shared by
//! every instance of that plugin.
//!
//! A kind that reads metadata declares its JSON schema ([`crate::Kind::plugin_metadata_schema`])
//! and checks a written object into a value of its own type
//! ([`crate::Kind::plugin_metadata`]). The Admin API runs that check on every write of
//! `plugin_metadata/<name>`. The snapshot builder keeps the checked values of all plugins in a
//! [`MetadataSet`] and passes it with the [`crate::BuildContext`]: an instance reads its
//! plugin's value when it is built ([`crate::BuildContext::metadata`]), never per request, and a
//! change of the metadata rebuilds the chains.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A plugin's checked metadata: whatever its kind made of the object written.
#[derive(Clone)]
pub struct Metadata(Arc<dyn Any + Send + Sync>);

impl Metadata {
    /// Wraps a kind's checked value.
    pub fn new<T: Any + Send + Sync>(value: T) -> Metadata {
        Metadata(Arc::new(value))
    }

    /// The value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metadata(..)")
    }
}

/// The checked metadata of every plugin that has some, by plugin name. Cheap to clone; a change
/// makes a new set, so two sets are the same when [`MetadataSet::same`] says so.
#[derive(Clone, Default, Debug)]
pub struct MetadataSet(Arc<BTreeMap<String, Metadata>>);

impl MetadataSet {
    /// The metadata of `plugin`, if it has some and it is a `T`.
    pub fn get<T: Any>(&self, plugin: &str) -> Option<&T> {
        self.0.get(plugin).and_then(Metadata::get)
    }

    /// Sets (`Some`) or removes (`None`) the metadata of `plugin`; returns whether the set
    /// changed (a removal of nothing does not).
    pub fn set(&mut self, plugin: &str, metadata: Option<Metadata>) -> bool {
        match metadata {
            Some(m) => {
                Arc::make_mut(&mut self.0).insert(plugin.to_owned(), m);
                true
            }
            None if self.0.contains_key(plugin) => {
                Arc::make_mut(&mut self.0).remove(plugin);
                true
            }
            None => false,
        }
    }

    /// Whether both are the same set (not merely equal contents).
    pub fn same(&self, other: &MetadataSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::{BuildContext, Kind, Phases, Plugin, PluginKind};
    use model::PluginCatalog;
    use serde_json::{json, Value};

    /// A plugin whose instances answer with the greeting of its metadata.
    struct Greets;

    /// Its checked metadata.
    struct Greeting(String);

    /// Its instance, built with a greeting or not: it logs when it has one (what the test
    /// looks at).
    struct Greeter(Option<String>);

    impl Plugin for Greeter {
        fn phases(&self) -> Phases {
            match &self.0 {
                Some(_) => Phases::LOG,
                None => Phases::NONE,
            }
        }
    }

    impl Kind for Greets {
        type Conf = Value;
        type Checked = ();
        const NAME: &'static str = "greets";
        const PRIORITY: i32 = 1;

        fn check(&self, _conf: Value) -> Result<(), String> {
            Ok(())
        }

        fn instance(&self, _: (), ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
            let greeting = ctx.metadata::<Greeting>(Self::NAME).map(|g| g.0.clone());
            Ok(Arc::new(Greeter(greeting)))
        }

        fn plugin_metadata_schema(&self) -> Option<Value> {
            Some(json!({"type": "object", "properties": {"greeting": {"type": "string"}}}))
        }

        fn plugin_metadata(&self, metadata: &Value) -> Result<Option<Metadata>, String> {
            match metadata.get("greeting").and_then(Value::as_str) {
                Some("") => Err("greeting must not be empty".to_owned()),
                Some(g) => Ok(Some(Metadata::new(Greeting(g.to_owned())))),
                None => Ok(None),
            }
        }
    }

    /// A plugin without metadata.
    struct Plain;

    impl Kind for Plain {
        type Conf = Value;
        type Checked = ();
        const NAME: &'static str = "plain";
        const PRIORITY: i32 = 2;

        fn check(&self, _conf: Value) -> Result<(), String> {
            Ok(())
        }

        fn instance(&self, _: (), _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
            Ok(Arc::new(Greeter(None)))
        }
    }

    #[test]
    fn kinds_check_metadata_and_instances_read_it() {
        let kind = Greets;
        assert!(PluginKind::metadata_schema(&kind).is_some());
        // The schema first (APISIX's wording), then the kind's own rules.
        let err = kind
            .check_metadata(&json!({"greeting": 1}))
            .expect_err("not a string");
        assert!(err.contains("greeting"), "{err}");
        assert_eq!(
            kind.check_metadata(&json!({"greeting": ""}))
                .err()
                .as_deref(),
            Some("greeting must not be empty")
        );
        let checked = kind
            .check_metadata(&json!({"greeting": "hi", "id": "greets"}))
            .expect("valid");
        let mut set = MetadataSet::default();
        set.set("greets", checked);
        let ctx = BuildContext {
            metadata: set,
            ..BuildContext::default()
        };
        assert_eq!(
            ctx.metadata::<Greeting>("greets").map(|g| g.0.as_str()),
            Some("hi")
        );
        let built = kind.build_with(&json!({}), &ctx).expect("valid");
        assert_eq!(built.phases(), Phases::LOG, "built with the greeting");
        let without = kind.build(&json!({})).expect("valid");
        assert_eq!(without.phases(), Phases::NONE, "no metadata, no greeting");
        // A kind without metadata accepts any object and keeps nothing.
        assert!(PluginKind::metadata_schema(&Plain).is_none());
        assert!(Plain
            .check_metadata(&json!({"x": 1}))
            .expect("any")
            .is_none());
        // The registry checks writes of `plugin_metadata/<name>` for the Admin API.
        let registry = Registry::new(vec![Arc::new(Greets), Arc::new(Plain)]);
        assert_eq!(
            registry.check_metadata("greets", &json!({"greeting": "yo"})),
            Ok(())
        );
        assert!(registry
            .check_metadata("greets", &json!({"greeting": 2}))
            .is_err());
        assert_eq!(registry.check_metadata("plain", &json!({"x": 1})), Ok(()));
        assert_eq!(
            registry.check_metadata("nope", &json!({})),
            Err("invalid plugin name".to_owned())
        );
    }

    #[test]
    fn sets_hold_typed_values_and_change_on_write() {
        let mut set = MetadataSet::default();
        let before = set.clone();
        assert!(!set.set("cors", None), "removing nothing changes nothing");
        assert!(set.same(&before));
        assert!(set.set("cors", Some(Metadata::new(7_u32))));
        assert!(!set.same(&before));
        assert_eq!(set.get::<u32>("cors"), Some(&7));
        assert_eq!(set.get::<String>("cors"), None, "another type");
        assert_eq!(set.get::<u32>("limit-count"), None);
        assert!(
            before.get::<u32>("cors").is_none(),
            "copies keep their own values"
        );
        assert!(set.set("cors", None));
        assert!(set.get::<u32>("cors").is_none());
    }
}
