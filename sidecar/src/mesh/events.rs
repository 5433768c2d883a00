//! What the shell does with a session's events and close reasons: logs that name the peer,
//! metrics, the peer record (`/peers`), and readiness facts.

use crate::admin::readiness::Lesson;
use crate::admin::views::{PeerRole, SyncKind, SyncOutcome};
use crate::metrics::Metrics;
use crate::session::{CloseKind, CloseReason, Fresh, SessionEvent};

use super::peers::Peer;

/// Handles one event of `peer`'s live session. Returns true when the learning decision must
/// run again (a lesson we asked for ended).
pub(crate) fn on_event(
    peer: &mut Peer,
    event: SessionEvent,
    now: u64,
    replica_entries: u64,
    metrics: &Metrics,
) -> bool {
    let name = peer.name.clone();
    // The local HAProxy's peer name is the pod's: say "HAProxy" so that logs of two pods read
    // unambiguously.
    let who = match peer.role {
        PeerRole::Haproxy => match peer.live.as_ref().and_then(|l| l.session.remote_pid()) {
            Some(pid) => format!("HAProxy (pid {pid})"),
            None => "HAProxy".to_owned(),
        },
        PeerRole::Member => name.clone(),
    };
    match event {
        SessionEvent::LessonRequested => {
            tracing::debug!(peer = %name, "sent a resync request (00 00)");
            peer.mark_sync(SyncKind::Learned, SyncOutcome::InProgress, 0, now, metrics);
        }
        SessionEvent::TeachingStarted { asked, tables } => {
            let why = if asked {
                "it asked"
            } else {
                "unasked: a new session"
            };
            tracing::info!(
                peer = %name,
                tables,
                "teaching {who} the replica ({tables} tables, {replica_entries} entries; {why})"
            );
            peer.mark_sync(SyncKind::Taught, SyncOutcome::InProgress, 0, now, metrics);
            if let Some(live) = peer.live.as_mut() {
                live.teach_base = live.seen.updates_sent;
                live.teach_total = replica_entries;
                live.lesson = Lesson::Sending {
                    sent: 0,
                    total: replica_entries,
                };
            }
        }
        SessionEvent::LessonSent { complete, entries } => {
            tracing::debug!(peer = %name, entries, complete, "lesson sent, waiting for its confirm");
            if let Some(live) = peer.live.as_mut() {
                live.lesson = Lesson::AwaitingConfirmation { sent: entries };
            }
        }
        SessionEvent::LessonConfirmed { pid, complete } => {
            let entries = match peer.live.as_ref().map(|l| l.lesson) {
                Some(Lesson::AwaitingConfirmation { sent }) => sent,
                _ => 0,
            };
            let outcome = if complete {
                SyncOutcome::Complete
            } else {
                SyncOutcome::Partial
            };
            tracing::info!(
                peer = %name,
                pid,
                entries,
                "{who} confirmed the lesson ({entries} entries)"
            );
            peer.mark_sync(SyncKind::Taught, outcome, entries, now, metrics);
            if let Some(live) = peer.live.as_mut() {
                live.lesson = Lesson::Confirmed;
            }
        }
        SessionEvent::LessonLearned { complete, entries } => {
            let outcome = if complete {
                SyncOutcome::Complete
            } else {
                SyncOutcome::Partial
            };
            match peer.role {
                PeerRole::Haproxy => tracing::info!(
                    peer = %name,
                    entries,
                    "{who} sent its table: {entries} entries (its definitions are the schema)"
                ),
                PeerRole::Member => tracing::info!(
                    peer = %name,
                    entries,
                    complete,
                    "lesson from {name} ended: {entries} entries, {}",
                    if complete {
                        "complete"
                    } else {
                        "partial (the teacher is not complete itself)"
                    }
                ),
            }
            peer.mark_sync(SyncKind::Learned, outcome, entries, now, metrics);
            return true;
        }
        SessionEvent::FreshProcess { pid, why } => {
            let since = match why {
                Fresh::NewPid {
                    previous: Some(previous),
                } => format!("its pid changed from {previous}"),
                Fresh::NewPid { previous: None } => {
                    "the previous session's pid was unknown (the sidecar had dialed it)".to_owned()
                }
                Fresh::Untaught => {
                    "its previous session ended before it confirmed the sidecar's lesson".to_owned()
                }
                Fresh::AskedForLesson => "it asked for the whole table".to_owned(),
            };
            tracing::info!(
                peer = %name,
                pid,
                "{who} is a new process ({since}): until it has confirmed the sidecar's lesson, \
                 its updates of entries the replica holds are not applied (it may have counted \
                 them from zero)"
            );
        }
        SessionEvent::FreshTaught { ignored } => {
            if ignored > 0 {
                tracing::info!(
                    peer = %name,
                    ignored,
                    "{who} holds the replica: {ignored} of its updates were not applied while it \
                     had not been taught them; asking it for its table again"
                );
            } else {
                tracing::debug!(peer = %name, "{who} holds the replica: its updates apply again");
            }
        }
        SessionEvent::UnsolicitedLessonEnd => {
            tracing::debug!(peer = %name, "end of a lesson we did not ask for: confirmed, ignored");
        }
        SessionEvent::Drift(report) => {
            tracing::warn!(peer = %name, table = %report.table, "{report}");
        }
        SessionEvent::DefinitionRefused { table, error } => {
            tracing::warn!(
                peer = %name,
                %table,
                "definition of table {table} from {who} refused: {error}; its updates are dropped"
            );
            metrics.error("definition_refused");
        }
        SessionEvent::EntriesDropped { table, count } => {
            tracing::warn!(
                peer = %name,
                %table,
                count,
                "table {table} was redefined by {who} with another key: {count} entries dropped"
            );
        }
        SessionEvent::UpdateRefused { table, error } => {
            tracing::warn!(
                peer = %name,
                %table,
                "an update of table {table} from {who} was refused: {error} (reported once per \
                 table and session)"
            );
            metrics.error("update_refused");
        }
        SessionEvent::Ignored { what } => tracing::debug!(peer = %name, "ignored {what}"),
        SessionEvent::PeerError(e) => {
            let text = format!(
                "{who} reported an error about what we sent ({e:?}); it closes the session next"
            );
            tracing::warn!(peer = %name, "{text}");
            metrics.error("peer_reported_error");
            peer.last_error = Some(text);
        }
        SessionEvent::EncodeFailed { table, error } => {
            tracing::warn!(peer = %name, %table, "an entry could not be encoded for {who}: {error}; not sent");
            metrics.error("encode_failed");
        }
    }
    false
}

/// Records that the session itself decided to close (silent peer, malformed input).
pub(crate) fn on_close(peer: &mut Peer, reason: &CloseReason, metrics: &Metrics) {
    tracing::warn!(peer = %peer.name, kind = reason.kind.label(), "{reason}");
    metrics.error(reason.kind.label());
    match reason.kind {
        CloseKind::Silent => peer.silent_closes = peer.silent_closes.saturating_add(1),
        CloseKind::ProtocolError | CloseKind::SizeLimit => {
            peer.protocol_errors = peer.protocol_errors.saturating_add(1);
        }
    }
    peer.last_error = Some(reason.message.clone());
}
