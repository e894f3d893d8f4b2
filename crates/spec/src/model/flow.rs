//! The flow file: what triggers a flow, where its records come from, how they are mapped and
//! what is done with them. These types *are* the format: their `///` comments become the JSON
//! Schema descriptions (`rivulet schema`) and the reference docs.
//!
//! Each connector's own settings live in [`crate::connectors`]; the enums here join them, one
//! key per connector (`trigger: {hubspot: …}`, `actions: [{file: …}]`), so every place that
//! handles a trigger, source or action matches every connector.

use super::Duration;
use crate::connectors::{file, http, hubspot};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The field specs of a mapping, keyed by target field name.
pub type MappingSpec = IndexMap<String, rivulet_mapping::FieldSpec>;

/// A flow: a trigger (or a schedule and a source), a mapping, and actions run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Rivulet flow")]
pub struct Flow {
    /// Unique name of the flow across the flows directory: letters, digits, `-`, `_` and `.`.
    /// Run history, cursors and failed records are kept under this name, so renaming a flow
    /// starts it afresh.
    pub name: String,
    /// What the flow is for, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Start the flow when HubSpot records appear or change (polled). Exclusive with
    /// `schedule` and `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// When to read the `source`: a cron expression or an interval. Without a schedule block a
    /// flow with a source runs every 15 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Where a scheduled flow reads its records from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Only records for which this condition holds go through the flow; the others are
    /// `filtered`: counted apart, never sent, never a failure. A JSONPath predicate
    /// (`$.properties.email`, `$[?(@.properties.lifecyclestage == 'customer')]`: holds when it
    /// selects a value other than `null` or `false`) or a template rendering `true` or `false`
    /// (`{{eq record.properties.lifecyclestage "customer"}}`), over the source record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Target fields, each a template string (`"{{record.email}}"`) or a detailed spec with a
    /// `path`, `template` or `value`, a `type` and options.
    #[serde(default)]
    pub mapping: MappingSpec,
    /// `changed` (the default): a HubSpot update or upsert whose mapped properties are as
    /// last written to that record costs no call (counted `unchanged`), and a changed one
    /// sends only the properties that changed. `always`: write every record every time (when
    /// HubSpot's records are also edited elsewhere and must be set back).
    #[serde(default, skip_serializing_if = "WriteMode::is_default")]
    pub write: WriteMode,
    /// What to do with each mapped record, in order.
    #[schemars(length(min = 1))]
    pub actions: Vec<Action>,
}

/// When a flow's writes are made (see `Flow::write`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Only what changed since it was last written.
    #[default]
    Changed,
    /// Every record, every time.
    Always,
}

impl WriteMode {
    /// Whether this is the default (left out when a flow is written back).
    pub fn is_default(&self) -> bool {
        *self == WriteMode::Changed
    }
}

/// A trigger: poll a system for new or changed records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = crate::schema::one_key_object)]
pub enum Trigger {
    /// Poll HubSpot for new (or new and updated) companies or contacts.
    Hubspot(hubspot::HubSpotTrigger),
}

/// When a scheduled flow runs: exactly one of `cron` or `every`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A cron expression in standard 5-field form (`*/15 * * * *`), or 6 fields with seconds
    /// first. Evaluated in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed interval such as `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
    /// What to do about runs missed while Rivulet was down: `latest` runs once (the default),
    /// `all` runs each missed tick, `none` waits for the next tick.
    #[serde(default)]
    pub catch_up: CatchUp,
}

/// The misfire policy after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run once for all missed ticks.
    #[default]
    Latest,
    /// Run once per missed tick.
    All,
    /// Skip missed ticks.
    None,
}

/// Where a scheduled flow reads records: exactly one of `file`, `http` or `hubspot`.
// Read once per flow file; boxing the larger settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = crate::schema::one_key_object)]
pub enum Source {
    /// Read CSV, JSON Lines or JSON files.
    File(file::FileSource),
    /// Read records from a JSON HTTP API.
    Http(http::HttpSource),
    /// Read HubSpot records.
    Hubspot(hubspot::HubSpotSource),
}

/// One action: exactly one of `hubspot`, `file` or `http`.
// Read once per flow file; boxing the larger settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = crate::schema::one_key_object)]
pub enum Action {
    /// Create, update or upsert HubSpot records.
    Hubspot(hubspot::HubSpotAction),
    /// Append records to a file.
    File(file::FileSink),
    /// Send records to an HTTP API.
    Http(http::HttpSink),
}

