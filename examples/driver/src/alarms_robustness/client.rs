//! The routes of one `RobustnessDO` of the alarms-robustness worker, typed.

use alarms_robustness::{Firing, FiringsPage, ScheduleReply, ScheduleRequest, StatusReply};

use crate::http::Client;
use crate::Result;

/// One object of the worker: `<worker url>/<object>/...`.
#[derive(Debug, Clone)]
pub struct ObjectClient {
    http: Client,
    base: String,
}

impl ObjectClient {
    /// The object named `object` of the worker at `url`.
    #[must_use]
    pub fn new(http: Client, url: &str, object: &str) -> Self {
        ObjectClient { http, base: format!("{url}/{object}") }
    }

    /// The same object through another base URL of the worker (a local worker's port may
    /// change when it restarts).
    #[must_use]
    pub fn at(&self, url: &str) -> Self {
        let object = self.base.rsplit('/').next().unwrap_or_default();
        ObjectClient::new(self.http.clone(), url, object)
    }

    /// `POST schedule`.
    ///
    /// # Errors
    /// HTTP and decoding errors.
    pub fn schedule(&self, request: &ScheduleRequest) -> Result<ScheduleReply> {
        self.http.post(&format!("{}/schedule", self.base), request)
    }

    /// `GET status`.
    ///
    /// # Errors
    /// HTTP and decoding errors.
    pub fn status(&self) -> Result<StatusReply> {
        self.http.get(&format!("{}/status", self.base))
    }

    /// Every recorded firing, reading page after page.
    ///
    /// # Errors
    /// HTTP and decoding errors.
    pub fn firings(&self) -> Result<Vec<Firing>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page: FiringsPage = self.http.get(&format!("{}/firings?after={after}", self.base))?;
            all.extend(page.firings);
            match page.next {
                Some(next) if next > after => after = next,
                _ => return Ok(all),
            }
        }
    }

    /// `DELETE storage`: deletes the object's storage (tasks, firings, alarm).
    ///
    /// # Errors
    /// HTTP errors.
    pub fn clear(&self) -> Result<()> {
        self.http.delete(&format!("{}/storage", self.base))
    }
}
