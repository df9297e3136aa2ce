//! The downstream side of a request Lexecon answers or holds: reading a body whole before the
//! decision (bounded in size, time and the budget of held bodies, with `100 Continue` when asked)
//! and writing Lexecon's own JSON answers (draining a small unread body to keep the connection).
//! Never decides and never forwards: the request path in [`super::proxy`] does.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::server::answer::Answer;
use crate::server::held::{HeldBodies, Reservation};

/// The longest body drained before an early answer to keep the connection alive.
const DRAIN_LIMIT: usize = 64 * 1024;

/// What the body reader found.
pub(super) enum Body {
    /// The whole body, and its bytes in the budget of held bodies.
    Read(Bytes, Reservation),
    TooLarge,
    TimedOut,
    /// The budget of held bodies has no room for it; `started`: part of the body was read.
    Overloaded {
        started: bool,
    },
}

pub(super) fn content_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// pingora does not answer `Expect: 100-continue` when the proxy reads the body itself.
async fn write_continue_if_expected(session: &mut Session) -> Result<()> {
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await?;
    }
    Ok(())
}

/// Reads the whole request body into Lexecon's own buffer, refusing more than `limit` bytes and a
/// body not complete within `timeout` (a slow client cannot hold the request open). Its bytes are
/// claimed from the budget of held bodies (`budget`: the process's, and the snapshot's capacity)
/// before they are held: a declared length at once, before `100 Continue` invites the body; a
/// chunked body chunk by chunk. One chunk is kept as it came; several are joined once.
pub(super) async fn read_body(
    session: &mut Session,
    limit: u64,
    timeout: Duration,
    budget: (&Arc<HeldBodies>, usize),
) -> Result<Body> {
    let (held_bodies, capacity) = budget;
    let declared = content_length(session).map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    // INVARIANT: every byte held is in `reservation`, which gives it back when dropped — on every
    // return below, and with the request context after a permit.
    let Some(mut reservation) = held_bodies.reserve(declared, capacity) else {
        return Ok(Body::Overloaded { started: false });
    };
    write_continue_if_expected(session).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let Ok(read) = tokio::time::timeout_at(deadline, session.read_request_body()).await else {
            return Ok(Body::TimedOut);
        };
        let Some(chunk) = read? else { break };
        total = total.saturating_add(chunk.len() as u64);
        if total > limit {
            return Ok(Body::TooLarge);
        }
        let needed = usize::try_from(total).unwrap_or(usize::MAX);
        if let Some(more) = needed.checked_sub(reservation.bytes()).filter(|n| *n > 0) {
            if !reservation.grow(more, capacity) {
                return Ok(Body::Overloaded { started: true });
            }
        }
        chunks.push(chunk);
    }
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    };
    Ok(Body::Read(body, reservation))
}

/// Writes an answer. `before_body`: the request body has not been read yet, so drain a small one
/// (keeping the connection alive) or close the connection after answering.
pub(super) async fn send(
    session: &mut Session,
    a: Answer,
    headers: &[(&'static str, &str)],
    before_body: bool,
) -> Result<bool> {
    if before_body && !session.is_body_done() {
        let small = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n <= DRAIN_LIMIT);
        if small {
            if session.drain_request_body().await.is_err() {
                session.set_keepalive(None);
            }
        } else if !session.is_body_empty() {
            session.set_keepalive(None);
        }
    }
    write_answer(session, a, headers).await?;
    Ok(true)
}

pub(super) async fn write_answer(
    session: &mut Session,
    a: Answer,
    headers: &[(&'static str, &str)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(a.status, Some(3 + headers.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, a.body.len().to_string())?;
    for (name, value) in headers {
        resp.insert_header(*name, *value)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(a.body), true).await?;
    Ok(())
}