/// Another action of the same flow: its `name`, or its 0-based position in `actions` (`0` is
/// the first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ActionRef {
    /// The action's 0-based position in `actions`.
    Index(usize),
    /// The action's `name`.
    Name(String),
}

impl std::fmt::Display for ActionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActionRef::Index(i) => write!(f, "{i}"),
            ActionRef::Name(n) => f.write_str(n),
        }
    }
}

/// How long a flow waits before trying the same records again while an action's destination
/// is unreachable or overloaded: `initial` at first, then twice as long each time (with
/// jitter), at most `max`. Nothing past those records is recorded meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// The first wait.
    #[serde(default = "default_backoff_initial")]
    pub initial: Duration,
    /// The longest wait.
    #[serde(default = "default_backoff_max")]
    pub max: Duration,
}

fn default_backoff_initial() -> Duration {
    Duration::from_secs(1)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}

impl Backoff {
    /// Whether these are the defaults (left out when a flow is written back).
    pub fn is_default(&self) -> bool {
        *self == Backoff::default()
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
        }
    }
}

impl Source {
    /// The connector's key (`file`, `http`, `hubspot`).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::File(_) => "file",
            Source::Http(_) => "http",
            Source::Hubspot(_) => "hubspot",
        }
    }

    /// The connection it reads through, if any.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Source::File(_) => None,
            Source::Http(s) => Some(&s.connection),
            Source::Hubspot(s) => Some(&s.connection),
        }
    }
}

impl Action {
    /// The connector's key (`hubspot`, `file`, `http`).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Hubspot(_) => "hubspot",
            Action::File(_) => "file",
            Action::Http(_) => "http",
        }
    }

    /// The connection it writes through, if any.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Action::Hubspot(a) => Some(&a.connection),
            Action::File(_) => None,
            Action::Http(a) => Some(&a.connection),
        }
    }

    /// How the flow waits while this action's destination is down.
    pub fn backoff(&self) -> Backoff {
        match self {
            Action::Hubspot(a) => a.backoff,
            Action::File(a) => a.backoff,
            Action::Http(a) => a.backoff,
        }
    }

    /// Its `when:` condition, if it has one.
    pub fn when(&self) -> Option<&str> {
        match self {
            Action::Hubspot(a) => a.when.as_deref(),
            Action::File(a) => a.when.as_deref(),
            Action::Http(a) => a.when.as_deref(),
        }
    }

    /// The name later actions refer to it by, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Action::Hubspot(a) => a.name.as_deref(),
            Action::File(a) => a.name.as_deref(),
            Action::Http(a) => a.name.as_deref(),
        }
    }

    /// The actions it declares it needs for a record (`prerequisites`), if it declares them;
    /// `None`: every earlier action.
    pub fn prerequisites(&self) -> Option<&[ActionRef]> {
        match self {
            Action::Hubspot(a) => a.prerequisites.as_deref(),
            Action::File(a) => a.prerequisites.as_deref(),
            Action::Http(a) => a.prerequisites.as_deref(),
        }
    }

    /// The actions whose records, made for the same source record, it builds on
    /// (`associate_with`).
    pub fn associate_with(&self) -> &[ActionRef] {
        match self {
            Action::Hubspot(a) => &a.associate_with,
            Action::File(_) | Action::Http(_) => &[],
        }
    }
}

impl Trigger {
    /// The connector's key (`hubspot`).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Hubspot(_) => "hubspot",
        }
    }

    /// The connection it polls.
    pub fn connection(&self) -> &str {
        match self {
            Trigger::Hubspot(t) => &t.connection,
        }
    }

    /// How often it polls.
    pub fn poll_every(&self) -> Duration {
        match self {
            Trigger::Hubspot(t) => t.poll_every,
        }
    }

    /// Triggers with equal group keys are polled together: one read per poll, fanned out to
    /// every flow in the group (each with its own cursor).
    pub fn group_key(&self) -> String {
        match self {
            Trigger::Hubspot(t) => t.group_key(),
        }
    }
}

/// What one action needs of the others for a record: resolved from `prerequisites` and
/// `associate_with` (see [`Flow::dependencies`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Actions (indexes) that must have succeeded for a record before this one writes it.
    pub needs: Vec<usize>,
    /// Of those, the ones whose records this one builds on (`associate_with`), in the order
    /// written.
    pub builds_on: Vec<usize>,
    /// Whether they were declared (`prerequisites` or `associate_with`), rather than the
    /// default (every earlier action).
    pub declared: bool,
}

