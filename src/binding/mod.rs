//! The only module that knows napi: classes and option objects for JavaScript, and the one
//! place a `StoreError` becomes a JavaScript error. The thin `index.js` entry turns the
//! `STORE_…:` prefix of a message into the error's `code`.

mod credentials;
mod options;
mod runtime;
mod stats;
mod text;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use napi::bindgen_prelude::{FnArgs, Function, Promise, PromiseRaw, ToNapiValue};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

use crate::error::{StoreError, StoreResult};
use crate::store::{
    self, internal_error, run_batch, Admitted, CallKind, LogLevel, Logger, MemoryStore, Operation,
    RedisSettings, RedisStore, Turn,
};

pub use credentials::NativeCredentials;
pub use options::NativeStoreOptions;
use text::{JsonText, Utf8Text};

fn js_error(error: StoreError) -> Error {
    Error::new(Status::GenericFailure, error.to_string())
}

/// `status`, in ioredis' words; `'ready'` means usable now.
#[napi(string_enum = "lowercase")]
pub enum StoreStatus {
    Connecting,
    Ready,
    Reconnecting,
    End,
}

impl From<store::StoreStatus> for StoreStatus {
    fn from(status: store::StoreStatus) -> Self {
        match status {
            store::StoreStatus::Connecting => StoreStatus::Connecting,
            store::StoreStatus::Ready => StoreStatus::Ready,
            store::StoreStatus::Reconnecting => StoreStatus::Reconnecting,
            store::StoreStatus::End => StoreStatus::End,
        }
    }
}

/// Log lines go back to JavaScript without keeping the event loop alive.
fn js_logger(log: Function<FnArgs<(String, String)>, ()>) -> Result<Logger> {
    let log = log
        .build_threadsafe_function::<FnArgs<(String, String)>>()
        .weak::<true>()
        .callee_handled::<false>()
        .build()?;
    Ok(Logger::new(Arc::new(move |level, message| {
        let level = match level {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
        };
        log.call(
            FnArgs::from((level.to_owned(), message)),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    })))
}

/// What each call of a batch came to, index by index: `values[i]` unless `errors[i]` is set
/// (a `STORE_…: message` text, as in a rejection). Only ever handed to JavaScript.
#[napi(object, object_from_js = false)]
pub struct BatchReply {
    #[napi(ts_type = "Array<string | undefined | null>")]
    pub values: Vec<Option<JsonText>>,
    pub errors: Vec<Option<String>>,
}

impl From<Vec<StoreResult<Option<JsonText>>>> for BatchReply {
    /// Each value was made ready for V8 (`JsonText`) on tokio's thread, within its call.
    fn from(outcomes: Vec<StoreResult<Option<JsonText>>>) -> Self {
        let mut reply = BatchReply {
            values: Vec::with_capacity(outcomes.len()),
            errors: Vec::with_capacity(outcomes.len()),
        };
        for outcome in outcomes {
            let (value, error) = match outcome {
                Ok(value) => (value, None),
                Err(error) => (None, Some(error.to_string())),
            };
            reply.values.push(value);
            reply.errors.push(error);
        }
        reply
    }
}

/// The turns of a batch's calls, in the batch's order (see [`RedisStore::turn`]).
fn turns(call: &Admitted, kind: CallKind, ids: &[String]) -> Vec<Turn> {
    ids.iter().map(|id| call.store().turn(kind, id)).collect()
}

/// A panic's payload as text, for the rejection it becomes.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    internal_error(payload).to_string()
}

/// Runs an in-memory store's call: a panic becomes `STORE_UNAVAILABLE internal error`, as in the
/// Redis store (the call counted itself, `CallStats::observe`), not napi's own error, which
/// `index.js` would read as a bad argument.
fn settle<T>(call: impl FnOnce() -> StoreResult<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|payload| Err(internal_error(payload.as_ref())))
        .map_err(js_error)
}

/// Takes the call in now, on the JavaScript thread (so a `close()` made after it lets it
/// finish), and runs it on the runtime; a panic becomes a rejection. `calls` (the operation
/// and how many calls) are counted as refused when the store takes nothing in.
fn spawn_call<'env, T, F, Fut>(
    env: &'env Env,
    store: &Arc<RedisStore>,
    calls: (Operation, usize),
    call: F,
) -> Result<PromiseRaw<'env, T>>
where
    T: 'static + Send + ToNapiValue,
    F: FnOnce(Admitted) -> Fut,
    Fut: 'static + Send + Future<Output = StoreResult<T>>,
{
    let admitted = store.admit().map_err(|error| {
        store.refused(calls.0, calls.1, &error);
        js_error(error)
    })?;
    // Making the future takes the calls' turns (on this thread, in the order made): a panic
    // there is a rejection too.
    let call =
        std::panic::catch_unwind(AssertUnwindSafe(|| call(admitted))).map_err(|payload| {
            store.refused(calls.0, calls.1, &StoreError::unavailable("internal error"));
            Error::new(Status::GenericFailure, panic_message(payload.as_ref()))
        })?;
    let call = AssertUnwindSafe(call).catch_unwind();
    env.spawn_future(async move {
        match call.await {
            Ok(result) => result.map_err(js_error),
            // Each call counted itself as the panic left it (`Unsettled` in store::stats).
            Err(payload) => Err(Error::new(
                Status::GenericFailure,
                panic_message(payload.as_ref()),
            )),
        }
    })
}

