//! Waits until a request's due time with microsecond precision. tokio's timer wheel has a 1 ms
//! tick: sleeping with it would wake every connection on the same tick and send in bursts (the
//! flaw of wrk's `delay()`), and each send would be up to 1 ms late. A Linux `timerfd` is an
//! hrtimer without slack, registered with tokio's reactor like a socket, so the runtime thread
//! sleeps in epoll until the exact due time and never spins.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One per connection task.
pub struct Pacer {
    fd: AsyncFd<Timer>,
}

impl Pacer {
    /// Must be called within a tokio runtime (the timer registers with its reactor).
    pub fn new() -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // `AsyncFd::register` is the non-deprecated form but `unsafe`, which this workspace forbids.
        // Its safety condition holds here: the AsyncFd owns the TimerFd (an OwnedFd), nothing else
        // can close or replace the descriptor, and the AsyncFd deregisters before the fd closes.
        #[expect(
            deprecated,
            reason = "AsyncFd::register is unsafe; the I/O-safety condition holds (see above)"
        )]
        let fd = AsyncFd::new(Timer(timer))?;
        Ok(Self { fd })
    }

    /// Returns at `when` (a few microseconds after it), or at once when it has passed.
    pub async fn wait_until(&mut self, when: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if when <= now {
                return Ok(());
            }
            // A relative one-shot; the loop re-checks the clock, so a wake-up that comes early
            // (or a stale readiness) only arms the timer again.
            let left = TimeSpec::from_duration(when - now);
            self.fd
                .get_ref()
                .0
                .set(Expiration::OneShot(left), TimerSetTimeFlags::empty())?;
            let mut ready = self.fd.readable().await?;
            // Reading the expiration count clears the timer's readiness; EAGAIN clears tokio's.
            match ready.try_io(|timer| timer.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => result?,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn waits_until_the_due_time_and_not_before() {
        let mut pacer = Pacer::new().unwrap();
        for micros in [0u64, 50, 300, 2_500] {
            let due = Instant::now() + Duration::from_micros(micros);
            pacer.wait_until(due).await.unwrap();
            assert!(Instant::now() >= due);
        }
        // A time in the past returns at once.
        let past = Instant::now();
        pacer.wait_until(past).await.unwrap();
    }
}