impl Flow {
    /// The index of the action `r` refers to, if there is one.
    pub fn action_index(&self, r: &ActionRef) -> Option<usize> {
        match r {
            ActionRef::Index(i) => (*i < self.actions.len()).then_some(*i),
            ActionRef::Name(n) => self.actions.iter().position(|a| a.name() == Some(n)),
        }
    }

    /// How action `index` reads in messages: `` `deal` (action 0) `` or `action 2 (file)`.
    pub fn action_label(&self, index: usize) -> String {
        match self.actions.get(index) {
            Some(a) => match a.name() {
                Some(name) => format!("`{name}` (action {index})"),
                None => format!("action {index} ({})", a.kind()),
            },
            None => format!("action {index}"),
        }
    }

    /// For each action, what it needs of the others for a record. Without `prerequisites` an
    /// action needs every earlier action (a record stops at its first failure); with it, only
    /// those it names and those of `associate_with`. References that name no earlier action
    /// are left out (validation reports them).
    pub fn dependencies(&self) -> Vec<Dependencies> {
        self.actions
            .iter()
            .enumerate()
            .map(|(index, action)| {
                let earlier = |r: &ActionRef| self.action_index(r).filter(|j| *j < index);
                let builds_on: Vec<usize> =
                    action.associate_with().iter().filter_map(earlier).collect();
                let mut needs: Vec<usize> = match action.prerequisites() {
                    Some(refs) => refs.iter().filter_map(earlier).collect(),
                    None if builds_on.is_empty() => (0..index).collect(),
                    None => Vec::new(),
                };
                needs.extend(builds_on.iter().copied());
                needs.sort_unstable();
                needs.dedup();
                Dependencies {
                    needs,
                    builds_on,
                    declared: action.prerequisites().is_some()
                        || !action.associate_with().is_empty(),
                }
            })
            .collect()
    }

    /// Every connection the flow uses, in order of appearance (repeats included).
    pub fn connections(&self) -> impl Iterator<Item = &str> {
        self.trigger
            .iter()
            .map(Trigger::connection)
            .chain(self.source.iter().filter_map(Source::connection))
            .chain(self.actions.iter().filter_map(Action::connection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(actions: &str) -> Flow {
        let yaml = format!(
            "name: f\nsource: {{ file: {{ path: in.csv }} }}\nmapping: {{ dealname: x }}\nactions:\n{actions}"
        );
        let node = crate::yaml::parse(&yaml).expect("yaml");
        serde_json::from_value(node.to_json()).expect("a flow")
    }

    #[test]
    fn without_declarations_an_action_needs_every_earlier_one() {
        let f = flow(
            "  - hubspot: { connection: h, operation: create, object: deal }\n  - file: { path: a }\n  - file: { path: b }\n",
        );
        let deps = f.dependencies();
        assert_eq!(deps[0].needs, Vec::<usize>::new());
        assert_eq!(deps[2].needs, vec![0, 1]);
        assert!(deps.iter().all(|d| !d.declared && d.builds_on.is_empty()));
        assert_eq!(f.action_label(1), "action 1 (file)");
    }

    #[test]
    fn declared_prerequisites_and_associations_replace_the_default() {
        let f = flow(
            "  - hubspot: { name: deal, connection: h, operation: create, object: deal }\n  - hubspot: { name: buyer, connection: h, operation: update, object: contact, id: x, prerequisites: [] }\n  - hubspot: { connection: h, operation: create, object: line_item, associate_with: [deal] }\n  - hubspot: { connection: h, operation: update, object: deal, id: x, prerequisites: [buyer, 0, nope, 9] }\n",
        );
        let deps = f.dependencies();
        assert_eq!(deps[1].needs, Vec::<usize>::new());
        assert!(deps[1].declared);
        assert_eq!(
            (deps[2].needs.clone(), deps[2].builds_on.clone()),
            (vec![0], vec![0])
        );
        // Unknown references are left out (validation reports them).
        assert_eq!(deps[3].needs, vec![0, 1]);
        assert_eq!(f.action_index(&ActionRef::Name("buyer".into())), Some(1));
        assert_eq!(f.action_index(&ActionRef::Index(4)), None);
        assert_eq!(f.action_label(0), "`deal` (action 0)");
    }
}