/// The Redis store; `index.js` wraps it as `RedisConversationStore`.
#[napi]
pub struct NativeRedisStore {
    store: Arc<RedisStore>,
}

#[napi]
impl NativeRedisStore {
    /// Checks the URL and options, then connects in the background. `nodeRoots` is what Node
    /// trusts, as PEM (`tls.rootCertificates` and `NODE_EXTRA_CA_CERTS`). `credentials` is the
    /// provider as `index.js` wraps it: it never throws and reports failures in `error`.
    #[napi(constructor)]
    pub fn new(
        url: String,
        options: NativeStoreOptions,
        log: Function<FnArgs<(String, String)>, ()>,
        node_roots: Option<String>,
        credentials: Option<Function<(), Promise<NativeCredentials>>>,
    ) -> Result<Self> {
        let logger = js_logger(log)?;
        let credentials = credentials.map(credentials::js_credentials).transpose()?;
        let build = || -> StoreResult<RedisStore> {
            let mut values = options.values();
            values.credentials = credentials;
            let mut settings = RedisSettings::new(&url, &values)?;
            settings.trust_node_roots(node_roots);
            let runtime =
                napi::bindgen_prelude::within_runtime_if_available(tokio::runtime::Handle::current);
            RedisStore::connect(settings, logger, &runtime)
        };
        match std::panic::catch_unwind(AssertUnwindSafe(build)) {
            Ok(store) => Ok(NativeRedisStore {
                store: Arc::new(store.map_err(js_error)?),
            }),
            Err(payload) => Err(Error::new(
                Status::GenericFailure,
                panic_message(payload.as_ref()),
            )),
        }
    }

    #[napi(getter)]
    pub fn status(&self) -> StoreStatus {
        self.store.status().into()
    }

    /// When the credentials from the `credentials` option expire (epoch ms), if they do.
    #[napi(getter)]
    pub fn credentials_expire_at(&self) -> Option<f64> {
        self.store.credentials_expire_at()
    }

