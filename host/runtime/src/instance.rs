//! One plugin instance: a store, its sandbox state, and the checked calls of the contract.
//!
//! An instance moves Fresh → Open → Finished. Any failure moves it to Failed for good: a trapped
//! or limit-hit instance may hold corrupt state, so it is never called again.
//!
//! Copies on the data path. In: the batch is IPC-encoded into pieces that share its buffers (no
//! copy) and gathered straight into the guest's memory (one copy); the guest decodes it in place
//! without re-validating it (the host built it from valid arrays). Out: the guest IPC-encodes
//! its output (one copy), the host lifts it out of guest memory (one copy) and decodes it in
//! place with full validation. Output columns that are the input's own arrays, passed through,
//! cross as references instead (passthrough frames, [`weir_sdk::ipc`]): the host reuses the
//! arrays it sent, with no copy and nothing to validate but their type and length.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use wasmtime::component::Func;
use wasmtime::{Store, Trap};
use weir_sdk::ipc::{BatchDecoder, BatchEncoder, ProjectingEncoder, is_selection};

use crate::bindings::Plugin as Bindings;
use crate::bindings::exports::weir::plugin::transform as wit;
use crate::error::{Call, ErrorKind, PluginError};
use crate::gather::{Gather, Payloads};
use crate::imports::HostCallRefused;
use crate::runtime::PluginInner;
use crate::sandbox::HostState;
use crate::{Limits, Metadata};

// One per instance, so the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum State {
    Fresh,
    Open {
        input: BatchEncoder,
        /// Set when the plugin declared the input columns it reads: batches then cross without
        /// the columns it does not read.
        projection: Option<ProjectingEncoder>,
        output: BatchDecoder,
    },
    Finished,
    Failed,
}

/// A live instance of a plugin, serving one task. Not shared across threads at once.
pub struct PluginInstance {
    plugin: Arc<PluginInner>,
    limits: Limits,
    store: Store<HostState>,
    bindings: Bindings,
    /// The `process` and `finish` exports, called through [`Gather`] and [`Payloads`].
    process: Func,
    finish: Func,
    state: State,
    batches: u64,
    cpu_used: Duration,
}

impl PluginInstance {
    pub(crate) fn new(plugin: Arc<PluginInner>) -> Result<Self, PluginError> {
        let limits = plugin.limits.clone();
        Self::with_limits(plugin, limits)
    }

