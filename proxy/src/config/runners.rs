//! The `ext-plugin` section of config.yaml: which plugin runners to start (see
//! [`crate::runners`], which starts them).

use runner_ext::ExtPluginConfig;
use runner_python::PythonRunnerConfig;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;

/// The `ext-plugin` section: out-of-process runners (APISIX's forms and our named runners) and
/// in-process Python runners (named runners with `in_process: true`), in config order.
#[derive(Debug, Clone, Default)]
pub struct RunnersConfig {
    /// The out-of-process runners, if any.
    pub ext: Option<ExtPluginConfig>,
    /// The in-process runners, by name.
    pub in_process: Vec<(String, PythonRunnerConfig)>,
    /// Every runner's name in config order (the first is the default).
    pub order: Vec<String>,
}

impl<'de> Deserialize<'de> for RunnersConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut section = Value::deserialize(d)?;
        let mut config = RunnersConfig::default();
        if let Some(Value::Mapping(runners)) = section.get_mut("runners") {
            let names: Vec<Value> = runners.keys().cloned().collect();
            for key in names {
                let name = key
                    .as_str()
                    .ok_or_else(|| D::Error::custom("ext-plugin.runners: names must be strings"))?
                    .to_owned();
                let in_process = runners
                    .get(&key)
                    .and_then(|r| r.get("in_process"))
                    .is_some_and(|v| v.as_bool() == Some(true));
                if in_process {
                    let entry = runners.remove(&key).unwrap_or_default();
                    let parsed = PythonRunnerConfig::deserialize(entry)
                        .map_err(|e| D::Error::custom(format!("ext-plugin.runners.{name}: {e}")))?;
                    config.in_process.push((name.clone(), parsed));
                }
                config.order.push(name);
            }
            if runners.is_empty() {
                if let Value::Mapping(top) = &mut section {
                    top.remove("runners");
                }
            }
        }
        let has_ext = ["cmd", "path_for_test", "runners"]
            .iter()
            .any(|k| section.get(k).is_some());
        if has_ext {
            let ext = ExtPluginConfig::deserialize(section).map_err(D::Error::custom)?;
            if config.order.is_empty() {
                config.order.push(runner_ext::DEFAULT_RUNNER.to_owned());
            }
            config.ext = Some(ext);
        }
        Ok(config)
    }
}

impl RunnersConfig {
    /// Checks what serde cannot: every problem, one per line.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Err(e)) = self.ext.as_ref().map(ExtPluginConfig::runner_specs) {
            problems.push(e.to_string());
        }
        for (name, config) in &self.in_process {
            if let Err(e) = config.validate(&format!("ext-plugin.runners.{name}")) {
                problems.push(e.to_string());
            }
        }
        if self.order.is_empty() {
            problems.push("no runner configured (cmd, path_for_test or runners)".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> RunnersConfig {
        serde_yaml_ng::from_str(yaml).expect("valid")
    }

    #[test]
    fn both_kinds_keep_their_order() {
        let c = parse(
            "read_timeout: 3\nrunners:\n  py: {in_process: true, paths: [/p], modules: [m]}\n  go: {cmd: [/go]}\n",
        );
        assert_eq!(c.order, ["py", "go"]);
        assert_eq!(c.in_process.len(), 1);
        assert_eq!(c.in_process[0].1.modules, ["m"]);
        let ext = c.ext.expect("ext");
        assert_eq!(ext.read_timeout, Some(3.0));
        assert_eq!(ext.runner_specs().expect("specs").len(), 1);
        assert!(parse("cmd: [/go]\n").problems().is_empty());
    }

    #[test]
    fn only_in_process() {
        let c = parse("runners:\n  py: {in_process: true}\n");
        assert!(c.ext.is_none());
        assert_eq!(c.order, ["py"]);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn errors_name_the_runner() {
        let err = serde_yaml_ng::from_str::<RunnersConfig>(
            "runners:\n  py: {in_process: true, threads: many}\n",
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("ext-plugin.runners.py"), "{err}");
        let c = parse("runners:\n  py: {in_process: true, threads: 0}\n");
        assert!(
            c.problems().iter().any(|p| p.contains("threads")),
            "{:?}",
            c.problems()
        );
        assert!(serde_yaml_ng::from_str::<RunnersConfig>("cmd: [/go]\nbogus: 1\n").is_err());
    }
}