    /// `host:port` of the server (the seed node in cluster mode), without credentials.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.store.address()
    }

    #[napi(catch_unwind)]
    pub async fn ready(&self) -> Result<()> {
        self.store.ready().await.map_err(js_error)
    }

    /// The conversation's JSON, or null.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> Result<PromiseRaw<'env, Option<JsonText>>> {
        spawn_call(env, &self.store, (Operation::Get, 1), |call| {
            let turn = call.store().turn(CallKind::Get, &id);
            async move { call.store().get(&id, turn, JsonText::from).await }
        })
    }

    /// `json` is the conversation as `JSON.stringify` wrote it, without `sdkConversationRef`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set<'env>(
        &self,
        env: &'env Env,
        id: String,
        #[napi(ts_arg_type = "string")] json: Utf8Text,
    ) -> Result<PromiseRaw<'env, ()>> {
        spawn_call(env, &self.store, (Operation::Set, 1), |call| {
            let turn = call.store().turn(CallKind::Set, &id);
            async move { call.store().set(&id, &json.0, turn).await }
        })
    }

    /// Several `get`s at once: their commands leave together and one promise settles them.
    #[napi(ts_return_type = "Promise<BatchReply>")]
    pub fn get_batch<'env>(
        &self,
        env: &'env Env,
        ids: Vec<String>,
    ) -> Result<PromiseRaw<'env, BatchReply>> {
        let calls = (Operation::Get, ids.len());
        spawn_call(env, &self.store, calls, |call| {
            let turns = turns(&call, CallKind::Get, &ids);
            async move {
                let store = call.store();
                let gets = ids
                    .iter()
                    .zip(turns)
                    .map(|(id, turn)| store.get(id, turn, JsonText::from));
                Ok(BatchReply::from(run_batch(gets).await))
            }
        })
    }

    /// Several `set`s at once; `jsons[i]` belongs to `ids[i]`.
    #[napi(ts_return_type = "Promise<BatchReply>")]
    pub fn set_batch<'env>(
        &self,
        env: &'env Env,
        ids: Vec<String>,
        #[napi(ts_arg_type = "Array<string>")] jsons: Vec<Utf8Text>,
    ) -> Result<PromiseRaw<'env, BatchReply>> {
        // One reply a call: a caller of the native class could pass lists of other lengths.
        // Refused and counted as a closed store's calls are.
        if ids.len() != jsons.len() {
            let error = StoreError::invalid_argument(format!(
                "setBatch: {} ids and {} documents, not one document an id",
                ids.len(),
                jsons.len()
            ));
            self.store
                .refused(Operation::Set, ids.len().max(jsons.len()), &error);
            return Err(js_error(error));
        }
        let calls = (Operation::Set, ids.len());
        spawn_call(env, &self.store, calls, |call| {
            let turns = turns(&call, CallKind::Set, &ids);
            async move {
                let sets = ids
                    .iter()
                    .zip(&jsons)
                    .zip(turns)
                    .map(|((id, json), turn)| (id.as_str(), json.0.as_str(), turn))
                    .collect();
                let outcomes = call.store().set_batch(sets).await;
                let outcomes = outcomes.into_iter().map(|set| set.map(|()| None));
                Ok(BatchReply::from(outcomes.collect::<Vec<_>>()))
            }
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(&self, env: &'env Env, id: String) -> Result<PromiseRaw<'env, ()>> {
        spawn_call(env, &self.store, (Operation::Delete, 1), |call| {
            let turn = call.store().turn(CallKind::Delete, &id);
            async move { call.store().delete(&id, turn).await }
        })
    }

    /// Several `delete`s at once: their commands leave together and one promise settles them.
    #[napi(ts_return_type = "Promise<BatchReply>")]
    pub fn delete_batch<'env>(
        &self,
        env: &'env Env,
        ids: Vec<String>,
    ) -> Result<PromiseRaw<'env, BatchReply>> {
        let calls = (Operation::Delete, ids.len());
        spawn_call(env, &self.store, calls, |call| {
            let turns = turns(&call, CallKind::Delete, &ids);
            async move {
                let store = call.store();
                let deletes = ids
                    .iter()
                    .zip(turns)
                    .map(|(id, turn)| async move { store.delete(id, turn).await.map(|()| None) });
                Ok(BatchReply::from(run_batch(deletes).await))
            }
        })
    }

    /// The user's conversations as one JSON array, newest first.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn list_by_user<'env>(
        &self,
        env: &'env Env,
        user_id: String,
    ) -> Result<PromiseRaw<'env, JsonText>> {
        let calls = (Operation::ListByUser, 1);
        spawn_call(env, &self.store, calls, |call| async move {
            call.store().list_by_user(&user_id, JsonText::from).await
        })
    }

    /// Lets the calls made before it finish, then closes the connection. Calls made after it
    /// are refused from the moment it is called, not from when the runtime gets to it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        self.store.begin_close();
        let store = self.store.clone();
        let close = AssertUnwindSafe(async move { store.close().await }).catch_unwind();
        env.spawn_future(async move {
            close
                .await
                .map_err(|payload| Error::new(Status::GenericFailure, panic_message(&*payload)))
        })
    }
}

/// Checks a Redis store's option values and the rules between them, with no URL and no
/// connection: `createConversationStore` runs it when it picks the in-memory store, so that a
/// bad value fails in development as it would in production. The TLS material itself (a PEM
/// that does not parse, a certificate without its key) is checked only by a Redis store.
#[napi]
// Exported to Node by napi's generated registration, which a test build leaves out.
#[cfg_attr(test, allow(dead_code))]
pub fn check_store_options(options: NativeStoreOptions) -> Result<()> {
    options.values().check().map(drop).map_err(js_error)
}

/// The in-memory store; `index.js` wraps it as `InMemoryConversationStore`.
#[napi]
pub struct NativeMemoryStore {
    store: MemoryStore,
}

#[napi]
impl NativeMemoryStore {
    #[napi(constructor)]
    pub fn new(options: NativeStoreOptions) -> Result<Self> {
        let store = MemoryStore::new(options.values().check().map_err(js_error)?);
        Ok(NativeMemoryStore { store })
    }

    #[napi(getter)]
    pub fn status(&self) -> StoreStatus {
        self.store.status().into()
    }

    #[napi(catch_unwind, ts_return_type = "string | null")]
    pub fn get(&self, id: String) -> Result<Option<JsonText>> {
        settle(|| self.store.get(&id, JsonText::from))
    }

    #[napi(catch_unwind)]
    pub fn set(&self, id: String, json: String) -> Result<()> {
        settle(|| self.store.set(&id, &json))
    }

    #[napi(catch_unwind)]
    pub fn delete(&self, id: String) -> Result<()> {
        settle(|| self.store.delete(&id))
    }

    #[napi(catch_unwind, ts_return_type = "string")]
    pub fn list_by_user(&self, user_id: String) -> Result<JsonText> {
        settle(|| self.store.list_by_user(&user_id, JsonText::from))
    }

    #[napi]
    pub fn close(&self) {
        self.store.close();
    }
}
