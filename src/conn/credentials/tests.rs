//! The rotation on tokio's paused clock, with a scripted provider: when it fetches, how it
//! retries, what a new connection gets before, during and after a failure, and the stagger of
//! live connections.

use std::collections::VecDeque;
use std::sync::Mutex;

use futures_util::StreamExt;
use redis::StreamingCredentialsProvider;
use tokio::time::sleep;

use super::*;
use crate::log::LogLevel;

/// The provider's answers in order; once they run out, it keeps failing.
struct Scripted {
    clock: Clock,
    answers: Mutex<VecDeque<Result<f64, &'static str>>>,
    fetched_at: Mutex<Vec<f64>>,
}

impl CredentialSource for Arc<Scripted> {
    fn fetch(&self) -> BoxFuture<'static, Result<Token, String>> {
        let now = self.clock.now_ms();
        self.fetched_at.lock().unwrap().push(now);
        let answer = self.answers.lock().unwrap().pop_front();
        let serial = self.fetched_at.lock().unwrap().len();
        Box::pin(async move {
            match answer {
                Some(Ok(lifetime_ms)) => Ok(Token {
                    username: Some("oid".to_owned()),
                    password: format!("secret-{serial}"),
                    expires_at: Some(now + lifetime_ms),
                    refresh_at: None,
                }),
                Some(Err(cause)) => Err(cause.to_owned()),
                None => Err("script ran out".to_owned()),
            }
        })
    }
}

fn scripted(answers: Vec<Result<f64, &'static str>>) -> (Arc<Scripted>, Arc<Credentials>) {
    let scripted = Arc::new(Scripted {
        clock: Clock::new(),
        answers: Mutex::new(answers.into()),
        fetched_at: Mutex::default(),
    });
    let provider = CredentialsProvider(Arc::new(scripted.clone()));
    let credentials = Credentials::new(provider, None);
    (scripted, credentials)
}

type Lines = Arc<Mutex<Vec<(LogLevel, String)>>>;

fn recording() -> (Logger, Lines) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let logger = Logger::new(Arc::new(move |level, line| {
        sink.lock().unwrap().push((level, line));
    }));
    (logger, lines)
}

const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_millis(800),
};

fn start(credentials: &Arc<Credentials>, logger: Logger) {
    let credentials = credentials.clone();
    tokio::spawn(async move {
        credentials
            .rotate(&logger, BACKOFF, Duration::from_secs(1))
            .await
    });
}

