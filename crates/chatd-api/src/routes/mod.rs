//! Handlers, one module per resource.

pub mod chatfiles;
pub mod history;
pub mod messages;
pub mod presence;
pub mod system;
pub mod token;
pub mod users;
pub mod ws;

use chatd_core::AppRecord;

/// The `uri` of an app-scoped resource, in the `{org}/{app}` form the
/// service's examples use.
pub(crate) fn resource_uri(base: &str, app: &AppRecord, path: &str) -> String {
    format!("{base}/{}/{}{path}", app.org_name, app.app_name)
}
