//! The node's side of service VIPs: publishes the services defined here in this host's record,
//! and recomputes the services to program (with their live backends, see
//! [`crate::control::services`]) whenever the membership view changes. Without gossip every
//! backend counts as live: there is nothing to say otherwise.

use std::time::Instant;

use super::Node;
use crate::control::{resolve_services, ServiceSpec, ServiceView};

/// Service state of a node.
#[derive(Debug, Default)]
pub(super) struct NodeServices {
    local: Vec<ServiceSpec>,
    view: Vec<ServiceView>,
    generation: Option<u64>,
    pending: Option<Vec<ServiceView>>,
}

impl NodeServices {
    pub(super) fn new(local: Vec<ServiceSpec>) -> Self {
        NodeServices { local, ..Default::default() }
    }
}

impl Node {
    /// Replace the services defined on this host (configuration reload, control socket).
    pub fn set_services(&mut self, now: Instant, specs: Vec<ServiceSpec>) {
        self.services.local = specs;
        self.services.generation = None;
        if let Some(g) = self.gossip.as_mut() {
            let mut record = g.membership.local().clone();
            record.services = self.services.local.clone();
            if let Err(e) = g.membership.set_local(now, record) {
                tracing::warn!("gossip record too large, services not published: {e}");
            }
        }
        self.evaluate_services();
    }

    /// The services defined on this host.
    pub fn local_services(&self) -> &[ServiceSpec] {
        &self.services.local
    }

    /// The services as programmed here, with their live backends.
    pub fn services(&self) -> &[ServiceView] {
        &self.services.view
    }

    /// The services to program, when they changed since the last call.
    pub fn poll_services(&mut self) -> Option<Vec<ServiceView>> {
        self.services.pending.take()
    }

    /// Recompute the services if the membership view changed.
    pub(super) fn evaluate_services(&mut self) {
        let view = match self.gossip.as_ref() {
            Some(g) => {
                let generation = g.membership.view_generation();
                if self.services.generation == Some(generation) {
                    return;
                }
                self.services.generation = Some(generation);
                let mut records: Vec<_> = g.membership.live_records().collect();
                records.push(g.membership.local());
                resolve_services(&self.services.local, &records, |_| false)
            }
            None => resolve_services(&self.services.local, &[], |_| true),
        };
        if view != self.services.view {
            self.services.view = view.clone();
            self.services.pending = Some(view);
        }
    }
}
