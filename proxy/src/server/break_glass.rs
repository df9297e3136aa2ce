//! Break-glass sessions: emergency access to PHI is declared by the caller (a FHIR route's
//! `break_glass_header` with a recognised reason), so it is made accountable instead of trusted.
//! An actor's first break-glass request starts a session of the route's `break_glass_ttl`; the
//! start and the end (with how many requests it covered) are ledger entries, and the metrics count
//! sessions started and active. A declaration after the session ended starts a new one.
//!
//! Owns the sessions (bounded: at most [`MAX_SESSIONS`] at once, a declaration beyond is refused)
//! and never decides: the domain plugin still requires a recognised reason, and the policy decides.
//! The lock is never held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};

/// The most break-glass sessions open at once; one more declaration is refused (a caller naming
/// a new actor per request must not grow this map, or the ledger, without bound).
pub const MAX_SESSIONS: usize = 10_000;

/// How often ended sessions are closed and recorded.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Session {
    domain: String,
    reason: String,
    started_at: jiff::Timestamp,
    until: Instant,
    requests: u64,
}

/// A ledger-worthy change of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub actor: Arc<str>,
    pub domain: String,
    /// The ledger entry's reason text.
    pub text: String,
}

/// What a declaration did.
#[derive(Debug, PartialEq, Eq)]
pub enum Declared {
    /// It started a session: record `started`, after `ended` when it closed the actor's previous
    /// session (ended, not yet swept).
    Started {
        ended: Option<SessionEvent>,
        started: SessionEvent,
    },
    /// It falls in the actor's open session.
    Within,
    /// [`MAX_SESSIONS`] are open: refused.
    Full,
}

/// The open break-glass sessions of a proxy (they outlive configuration reloads).
#[derive(Debug)]
pub struct BreakGlass {
    sessions: Mutex<HashMap<Arc<str>, Session>>,
    started: IntCounter,
    active: IntGauge,
}

impl BreakGlass {
    pub fn new(started: IntCounter, active: IntGauge) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            started,
            active,
        }
    }

    /// Notes that `actor` declared break-glass for `reason` on a route of `domain`.
    pub fn declare(
        &self,
        actor: &Arc<str>,
        domain: &str,
        reason: &str,
        ttl: Duration,
        now: Instant,
    ) -> Declared {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = sessions.get_mut(actor) {
            if open.until > now {
                open.requests += 1;
                return Declared::Within;
            }
        }
        // An ended session not swept yet is closed here, so its end is recorded before the new start.
        let ended = sessions.remove(actor).map(|s| end_event(actor.clone(), s));
        if sessions.len() >= MAX_SESSIONS {
            return Declared::Full;
        }
        let started_at = jiff::Timestamp::now();
        sessions.insert(
            actor.clone(),
            Session {
                domain: domain.to_owned(),
                reason: reason.to_owned(),
                started_at,
                until: now + ttl,
                requests: 1,
            },
        );
        self.started.inc();
        self.active
            .set(i64::try_from(sessions.len()).unwrap_or(i64::MAX));
        Declared::Started {
            ended,
            started: SessionEvent {
                actor: actor.clone(),
                domain: domain.to_owned(),
                text: format!(
                    "break-glass started by {actor}: reason {reason}, for {}",
                    humantime::format_duration(ttl)
                ),
            },
        }
    }

    /// Drops `actor`'s session without an end event: its start could not be recorded, so the
    /// next declaration starts (and records) it again.
    pub fn forget(&self, actor: &Arc<str>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.remove(actor);
        self.active
            .set(i64::try_from(sessions.len()).unwrap_or(i64::MAX));
    }

    /// Closes the sessions that ended by `now`; their end events, for the ledger.
    pub fn sweep(&self, now: Instant) -> Vec<SessionEvent> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let ended: Vec<Arc<str>> = sessions
            .iter()
            .filter(|(_, s)| s.until <= now)
            .map(|(actor, _)| actor.clone())
            .collect();
        let mut events = Vec::with_capacity(ended.len());
        for actor in ended {
            if let Some(s) = sessions.remove(&actor) {
                events.push(end_event(actor, s));
            }
        }
        self.active
            .set(i64::try_from(sessions.len()).unwrap_or(i64::MAX));
        events
    }

    /// Sessions open now.
    pub fn active(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The background service that closes ended sessions every [`SWEEP_INTERVAL`] and records each end
/// through the decision point of the snapshot in force.
pub struct BreakGlassSweeper {
    pub sessions: Arc<BreakGlass>,
    pub state: Arc<crate::server::state::ProxyState>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for BreakGlassSweeper {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
            let ended = self.sessions.sweep(Instant::now());
            if ended.is_empty() {
                continue;
            }
            let decider = self.state.load().decider.clone();
            for event in ended {
                tracing::info!(actor = %event.actor, "{}", event.text);
                if let Err(e) = decider
                    .record_break_glass(&event.actor, &event.domain, &event.text)
                    .await
                {
                    tracing::warn!(actor = %event.actor, error = %e, "break-glass end not recorded");
                }
            }
        }
    }
}

