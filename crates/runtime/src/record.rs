//! What moves through a flow: records in, outcomes out.

use serde_json::Value;

/// The most one source record may take (its bytes in a file, its JSON from an API): a larger
/// one fails on its own (an [`Item::Bad`]) and the rest go on, so one broken or hostile record
/// cannot exhaust memory.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// One record read from a trigger or source.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Identity within its source, stable across runs: a HubSpot id, a CSV row's key, an API
    /// record's id. Together with `version` it is the dedupe key; it also keys the create
    /// ledger, so the same record is never created twice.
    pub key: String,
    /// Which version of the record this is (e.g. its modification time in ms). Empty when the
    /// source has no notion of versions.
    pub version: String,
    /// What templates see as `record`.
    pub data: Value,
    /// Where it came from, for people: `data/in.csv line 12`, `contact 4051`.
    pub origin: String,
}

/// An item a source yields: a record, or a piece of input that could not become one (a
/// malformed CSV row), which fails on its own without stopping the others.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A good record.
    Record(Record),
    /// Unusable input.
    Bad {
        /// A stable key for the failed-record store (e.g. `data/in.csv:12`).
        key: String,
        /// Where, for people.
        origin: String,
        /// What is wrong.
        message: String,
        /// The raw input, when there is one (the CSV line).
        raw: Option<String>,
    },
}

/// What one action did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Written. `id` is what the target calls it, when it says (a HubSpot id).
    Done {
        /// The target's id of the record, if any.
        id: Option<String>,
    },
    /// Refused or not deliverable; kept in the failed-record store for replay.
    Failed {
        /// Why, for the operator (never containing secrets).
        message: String,
    },
    /// The answer was lost: the write may or may not have happened. Kept as a failed record
    /// with this reason so an operator decides; never re-sent blindly.
    Unknown {
        /// Why.
        reason: String,
    },
    /// The destination could not take it right now (unreachable, overloaded, out of disk): not
    /// the record's fault. The page is not recorded and is tried again later; an action stops
    /// sending the rest of its batch after the first one.
    Transient {
        /// Why, for the operator.
        reason: String,
    },
}

impl ActionOutcome {
    /// Whether the record went through.
    pub fn is_done(&self) -> bool {
        matches!(self, ActionOutcome::Done { .. })
    }

    /// A transient failure with this reason.
    pub fn transient(reason: impl Into<String>) -> ActionOutcome {
        ActionOutcome::Transient {
            reason: reason.into(),
        }
    }

    /// A failure with this message.
    pub fn failed(message: impl Into<String>) -> ActionOutcome {
        ActionOutcome::Failed {
            message: message.into(),
        }
    }
}

/// A mapped record handed to an action: the source record and its mapped fields (HubSpot's
/// wire format for HubSpot actions, native JSON types for file and HTTP sinks).
#[derive(Debug, Clone, Copy)]
pub struct Prepared<'a> {
    /// The source record.
    pub record: &'a Record,
    /// The mapped fields, in mapping order.
    pub fields: &'a indexmap::IndexMap<String, Value>,
}