/// The first item of a new connection's subscription.
async fn new_connection(credentials: &Arc<Credentials>) -> RedisResult<BasicAuth> {
    let mut stream = credentials.streaming().subscribe();
    stream.next().await.expect("an item")
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_half_of_a_short_lifetime_through_ten_rotations() {
    let (source, credentials) = scripted(vec![Ok(4_000.0); 11]);
    let (logger, lines) = recording();
    start(&credentials, logger);
    let first = new_connection(&credentials).await.unwrap();
    assert_eq!((first.username(), first.password()), ("oid", "secret-1"));
    sleep(Duration::from_millis(10 * 2_000 + 100)).await;
    let fetched = source.fetched_at.lock().unwrap().clone();
    assert_eq!(fetched.len(), 11, "{fetched:?}");
    for pair in fetched.windows(2) {
        // Half of 4 s, less up to 10% jitter.
        let gap = pair[1] - pair[0];
        assert!((1_800.0..=2_000.0).contains(&gap), "{gap}");
    }
    let lines = lines.lock().unwrap();
    assert!(lines[0]
        .1
        .starts_with("[STORE] credentials received for user oid"));
    let rotated = lines
        .iter()
        .filter(|(_, l)| l.contains("credentials rotated"));
    assert_eq!(rotated.count(), 10);
    assert!(lines.iter().all(|(_, l)| !l.contains("secret")));
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_is_retried_with_backoff_then_new_connections_get_its_failure() {
    let (source, credentials) = scripted(vec![
        Ok(1_000.0),
        Err("token endpoint down"),
        Err("token endpoint down"),
        Err("token endpoint down"),
        Err("token endpoint down"),
        Err("token endpoint down"),
        Ok(60_000.0),
    ]);
    let (logger, lines) = recording();
    start(&credentials, logger);
    assert!(new_connection(&credentials).await.is_ok());
    // Refresh at 500 ms fails; retries after 50-100, 100-200, 200-400, 400-800 ms.
    sleep(Duration::from_millis(900)).await;
    assert!(new_connection(&credentials).await.is_ok(), "still valid");
    sleep(Duration::from_millis(200)).await;
    let refused = new_connection(&credentials).await.unwrap_err();
    let text = refused.to_string();
    assert!(text.contains("credentials expired"), "{text}");
    assert!(text.contains("token endpoint down"), "{text}");
    // Recovers by itself: the sixth retry works.
    sleep(Duration::from_millis(2_000)).await;
    let recovered = new_connection(&credentials).await.unwrap();
    assert_eq!(recovered.password(), "secret-7");
    let fetched = source.fetched_at.lock().unwrap().clone();
    for (i, pair) in fetched[1..].windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let step = (100u64 << i).min(800) as f64;
        assert!(gap >= step / 2.0 && gap <= step + 1.0, "retry {i}: {gap}");
    }
    let lines = lines.lock().unwrap();
    let warnings: Vec<_> = lines.iter().filter(|(l, _)| *l == LogLevel::Warn).collect();
    assert_eq!(warnings.len(), 5);
    assert!(warnings[0].1.contains("the current credentials expire in"));
    assert!(warnings[4].1.contains("have expired"), "{:?}", warnings[4]);
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_waits_for_the_first_answer_and_live_ones_get_each_newer_set() {
    let (_, credentials) = scripted(vec![Ok(10_000.0), Ok(10_000.0), Ok(10_000.0)]);
    let mut live = credentials.streaming().subscribe();
    let (logger, _) = recording();
    start(&credentials, logger);
    let first = live.next().await.unwrap().unwrap();
    assert_eq!(first.password(), "secret-1");
    let before = Instant::now();
    let second = live.next().await.unwrap().unwrap();
    assert_eq!(second.password(), "secret-2");
    // Refreshed at 4.5-5 s, then staggered by at most a tenth of 10 s.
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(4_500) && waited <= Duration::from_millis(6_000),
        "{waited:?}"
    );
}

#[test]
fn results_that_cannot_be_used_are_refused_without_quoting_them() {
    let token = |password: &str, expires_at| Token {
        username: None,
        password: password.to_owned(),
        expires_at,
        refresh_at: None,
    };
    let now = 1_800_000_000_000.0;
    assert!(token("", None)
        .check(now)
        .unwrap_err()
        .contains("empty password"));
    let seconds_not_ms = token("hunter2", Some(1_800_000_100.0))
        .check(now)
        .unwrap_err();
    assert!(
        seconds_not_ms.contains("epoch milliseconds"),
        "{seconds_not_ms}"
    );
    assert!(!seconds_not_ms.contains("hunter2"));
    let nan = token("hunter2", Some(f64::NAN)).check(now).unwrap_err();
    assert!(nan.contains("expiresAt"));
    let absurd = token("hunter2", Some(1e300)).check(now).unwrap_err();
    assert!(absurd.contains("expiresAt is past the year"), "{absurd}");
    assert!(token("hunter2", Some(now + 1e12)).check(now).is_ok());
    assert!(!format!("{:?}", token("hunter2", None)).contains("hunter2"));
}

/// Starts `expire_connections`; returns when (ms after start) each condemnation came.
fn watch_expiry(credentials: &Arc<Credentials>) -> Arc<Mutex<Vec<u128>>> {
    let condemned = Arc::new(Mutex::new(Vec::new()));
    let (sink, credentials, start) = (condemned.clone(), credentials.clone(), Instant::now());
    tokio::spawn(async move {
        credentials
            .expire_connections(|_| sink.lock().unwrap().push(start.elapsed().as_millis()))
            .await
    });
    condemned
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_reauthentication_was_refused_is_replaced_before_it_expires() {
    let (source, credentials) = scripted(vec![Ok(4_000.0); 10]);
    let (logger, _) = recording();
    start(&credentials, logger);
    let condemned = watch_expiry(&credentials);
    let mut live = credentials.streaming().subscribe();
    assert_eq!(live.next().await.unwrap().unwrap().password(), "secret-1");
    // The rotation at ~2 s: redis-rs sends AUTH, the server refuses it, redis-rs drops the
    // stream without asking for more.
    assert_eq!(live.next().await.unwrap().unwrap().password(), "secret-2");
    assert!(condemned.lock().unwrap().is_empty());
    drop(live);
    sleep(Duration::from_millis(1_500)).await;
    let fetched = source.fetched_at.lock().unwrap().clone();
    // Asked again within the backoff, not at the next scheduled refresh.
    assert_eq!(fetched.len(), 3, "{fetched:?}");
    assert!(fetched[2] - fetched[1] <= 100.0 + 500.0, "{fetched:?}");
    // Replaced as soon as the newer credentials came, long before secret-1 expires at 4 s.
    let condemned = condemned.lock().unwrap().clone();
    assert_eq!(condemned.len(), 1, "{condemned:?}");
    assert!((condemned[0] as f64) < 4_000.0 - 1_000.0, "{condemned:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stranded_connection_is_replaced_before_expiry_even_without_newer_credentials() {
    // The provider fails after the second answer: nothing newer ever comes.
    let (_, credentials) = scripted(vec![Ok(4_000.0), Ok(4_000.0)]);
    let (logger, _) = recording();
    start(&credentials, logger);
    let condemned = watch_expiry(&credentials);
    let mut live = credentials.streaming().subscribe();
    live.next().await.unwrap().unwrap();
    live.next().await.unwrap().unwrap();
    drop(live);
    sleep(Duration::from_millis(2_500)).await;
    // secret-1 expires at 4 s: replaced halfway between the refusal (~2 s) and then.
    let condemned = condemned.lock().unwrap().clone();
    assert_eq!(condemned.len(), 1, "{condemned:?}");
    assert!((2_800..4_000).contains(&condemned[0]), "{condemned:?}");
}

/// Always the same token, valid for an hour, whose refresh time has passed (a cached token);
/// after 100 calls it stops answering.
struct Cached {
    clock: Clock,
    calls: Mutex<u32>,
}

impl CredentialSource for Arc<Cached> {
    fn fetch(&self) -> BoxFuture<'static, Result<Token, String>> {
        let now = self.clock.now_ms();
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls > 100 {
            return Box::pin(futures_util::future::pending());
        }
        Box::pin(async move {
            Ok(Token {
                username: None,
                password: "cached-token".to_owned(),
                expires_at: Some(now + 3_600_000.0),
                refresh_at: Some(now - 60_000.0),
            })
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_same_token_again_is_no_rotation_and_is_asked_for_with_backoff() {
    let cached = Arc::new(Cached {
        clock: Clock::new(),
        calls: Mutex::default(),
    });
    let credentials = Credentials::new(CredentialsProvider(Arc::new(cached.clone())), None);
    let (logger, lines) = recording();
    start(&credentials, logger);
    let mut live = credentials.streaming().subscribe();
    live.next().await.unwrap().unwrap();
    sleep(Duration::from_secs(2)).await;
    // 100 ms, then 50-100, 100-200, 200-400, 400-800 ms, ...: a handful, not a hot loop.
    let calls = *cached.calls.lock().unwrap();
    assert!((4..=10).contains(&calls), "{calls} calls in 2 s");
    assert_eq!(credentials.current.borrow().serial, 1);
    {
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
    // No re-authentication for the same token.
    let more = timeout(Duration::from_secs(5), live.next()).await;
    assert!(more.is_err(), "a re-authentication with the same token");
}