fn end_event(actor: Arc<str>, s: Session) -> SessionEvent {
    SessionEvent {
        text: format!(
            "break-glass ended for {actor}: reason {}, started {}, {} request{}",
            s.reason,
            s.started_at,
            s.requests,
            if s.requests == 1 { "" } else { "s" }
        ),
        actor,
        domain: s.domain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> BreakGlass {
        BreakGlass::new(
            IntCounter::new("started", "s").unwrap(),
            IntGauge::new("active", "a").unwrap(),
        )
    }

    #[test]
    fn a_session_starts_once_covers_its_ttl_and_ends_with_its_count() {
        let bg = tracker();
        let t0 = Instant::now();
        let dr: Arc<str> = Arc::from("act_physician:dr_lee");
        let ttl = Duration::from_secs(60);
        let started = bg.declare(&dr, "healthcare", "ETREAT", ttl, t0);
        assert!(
            matches!(&started, Declared::Started { ended: None, started } if started.text.contains("reason ETREAT")),
            "{started:?}"
        );
        assert_eq!(
            bg.declare(
                &dr,
                "healthcare",
                "ETREAT",
                ttl,
                t0 + Duration::from_secs(30)
            ),
            Declared::Within
        );
        assert!(bg.sweep(t0 + Duration::from_secs(59)).is_empty());
        let ended = bg.sweep(t0 + Duration::from_secs(60));
        assert_eq!(ended.len(), 1);
        assert!(ended[0].text.contains("2 requests"), "{}", ended[0].text);
        assert_eq!(bg.active(), 0);
        assert!(matches!(
            bg.declare(
                &dr,
                "healthcare",
                "EMERGENCY",
                ttl,
                t0 + Duration::from_secs(61)
            ),
            Declared::Started { ended: None, .. }
        ));
        assert_eq!(bg.started.get(), 2);
    }

    #[test]
    fn an_ended_session_is_recorded_before_a_new_one_starts() {
        let bg = tracker();
        let t0 = Instant::now();
        let dr: Arc<str> = Arc::from("act_physician:dr_lee");
        let ttl = Duration::from_secs(1);
        bg.declare(&dr, "healthcare", "ETREAT", ttl, t0);
        // Past the end, before the sweep: the declaration closes the old session, then starts anew.
        match bg.declare(
            &dr,
            "healthcare",
            "ETREAT",
            ttl,
            t0 + Duration::from_secs(2),
        ) {
            Declared::Started {
                ended: Some(ended),
                started,
            } => {
                assert!(
                    ended.text.contains("ended") && ended.text.contains("1 request"),
                    "{}",
                    ended.text
                );
                assert!(started.text.contains("started"));
            }
            other => panic!("{other:?}"),
        }
        assert!(bg.sweep(t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(bg.active(), 1);
    }

    #[test]
    fn the_number_of_open_sessions_is_bounded() {
        let bg = tracker();
        let t0 = Instant::now();
        for i in 0..MAX_SESSIONS {
            let actor: Arc<str> = Arc::from(format!("act_physician:{i}"));
            assert!(matches!(
                bg.declare(&actor, "h", "ETREAT", Duration::from_secs(60), t0),
                Declared::Started { .. }
            ));
        }
        let one_more: Arc<str> = Arc::from("act_physician:late");
        assert_eq!(
            bg.declare(&one_more, "h", "ETREAT", Duration::from_secs(60), t0),
            Declared::Full
        );
        assert_eq!(bg.active.get(), MAX_SESSIONS as i64);
    }
}
