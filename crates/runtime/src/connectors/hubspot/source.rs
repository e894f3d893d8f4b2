//! HubSpot as a scheduled source: every record of an object each run (listed by id), or those
//! changed since the previous run (searched by last-modified date, through the trigger's scan).

use super::object_json;
use super::trigger::{Scan, record_timestamp};
use crate::connector::{Source, SourceError, SourcePage};
use crate::record::{Item, Record};
use async_trait::async_trait;
use rivulet_hubspot::{Client, ListRequest, ObjectType};
use rivulet_spec::model::HubSpotSource;
use serde_json::Value;

/// Reads HubSpot records for a scheduled flow: every record each run, or those changed since the
/// previous run (`incremental`), by listing or searching.
pub struct HubSpotReader {
    client: Client,
    object: ObjectType,
    properties: Vec<String>,
    /// For incremental reads: last-modified ms already covered.
    since: Option<i64>,
    upper: i64,
    after: Option<String>,
    done: bool,
    max_seen: i64,
    incremental: bool,
    scan: Option<Scan>,
}

impl HubSpotReader {
    /// A reader starting from `checkpoint` (the previous run's last-modified high-water mark).
    pub fn new(
        client: Client,
        source: &HubSpotSource,
        checkpoint: Option<&Value>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<HubSpotReader, SourceError> {
        let object: ObjectType = source
            .object
            .parse()
            .map_err(|e: rivulet_hubspot::Error| SourceError::Config(e.to_string()))?;
        // A checkpoint this reader did not write is refused, never taken for none (which would
        // read the whole object again).
        let since = match checkpoint {
            None | Some(Value::Null) => None,
            Some(c) => Some(c.get("since").and_then(Value::as_i64).ok_or_else(|| {
                SourceError::Checkpoint(format!(
                    "{c} is not a HubSpot source's checkpoint (`{{\"since\": epoch ms}}`)"
                ))
            })?),
        };
        Ok(HubSpotReader {
            client,
            object,
            properties: source.properties.clone(),
            since,
            upper: now.timestamp_millis() - 5_000,
            after: None,
            done: false,
            max_seen: since.unwrap_or(0),
            incremental: source.incremental,
            scan: None,
        })
    }

    /// The next page of records, and the checkpoint to store once it is recorded.
    async fn read_page(&mut self) -> Result<Option<SourcePage>, rivulet_hubspot::Error> {
        if self.done {
            return Ok(None);
        }
        let modified = self.object.last_modified_property();
        let objects = if self.incremental {
            // Incremental reads go through the trigger's scan: windows, the 10k cap and ties.
            let lower = self.since.map_or(0, |s| s - 60_000).max(0);
            let (client, object, properties, upper) =
                (&self.client, &self.object, &self.properties, self.upper);
            let scan = self.scan.get_or_insert_with(|| {
                Scan::new(
                    client.clone(),
                    object.clone(),
                    modified,
                    properties.clone(),
                    lower,
                    upper,
                )
            });
            match scan.next_page().await? {
                Some(page) => page,
                None => {
                    self.done = true;
                    return Ok(None);
                }
            }
        } else {
            let mut properties = self.properties.clone();
            if !properties.iter().any(|p| p == modified) {
                properties.push(modified.to_string());
            }
            let page = self
                .client
                .list(
                    &self.object,
                    &ListRequest {
                        limit: Some(100),
                        after: self.after.clone(),
                        properties,
                        ..ListRequest::default()
                    },
                )
                .await?;
            self.after = page.after.clone();
            self.done = page.after.is_none();
            page.results
        };
        let items: Vec<Item> = objects
            .iter()
            .map(|o| {
                let version = record_timestamp(o, modified).unwrap_or(0);
                self.max_seen = self.max_seen.max(version);
                Item::Record(Record {
                    key: o.id.clone(),
                    version: version.to_string(),
                    data: object_json(o),
                    origin: format!("{} {}", self.object, o.id),
                })
            })
            .collect();
        // Pages come in ascending modification order, so the newest seen is a safe high-water
        // mark; the next run looks a minute behind it and dedupe drops what it sees again.
        let checkpoint = serde_json::json!({ "since": self.max_seen });
        Ok(Some(SourcePage { items, checkpoint }))
    }
}

#[async_trait]
impl Source for HubSpotReader {
    /// HubSpot decides the page size (100 listed, 200 searched).
    async fn next_page(&mut self, _max: usize) -> Result<Option<SourcePage>, SourceError> {
        self.read_page().await.map_err(|e| {
            if e.is_transient() {
                SourceError::Unavailable(Box::new(e))
            } else {
                SourceError::Remote(Box::new(e))
            }
        })
    }

    /// Incremental reads look a minute behind their high-water mark, so they overlap.
    fn dedupe(&self) -> bool {
        true
    }
}
