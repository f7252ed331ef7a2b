//! The core's state machine on tokio's paused clock, with a fake connection behind the real
//! standalone watcher: virtual time runs ahead whenever every task waits, so backoff and
//! deadlines of seconds take no real time. The Node suites test the same core against real
//! servers; these pin down what is hard to provoke there.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::{RedisError, RedisResult};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::{CallError, Connector, Core, Status, Supervisor};
use crate::conn::health::Ping;
use crate::conn::standalone::StandaloneWatcher;
use crate::conn::{Backoff, ConnectionSettings, ServerAddress, TlsOptions};
use crate::error::ErrorCode;
use crate::log::Logger;

const BASE: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_millis(800);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(2_000);
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(1_000);
/// A ceiling for hang detection, in virtual time.
const HANG: Duration = Duration::from_secs(3_600);

/// What one connection attempt does.
enum Attempt {
    Connect,
    Fail,
    /// Never finishes.
    Hang,
}

/// The server side of the fake: scripted connection attempts, and which connections still
/// answer PINGs.
#[derive(Default)]
struct Fake {
    /// Attempts in order; once they run out, every attempt connects.
    script: Mutex<VecDeque<Attempt>>,
    /// When each attempt began.
    attempts: Mutex<Vec<Instant>>,
    connections: AtomicU64,
    /// Connections from this id on answer no PING.
    silent_from: AtomicU64,
    pings: AtomicU64,
}

impl Fake {
    fn new(script: impl IntoIterator<Item = Attempt>) -> Arc<Fake> {
        Arc::new(Fake {
            script: Mutex::new(script.into_iter().collect()),
            silent_from: AtomicU64::new(u64::MAX),
            ..Fake::default()
        })
    }

    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct FakeConnection {
    id: u64,
    fake: Arc<Fake>,
}

impl Ping for FakeConnection {
    fn ping(&mut self) -> impl Future<Output = RedisResult<()>> + Send {
        let fake = self.fake.clone();
        let id = self.id;
        async move {
            fake.pings.fetch_add(1, Ordering::SeqCst);
            if id >= fake.silent_from.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }
}

struct FakeConnector(Arc<Fake>);

impl Connector<FakeConnection> for FakeConnector {
    fn connect<'a>(
        &'a self,
        _: &'a Core<FakeConnection>,
    ) -> BoxFuture<'a, Result<FakeConnection, String>> {
        let fake = self.0.clone();
        fake.attempts.lock().unwrap().push(Instant::now());
        let attempt = fake.script.lock().unwrap().pop_front();
        Box::pin(async move {
            match attempt.unwrap_or(Attempt::Connect) {
                Attempt::Connect => {
                    let id = fake.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok(FakeConnection { id, fake })
                }
                Attempt::Fail => Err("connection refused".to_owned()),
                Attempt::Hang => std::future::pending().await,
            }
        })
    }
}

fn settings(base: Duration, max: Duration) -> ConnectionSettings {
    ConnectionSettings {
        address: ServerAddress {
            host: "fake".to_owned(),
            port: 6380,
            username: None,
            password: None,
            db: 0,
        },
        tls: TlsOptions::default(),
        connect_timeout: CONNECT_TIMEOUT,
        command_timeout: COMMAND_TIMEOUT,
        health_check_interval: HEALTH_CHECK_INTERVAL,
        backoff: Backoff { base, max },
        cluster: false,
    }
}

fn start_with(fake: &Arc<Fake>, settings: ConnectionSettings) -> Supervisor<FakeConnection> {
    Supervisor::start(
        settings,
        Logger::new(Arc::new(|_, _| {})),
        Arc::new(FakeConnector(fake.clone())),
        Arc::new(StandaloneWatcher),
        &Handle::current(),
    )
}

fn start(fake: &Arc<Fake>) -> Supervisor<FakeConnection> {
    start_with(fake, settings(BASE, MAX))
}

fn reset() -> RedisError {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer").into()
}

/// The id of the connection a call gets.
async fn connection_id(supervisor: &Supervisor<FakeConnection>) -> u64 {
    let call = supervisor.call(|c, _| async move { Ok::<_, CallError>(c.id) });
    timeout(HANG, call)
        .await
        .expect("hung")
        .expect("call failed")
}

/// A call that fails as a dropped connection does; when it was made.
async fn fail_with_reset(supervisor: &Supervisor<FakeConnection>) -> Instant {
    let at = Instant::now();
    let failed = supervisor
        .call(|_, _| async { Err::<(), _>(CallError::Redis(reset())) })
        .await;
    assert_eq!(failed.unwrap_err().code, ErrorCode::Unavailable);
    at
}