    pub(crate) fn with_limits(
        plugin: Arc<PluginInner>,
        mut limits: Limits,
    ) -> Result<Self, PluginError> {
        // The engine fixes the stack and the pooling slot size; an instance may only tighten.
        limits.memory_bytes = limits.memory_bytes.min(plugin.limits.memory_bytes);
        limits.stack_bytes = plugin.limits.stack_bytes;
        let mut store = Store::new(&plugin.engine, HostState::new(&limits));
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(limits.batch_cpu, plugin.epoch_tick));
        let instantiated = plugin
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .and_then(|instance| {
                let bindings = plugin.indices.load(&mut store, &instance)?;
                let process = instance
                    .get_func(&mut store, plugin.process_index)
                    .ok_or_else(|| wasmtime::format_err!("no `process` export"))?;
                let finish = instance
                    .get_func(&mut store, plugin.finish_index)
                    .ok_or_else(|| wasmtime::format_err!("no `finish` export"))?;
                Ok((bindings, process, finish))
            });
        let (bindings, process, finish) = instantiated.map_err(|e| {
            let message = format!("{e:#}");
            let kind = if message.contains("concurrent") {
                ErrorKind::Capacity(plugin.max_instances)
            } else {
                ErrorKind::InvalidComponent(format!("instantiation failed: {message}"))
            };
            PluginError::new(Some(plugin.id.clone()), Call::Load, kind)
        })?;
        Ok(Self {
            plugin,
            limits,
            store,
            bindings,
            process,
            finish,
            state: State::Fresh,
            batches: 0,
            cpu_used: Duration::ZERO,
        })
    }

    /// The plugin's self-description.
    pub fn metadata(&mut self) -> Result<Metadata, PluginError> {
        let m = self.call(Call::Metadata, |store, b| {
            b.weir_plugin_transform().call_metadata(store)
        })?;
        Ok(Metadata {
            name: m.name,
            version: m.version,
            description: m.description,
            config_schema: m.config_schema,
            input_columns: m.input_columns,
        })
    }

    /// The input columns the plugin reads under `config` (`None`: all).
    pub fn input_columns(&mut self, config: &str) -> Result<Option<Vec<String>>, PluginError> {
        let result = self.call(Call::InputColumns, |store, b| {
            b.weir_plugin_transform().call_input_columns(store, config)
        })?;
        self.reported(Call::InputColumns, result)
    }

    /// Opens the transform; returns its declared output schema.
    pub fn open(&mut self, config: &str, input: SchemaRef) -> Result<SchemaRef, PluginError> {
        if !matches!(self.state, State::Fresh) {
            return Err(self.not_open(Call::Open));
        }
        let (encoder, schema_message) = BatchEncoder::new(input.clone())
            .map_err(|e| self.protocol(Call::Open, &format!("input schema not encodable: {e}")))?;
        let projection = match self.input_columns(config)? {
            Some(reads) => ProjectingEncoder::new(input, &reads).map_err(|e| {
                self.protocol(Call::Open, &format!("input schema not encodable: {e}"))
            })?,
            None => None,
        };
        let result = self.call(Call::Open, |store, b| {
            b.weir_plugin_transform()
                .call_open(store, config, &schema_message)
        })?;
        let output_schema = self.reported(Call::Open, result)?;
        let decoder = BatchDecoder::new(&output_schema).map_err(|e| {
            self.fail(
                Call::Open,
                ErrorKind::InvalidOutput(format!(
                    "declared output schema is not a valid IPC schema message: {e}"
                )),
            )
        })?;
        let schema = decoder.schema().clone();
        self.state = State::Open {
            input: encoder,
            projection,
            output: decoder,
        };
        Ok(schema)
    }

    /// Processes one batch (of the schema given to `open`).
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>, PluginError> {
        let index = self.batches;
        self.batches += 1;
        let State::Open {
            input, projection, ..
        } = &mut self.state
        else {
            return Err(self.not_open(Call::Process));
        };
        let encoded = match projection {
            Some(projection) => projection.encode_pieces(batch),
            None => input.encode_pieces(batch),
        };
        let pieces = match encoded {
            Ok(pieces) => pieces,
            Err(e) => {
                return Err(self.protocol(Call::Process, &format!("input batch {index}: {e}")));
            }
        };
        let process = self.process;
        let result = self.call(Call::Process, |store, _| {
            let typed = process.typed::<(Gather<'_>,), (Result<Payloads, wit::Error>,)>(&*store)?;
            let (result,) = typed.call(store, (Gather { pieces: &pieces },))?;
            Ok(result)
        });
        self.outputs(Call::Process, result, Some(batch))
            .map_err(|e| e.on_batch(index))
    }

    /// Finishes the transform, returning what it still held.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, PluginError> {
        if !matches!(self.state, State::Open { .. }) {
            return Err(self.not_open(Call::Finish));
        }
        let finish = self.finish;
        let result = self.call(Call::Finish, |store, _| {
            let typed = finish.typed::<(), (Result<Payloads, wit::Error>,)>(&*store)?;
            let (result,) = typed.call(store, ())?;
            Ok(result)
        });
        let batches = self.outputs(Call::Finish, result, None)?;
        self.state = State::Finished;
        Ok(batches)
    }

    /// What the plugin wrote to stderr so far (capped).
    pub fn stderr(&self) -> String {
        self.store.data().stderr.contents()
    }

    /// Time spent inside the plugin so far.
    pub fn cpu_used(&self) -> Duration {
        self.cpu_used
    }

    /// Checks and decodes what `process` (given `input`) or `finish` returned.
    fn outputs(
        &mut self,
        call: Call,
        result: Result<Result<Payloads, wit::Error>, PluginError>,
        input: Option<&RecordBatch>,
    ) -> Result<Vec<RecordBatch>, PluginError> {
        let Payloads(payloads) = self.reported(call, result?)?;
        // The bytes that crossed, checked before decoding anything; input columns repeated by
        // passthrough frames are added as they are decoded: they cost no copy, but they are
        // output all the same (a plugin could repeat one batch a thousand times).
        let mut bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
        let bytes_limit = |actual| ErrorKind::OutputLimit {
            what: "bytes",
            actual,
            limit_name: "limits.max_output_bytes",
            limit: self.limits.max_output_bytes,
        };
        if bytes > self.limits.max_output_bytes {
            return Err(self.fail(call, bytes_limit(bytes)));
        }
        let State::Open {
            output, projection, ..
        } = &mut self.state
        else {
            unreachable!("outputs are only read from an open instance");
        };
        let mut input_sizes: Option<Vec<u64>> = None;
        let mut batches = Vec::with_capacity(payloads.len());
        let mut rows = 0u64;
        let mut violation = None;
        for (i, payload) in payloads.into_iter().enumerate() {
            let selection = is_selection(&payload);
            let answer = output
                .decode_answer(payload, input)
                .map_err(|e| {
                    format!(
                        "output batch {i} does not match the declared output schema or is \
                         malformed IPC: {e}"
                    )
                })
                .and_then(|batch| {
                    if let (Some(projection), false) = (projection.as_ref(), selection) {
                        projection
                            .check_answer(&batch, input)
                            .map_err(|e| format!("output batch {i}: {e}"))?;
                    }
                    Ok(batch)
                });
            match answer {
                Ok(batch) => {
                    rows += batch.num_rows() as u64;
                    if let Some(input) = input {
                        let sizes = input_sizes.get_or_insert_with(|| {
                            input.columns().iter().map(slice_bytes).collect()
                        });
                        bytes += repeated_bytes(&batch, input, sizes);
                    }
                    batches.push(batch);
                    if bytes > self.limits.max_output_bytes {
                        violation = Some(bytes_limit(bytes));
                        break;
                    }
                }
                Err(message) => {
                    violation = Some(ErrorKind::InvalidOutput(message));
                    break;
                }
            }
        }
        if violation.is_none() && rows > self.limits.max_output_rows {
            violation = Some(ErrorKind::OutputLimit {
                what: "rows",
                actual: rows,
                limit_name: "limits.max_output_rows",
                limit: self.limits.max_output_rows,
            });
        }
        match violation {
            Some(kind) => Err(self.fail(call, kind)),
            None => Ok(batches),
        }
    }

    /// Maps an error the plugin returned through the contract.
    fn reported<T>(&mut self, call: Call, result: Result<T, wit::Error>) -> Result<T, PluginError> {
        result.map_err(|e| {
            let kind = match e {
                wit::Error::InvalidConfig(message) => ErrorKind::InvalidConfig(message),
                wit::Error::InvalidInput(e) => ErrorKind::InvalidInput {
                    message: e.message,
                    row: e.row,
                    column: e.column,
                },
                wit::Error::Internal(message) => ErrorKind::Internal(message),
            };
            self.fail(call, kind)
        })
    }

    /// Runs one call under the CPU deadline, classifying traps.
    fn call<R>(
        &mut self,
        call: Call,
        f: impl FnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        if matches!(self.state, State::Failed) {
            return Err(self.not_open(call));
        }
        let task_left = self.limits.task_cpu.saturating_sub(self.cpu_used);
        let (limit, allowed) = if self.limits.batch_cpu <= task_left {
            ("limits.batch_cpu (per batch)", self.limits.batch_cpu)
        } else {
            ("limits.task_cpu (per task)", self.limits.task_cpu)
        };
        self.store
            .set_epoch_deadline(ticks(task_left.min(allowed), self.plugin.epoch_tick));
        self.store.data_mut().limiter.refused = None;
        let started = Instant::now();
        let result = f(&mut self.store, &self.bindings);
        self.cpu_used += started.elapsed();
        result.map_err(|e| {
            let kind = self.classify(e, limit, allowed);
            self.fail(call, kind)
        })
    }

    fn classify(
        &mut self,
        error: wasmtime::Error,
        limit: &'static str,
        allowed: Duration,
    ) -> ErrorKind {
        let limiter = &mut self.store.data_mut().limiter;
        if let Some(requested) = limiter.refused.take() {
            return ErrorKind::MemoryLimit {
                requested,
                limit: limiter.limit,
            };
        }
        if let Some(refused) = error.downcast_ref::<HostCallRefused>() {
            return ErrorKind::HostCall {
                function: refused.function,
                rule: refused.rule.clone(),
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => ErrorKind::CpuLimit { limit, allowed },
            Some(Trap::StackOverflow) => ErrorKind::StackOverflow {
                limit: self.limits.stack_bytes,
            },
            Some(Trap::UnreachableCodeReached) => ErrorKind::Panic {
                message: panic_message(&self.stderr()),
            },
            Some(Trap::MemoryOutOfBounds) => ErrorKind::Trap {
                trap: "out-of-bounds memory access (also the sign of a guest shadow-stack overflow from deep recursion)".into(),
            },
            Some(trap) => ErrorKind::Trap {
                trap: trap.to_string(),
            },
            None => ErrorKind::Trap {
                trap: format!("{error:#}"),
            },
        }
    }

    /// Marks the instance failed and builds the error.
    fn fail(&mut self, call: Call, kind: ErrorKind) -> PluginError {
        self.state = State::Failed;
        let stderr = self.stderr();
        let mut error = PluginError::new(Some(self.plugin.id.clone()), call, kind);
        error.stderr = (!stderr.is_empty()).then(|| tail(&stderr, 20));
        error
    }

    /// The error for a call the instance's state does not allow.
    fn not_open(&mut self, call: Call) -> PluginError {
        let message = match (&self.state, call) {
            (State::Failed, _) => "the instance was discarded after an earlier failure",
            (_, Call::Open) => "open called twice",
            (State::Finished, _) => "the instance has already finished",
            _ => "called before open",
        };
        self.protocol(call, message)
    }

    fn protocol(&mut self, call: Call, message: &str) -> PluginError {
        self.fail(call, ErrorKind::Protocol(message.to_string()))
    }
}

