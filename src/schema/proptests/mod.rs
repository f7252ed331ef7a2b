//! Property tests of `validate_conversation` over generated JSON text: it never panics, and
//! every document it accepts is one V8's `JSON.parse` reads, with the `userId`, `externalId`,
//! `updatedAt` and `sdkConversationRef` the summary reports.
//!
//! V8 is the oracle: one `node` child process per test answers each accepted document, so a
//! disagreement fails inside the property and proptest shrinks it. serde_json stands in only
//! where it agrees with JSON.parse: its skipper for syntax (iterative, any depth, lone
//! surrogates, any number), and its `Value` except for the refusals listed in
//! `serde_value_diverges` (depth 128, lone surrogates, numbers beyond f64).
//!
//! The text is generated, not serialized, so it can hold what a `serde_json::Value` cannot:
//! lone surrogate escapes, 300-digit numbers, `1e400`, repeated keys, odd whitespace, nesting
//! thousands deep, and byte-level damage. Cases: `PROPTEST_CASES` (else each test's own
//! default); a failure prints the shrunk input and the `PROPTEST_RNG_SEED` that replays it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{
    Config, RngSeed, TestCaseError, TestCaseResult, TestError, TestRunner,
};
use serde::de::{Deserialize, IgnoredAny};

use super::{validate_conversation, ConversationSummary};

mod damage;
mod oracle;
mod text;

use damage::*;
use oracle::*;
use text::*;

/// A generated document, shown as its text when a case fails.
#[derive(Clone)]
pub(super) struct Doc(pub(super) String);

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} bytes) {:?}", self.0.len(), self.0)
    }
}

/// Runs `property` over `strategy`: `default_cases` unless PROPTEST_CASES says otherwise, from
/// PROPTEST_RNG_SEED or a fresh seed that a failure prints.
pub(super) fn run<S: Strategy>(
    default_cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> TestCaseResult,
) where
    S::Value: fmt::Debug,
{
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => RandomState::new().hash_one(std::time::SystemTime::now()),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, property) {
        Ok(()) => {}
        Err(TestError::Fail(why, minimal)) => {
            panic!("{why}\nminimal failing input: {minimal:?}\nreplay: PROPTEST_RNG_SEED={seed}")
        }
        Err(TestError::Abort(why)) => panic!("aborted: {why} (PROPTEST_RNG_SEED={seed})"),
    }
}

// ------------------------------------------------------------------ the tests

#[test]
fn generated_conversations_are_accepted_and_read_alike_by_v8() {
    let v8 = RefCell::new(V8::start());
    let strategy = (conversation(), spacing()).prop_map(|(c, ws)| Doc(object(c).render(&ws)));
    run(300, strategy, |Doc(doc)| {
        prop_assert!(
            check(&v8, &doc)?,
            "a valid conversation was refused: {:?}",
            validate_conversation(&doc).err()
        );
        Ok(())
    });
}

#[test]
fn mutated_conversations_never_panic_and_what_is_accepted_v8_reads_alike() {
    let v8 = RefCell::new(V8::start());
    let (cases, accepted) = (Cell::new(0u32), Cell::new(0u32));
    let strategy = (
        conversation(),
        prop::collection::vec(mutation(), 1..4),
        spacing(),
    )
        .prop_map(|(c, mutations, ws)| Doc(mutated(c, &mutations, &ws)));
    run(1000, strategy, |Doc(doc)| {
        cases.set(cases.get() + 1);
        if check(&v8, &doc)? {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    eprintln!(
        "mutated conversations: {} of {} accepted",
        accepted.get(),
        cases.get()
    );
    // Not vacuous: mutations that keep a document valid (an unknown field replaced, a text
    // edit in whitespace) must reach the V8 check often enough.
    assert!(
        accepted.get() * 20 >= cases.get(),
        "only {} of {} mutated documents were accepted: the V8 check saw too few",
        accepted.get(),
        cases.get()
    );
}

#[test]
fn arbitrary_json_never_panics_and_what_is_accepted_v8_reads_alike() {
    let v8 = RefCell::new(V8::start());
    let strategy = (
        prop_oneof![
            1 => json_value(),
            3 => prop::collection::vec((key(), json_value()), 0..14).prop_map(Json::Object),
        ],
        spacing(),
    )
        .prop_map(|(json, ws)| Doc(json.render(&ws)));
    run(1000, strategy, |Doc(doc)| check(&v8, &doc).map(|_| ()));
}

#[test]
fn nesting_thousands_deep_is_accepted_where_any_json_goes_and_refused_elsewhere() {
    let v8 = RefCell::new(V8::start());
    let strategy = (
        conversation(),
        1000usize..=3000,
        prop_oneof![Just(Nest::Arrays), Just(Nest::Objects), Just(Nest::Mixed)],
        select(Place::ALL.to_vec()),
        prop::bool::weighted(0.8),
        spacing(),
    )
        .prop_map(|(c, depth, nest, place, balanced, ws)| {
            deep_document(c, depth, nest, place, balanced, &ws)
        });
    run(150, strategy, |deep| {
        let accepted = check(&v8, &deep.doc.0)?;
        let expected = deep.balanced && deep.place.free_form();
        prop_assert_eq!(
            accepted,
            expected,
            "{:?} at depth {} ({}): {:?}",
            deep.place,
            deep.depth,
            if deep.balanced {
                "balanced"
            } else {
                "one bracket short"
            },
            validate_conversation(&deep.doc.0).err()
        );
        Ok(())
    });
}