/// Waits for a connection, past `connectTimeoutMs` when attempts fail for longer.
async fn ready(supervisor: &Supervisor<FakeConnection>) {
    let connected = async {
        while let Err(error) = supervisor.ready().await {
            assert_eq!(error.code, ErrorCode::Unavailable, "{}", error.message);
        }
    };
    timeout(HANG, connected).await.expect("hung");
}

#[tokio::test(start_paused = true)]
async fn status_goes_connecting_ready_reconnecting_ready_end() {
    let fake = Fake::new([Attempt::Fail]);
    let supervisor = start(&fake);
    assert_eq!(supervisor.status(), Status::Connecting);
    ready(&supervisor).await;
    assert_eq!(supervisor.status(), Status::Ready);
    fail_with_reset(&supervisor).await;
    assert_eq!(supervisor.status(), Status::Reconnecting);
    ready(&supervisor).await;
    assert_eq!(supervisor.status(), Status::Ready);
    assert_eq!(connection_id(&supervisor).await, 2);
    timeout(HANG, supervisor.close()).await.expect("hung");
    assert_eq!(supervisor.status(), Status::End);
    let closed = supervisor.call(|c, _| async move { Ok::<_, CallError>(c.id) });
    assert_eq!(closed.await.unwrap_err().code, ErrorCode::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_call_on_a_replaced_connection_does_not_condemn_its_successor() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    sleep(Duration::from_millis(10)).await;
    // A call on connection 1 that fails only after connection 2 took over.
    let (release, released) = oneshot::channel::<()>();
    let late = supervisor.call(|c, _| async move {
        let _ = released.await;
        assert_eq!(c.id, 1);
        Err::<(), _>(CallError::Redis(reset()))
    });
    let replace = async {
        fail_with_reset(&supervisor).await;
        ready(&supervisor).await;
        assert_eq!(connection_id(&supervisor).await, 2);
        release.send(()).unwrap();
    };
    let (late, ()) = tokio::join!(late, replace);
    assert_eq!(late.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(supervisor.status(), Status::Ready);
    assert_eq!(connection_id(&supervisor).await, 2);
    assert_eq!(fake.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_without_reply_condemns_only_a_connection_silent_since_it_was_sent() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    sleep(Duration::from_millis(10)).await;
    let hung = || supervisor.call(|_, _| std::future::pending::<Result<(), CallError>>());
    // A slow call while other calls get replies: the server is slow, the link is fine.
    let answered = async {
        sleep(Duration::from_millis(100)).await;
        connection_id(&supervisor).await
    };
    let (slow, id) = tokio::join!(hung(), answered);
    let slow = slow.unwrap_err();
    assert_eq!(slow.code, ErrorCode::Unavailable);
    assert!(slow.message.contains("within 500 ms"), "{}", slow.message);
    assert_eq!((id, supervisor.status()), (1, Status::Ready));
    assert_eq!(connection_id(&supervisor).await, 1);
    // Nothing at all since the call was sent: the link is gone.
    sleep(Duration::from_millis(10)).await;
    hung().await.unwrap_err();
    assert_eq!(supervisor.status(), Status::Reconnecting);
    ready(&supervisor).await;
    assert_eq!(connection_id(&supervisor).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_after_a_wait_has_its_deadline_from_when_it_was_made() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    // Made now, its turn comes 400 ms later: 100 ms of its 500 are left for the call.
    let made = Instant::now();
    let turn = sleep(Duration::from_millis(400));
    let call = supervisor.call_after(made, turn, |_, deadline| async move {
        Ok::<_, CallError>(deadline)
    });
    let deadline = timeout(HANG, call)
        .await
        .expect("hung")
        .expect("call failed");
    assert_eq!(deadline, made + COMMAND_TIMEOUT);
    // A turn that never comes: the call gives up at its deadline, runs nothing, and leaves
    // the connection alone (nothing was sent on it).
    let made = Instant::now();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let never = supervisor.call_after(made, std::future::pending(), |_, _| async move {
        flag.store(true, Ordering::SeqCst);
        Ok::<_, CallError>(())
    });
    let error = timeout(HANG, never).await.expect("hung").unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert!(
        error.message.contains("earlier call on the same id"),
        "{}",
        error.message
    );
    assert_eq!(Instant::now(), made + COMMAND_TIMEOUT);
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(
        (supervisor.status(), connection_id(&supervisor).await),
        (Status::Ready, 1)
    );
    // Sent with 100 ms of its 500 left, and no reply: too short a silence to condemn the
    // connection (a burst of such calls used to make the store reconnect).
    sleep(Duration::from_millis(10)).await;
    let late = supervisor.call_after(Instant::now(), sleep(Duration::from_millis(400)), |_, _| {
        std::future::pending::<Result<(), CallError>>()
    });
    let error = timeout(HANG, late).await.expect("hung").unwrap_err();
    assert!(
        error.message.contains("400 ms of them waiting"),
        "{}",
        error.message
    );
    assert_eq!(
        (supervisor.status(), connection_id(&supervisor).await),
        (Status::Ready, 1)
    );
    // Its wait took all its time: nothing is sent.
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let made = Instant::now();
    let spent = supervisor.call_after(made, sleep(COMMAND_TIMEOUT), |_, _| async move {
        flag.store(true, Ordering::SeqCst);
        Ok::<_, CallError>(())
    });
    let error = timeout(HANG, spent).await.expect("hung").unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert!(!ran.load(Ordering::SeqCst), "sent past its deadline");
}

#[tokio::test(start_paused = true)]
async fn a_call_sent_late_that_gets_no_reply_has_the_connection_pinged() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    let late = || {
        supervisor.call_after(Instant::now(), sleep(Duration::from_millis(400)), |_, _| {
            std::future::pending::<Result<(), CallError>>()
        })
    };
    // A live connection answers the PING: it stays.
    let pings = fake.pings.load(Ordering::SeqCst);
    timeout(HANG, late()).await.expect("hung").unwrap_err();
    sleep(Duration::from_millis(1)).await;
    assert_eq!(fake.pings.load(Ordering::SeqCst), pings + 1, "no PING");
    assert_eq!(
        (supervisor.status(), connection_id(&supervisor).await),
        (Status::Ready, 1)
    );
    // A dead one does not: condemned one PING deadline after the call gave up, before the
    // heartbeat (due one interval after the last reply) would have found it.
    fake.silent_from.store(1, Ordering::SeqCst);
    let made = Instant::now();
    timeout(HANG, late()).await.expect("hung").unwrap_err();
    sleep_until(made + 2 * COMMAND_TIMEOUT + Duration::from_millis(1)).await;
    assert_eq!(supervisor.status(), Status::Reconnecting);
    ready(&supervisor).await;
    assert_eq!(connection_id(&supervisor).await, 2);
    // A probe still waiting for its PING when the store closes ends with it, connection and
    // all.
    fake.silent_from.store(2, Ordering::SeqCst);
    timeout(HANG, late()).await.expect("hung").unwrap_err();
    sleep(Duration::from_millis(1)).await;
    let holders = Arc::strong_count(&fake);
    timeout(HANG, supervisor.close()).await.expect("close hung");
    sleep(Duration::from_millis(1)).await;
    assert_eq!(
        Handle::current().metrics().num_alive_tasks(),
        0,
        "a task outlived close()"
    );
    assert!(Arc::strong_count(&fake) < holders);
}

#[tokio::test(start_paused = true)]
async fn only_readonly_and_noauth_refusals_condemn_the_connection() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    let refuse = |code: &'static str| {
        supervisor.call(move |_, _| async move {
            let error = redis::make_extension_error(code.to_owned(), Some("no".to_owned()));
            Err::<(), _>(CallError::Redis(error))
        })
    };
    let refused = refuse("NOPERM").await.unwrap_err();
    assert_eq!(refused.message, "Redis refused the command: NOPERM no");
    assert_eq!(supervisor.status(), Status::Ready);
    refuse("READONLY").await.unwrap_err();
    assert_eq!(supervisor.status(), Status::Reconnecting);
    ready(&supervisor).await;
    assert_eq!(connection_id(&supervisor).await, 2);
}

/// `gap` lies in the jittered step of attempt `attempt` (1-based): [step / 2, step].
fn assert_step(gap: Duration, attempt: u32) {
    let step = BASE.saturating_mul(1 << (attempt - 1)).min(MAX);
    assert!(
        gap >= step / 2 && gap <= step,
        "attempt {attempt}: waited {gap:?}, expected {:?} to {step:?}",
        step / 2
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_while_connecting_fails_up_to_max_delay() {
    let fake = Fake::new((0..6).map(|_| Attempt::Fail));
    let supervisor = start(&fake);
    ready(&supervisor).await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 7);
    for (n, pair) in attempts.windows(2).enumerate() {
        assert_step(pair[1] - pair[0], n as u32 + 1);
    }
}

/// Fails twice, connects, and loses the connection `lived` later: how long the supervisor
/// waits before the next attempt.
async fn wait_after_a_connection_that_lived(lived: Duration) -> Duration {
    let fake = Fake::new([Attempt::Fail, Attempt::Fail]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    sleep(lived).await;
    let lost = fail_with_reset(&supervisor).await;
    ready(&supervisor).await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 4);
    attempts[3] - lost
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_only_after_a_connection_outlived_max_delay() {
    // Dead too soon: the third attempt's step, so a server that drops us cannot make us spin.
    let margin = Duration::from_millis(10);
    assert_step(wait_after_a_connection_that_lived(MAX - margin).await, 3);
    assert_step(wait_after_a_connection_that_lived(MAX + margin).await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_attempt_gives_up_after_connect_timeout() {
    let fake = Fake::new([Attempt::Hang]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 2);
    assert_step(attempts[1] - attempts[0] - CONNECT_TIMEOUT, 1);
}

#[tokio::test(start_paused = true)]
async fn close_while_connecting_ends_at_once_and_fails_waiting_calls() {
    let fake = Fake::new([Attempt::Hang]);
    let supervisor = start(&fake);
    sleep(Duration::from_millis(10)).await;
    let began = Instant::now();
    let waiting = supervisor.call(|c, _| async move { Ok::<_, CallError>(c.id) });
    let closing = async {
        sleep(Duration::from_millis(10)).await;
        supervisor.close().await;
    };
    let (waiting, closed) = tokio::join!(waiting, timeout(HANG, closing));
    closed.expect("close hung");
    assert!(began.elapsed() < COMMAND_TIMEOUT, "{:?}", began.elapsed());
    assert_eq!(waiting.unwrap_err().code, ErrorCode::Closed);
    assert_eq!(supervisor.status(), Status::End);
    assert_eq!(fake.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_while_reconnecting_does_not_wait_out_the_backoff() {
    let hour = Duration::from_secs(3_600);
    let fake = Fake::new([Attempt::Fail]);
    let supervisor = start_with(&fake, settings(hour, hour));
    // The first attempt failed: the supervisor now waits half an hour or more.
    sleep(Duration::from_millis(10)).await;
    assert_eq!(supervisor.status(), Status::Connecting);
    let began = Instant::now();
    timeout(HANG, supervisor.close()).await.expect("close hung");
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(supervisor.status(), Status::End);
    assert_eq!(fake.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn drain_fails_calls_waiting_for_a_connection_and_lets_running_ones_finish() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    sleep(Duration::from_millis(10)).await;
    let (release, released) = oneshot::channel::<()>();
    let running = supervisor.call(|c, _| async move {
        let _ = released.await;
        Ok::<_, CallError>(c.id)
    });
    let drain = async {
        // Connection 1 is lost: calls from now on wait for its replacement.
        fail_with_reset(&supervisor).await;
        let waiting = supervisor.call(|c, _| async move { Ok::<_, CallError>(c.id) });
        let drained = async {
            supervisor.drain();
            release.send(()).unwrap();
        };
        let (waiting, ()) = tokio::join!(waiting, drained);
        waiting
    };
    let (running, waiting) = tokio::join!(running, drain);
    assert_eq!(running.unwrap(), 1);
    assert_eq!(waiting.unwrap_err().code, ErrorCode::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_pinged_and_replaced_when_it_goes_silent() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    sleep(HEALTH_CHECK_INTERVAL * 3 + Duration::from_millis(10)).await;
    assert_eq!(fake.pings.load(Ordering::SeqCst), 3);
    fake.silent_from.store(1, Ordering::SeqCst);
    // The next PING gets no reply within the command timeout.
    sleep(HEALTH_CHECK_INTERVAL + COMMAND_TIMEOUT).await;
    assert_eq!(supervisor.status(), Status::Reconnecting);
    fake.silent_from.store(u64::MAX, Ordering::SeqCst);
    ready(&supervisor).await;
    assert_eq!(connection_id(&supervisor).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_busy_connection_is_not_pinged() {
    let fake = Fake::new([]);
    let supervisor = start(&fake);
    ready(&supervisor).await;
    for _ in 0..30 {
        sleep(HEALTH_CHECK_INTERVAL / 2).await;
        connection_id(&supervisor).await;
    }
    assert_eq!(fake.pings.load(Ordering::SeqCst), 0);
}