impl PluginError {
    fn on_batch(mut self, batch: u64) -> Self {
        self.batch = Some(batch);
        self
    }
}

/// The bytes of the part of its buffers an array uses.
fn slice_bytes(array: &ArrayRef) -> u64 {
    array
        .to_data()
        .get_slice_memory_size()
        .unwrap_or_else(|_| array.get_array_memory_size()) as u64
}

/// The bytes of `batch`'s columns that are `input`'s own arrays (`sizes`: of each input column).
fn repeated_bytes(batch: &RecordBatch, input: &RecordBatch, sizes: &[u64]) -> u64 {
    batch
        .columns()
        .iter()
        .filter_map(|column| {
            input
                .columns()
                .iter()
                .position(|candidate| Arc::ptr_eq(column, candidate))
        })
        .map(|i| sizes[i])
        .sum()
}

fn ticks(limit: Duration, tick: Duration) -> u64 {
    (limit.as_nanos() / tick.as_nanos().max(1)).max(1) as u64 + 1
}

/// The panic message from a Rust guest's stderr, or a note that there was none.
fn panic_message(stderr: &str) -> String {
    let Some(at) = stderr.rfind("panicked at ") else {
        return match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => format!("aborted (wasm `unreachable`); last stderr line: {line}"),
            None => "aborted (wasm `unreachable`) without a message".into(),
        };
    };
    let rest = &stderr[at + "panicked at ".len()..];
    let mut lines = rest.lines();
    let location = lines.next().unwrap_or_default().trim_end_matches(':');
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
    format!("{} (at {location})", message.join("\n").trim())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
