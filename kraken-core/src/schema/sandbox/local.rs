//! [`super::Mode::InProcess`]: evaluation on a few long-lived threads with
//! the stack the interpreter wants. Threads made for one evaluation, or a
//! fresh stack per call, would fault in new stack pages every time (that
//! cost about as much as a typical evaluation).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value as Json;

use crate::schema::eval::{EVAL_STACK_BYTES, evaluate_in_process};
use crate::schema::{Limits, SchemaError, SchemaErrorKind};

type Job = Box<dyn FnOnce() + Send>;

/// Threads evaluating in this process, started on first use.
pub(super) struct Threads {
    /// Where jobs go; `None` until the threads are started.
    jobs: Mutex<Option<Sender<Job>>>,
}

impl Threads {
    pub(super) fn new() -> Threads {
        Threads {
            jobs: Mutex::new(None),
        }
    }

    pub(super) fn evaluate(
        &self,
        code: &str,
        ctx: &Json,
        limits: &Limits,
    ) -> Result<Json, SchemaError> {
        let (code, ctx, limits) = (code.to_owned(), ctx.clone(), limits.clone());
        let (answer, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = answer.send(evaluate_in_process(&code, &ctx, &limits));
        });
        if let Err(mpsc::SendError(job)) = self.sender().send(job) {
            // No thread could be started: evaluate here (on a stack of its
            // own, see `evaluate_in_process`).
            job();
        }
        result.recv().unwrap_or_else(|_| {
            Err(SchemaError::new(
                SchemaErrorKind::Unavailable,
                "the schema evaluation thread stopped",
            ))
        })
    }

    fn sender(&self) -> Sender<Job> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.get_or_insert_with(|| {
            let (send, receive) = mpsc::channel::<Job>();
            let receive = Arc::new(Mutex::new(receive));
            let count = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
            for i in 0..count {
                let receive = receive.clone();
                let _ = std::thread::Builder::new()
                    .name(format!("schema-eval-{i}"))
                    .stack_size(EVAL_STACK_BYTES)
                    .spawn(move || serve(&receive));
            }
            // With no thread started, `receive` is dropped here and sending
            // fails: the caller then evaluates itself.
            send
        })
        .clone()
    }
}

/// Run jobs until the sender goes away (the sandbox is dropped).
fn serve(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
