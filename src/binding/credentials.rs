//! The `credentials` option: a JavaScript function, called from the runtime through a
//! threadsafe function that does not keep the event loop alive, whose promise is awaited in
//! Rust. `index.js` wraps the user's provider so that it never throws and always resolves to
//! this shape, with `error` set when the provider failed or gave something unusable.

use std::sync::Arc;

use napi::bindgen_prelude::{Function, Promise};
use napi::Result;
use napi_derive::napi;

use crate::store::{CredentialSource, CredentialsProvider, Token};

/// One answer of the credentials provider, as `index.js` checked it.
#[napi(object)]
pub struct NativeCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Epoch milliseconds.
    pub expires_at: Option<f64>,
    /// Epoch milliseconds: when to fetch new ones.
    pub refresh_at: Option<f64>,
    /// Why there are none (the provider threw, or gave a result of the wrong shape).
    pub error: Option<String>,
}

type Fetch = dyn Fn() -> futures_util::future::BoxFuture<'static, std::result::Result<Token, String>>
    + Send
    + Sync;

struct JsCredentials {
    fetch: Box<Fetch>,
}

impl CredentialSource for JsCredentials {
    fn fetch(
        &self,
    ) -> futures_util::future::BoxFuture<'static, std::result::Result<Token, String>> {
        (self.fetch)()
    }
}

/// The provider as the store calls it.
pub(super) fn js_credentials(
    provider: Function<(), Promise<NativeCredentials>>,
) -> Result<CredentialsProvider> {
    let provider = Arc::new(
        provider
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?,
    );
    let fetch = move || {
        let provider = provider.clone();
        let answer = async move {
            let promise = provider
                .call_async(())
                .await
                .map_err(|e| format!("it could not be called: {}", e.reason))?;
            let answer = promise.await.map_err(|e| e.reason)?;
            if let Some(error) = answer.error {
                return Err(error);
            }
            let password = answer
                .password
                .ok_or_else(|| "its result has no password".to_owned())?;
            Ok(Token {
                username: answer.username,
                password,
                expires_at: answer.expires_at,
                refresh_at: answer.refresh_at,
            })
        };
        Box::pin(answer) as futures_util::future::BoxFuture<'static, _>
    };
    Ok(CredentialsProvider(Arc::new(JsCredentials {
        fetch: Box::new(fetch),
    })))
}
