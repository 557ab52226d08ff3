//! The adapter between a [`Transform`] and the wire: config parsing, IPC decoding of inputs,
//! encoding of outputs and the schema check. The component glue and the native test harness both
//! go through it, so a plugin tested natively behaves the same as a component.

use std::sync::Arc;

use crate::ipc::{BatchDecoder, BatchEncoder};
use crate::{Error, RecordBatch, Transform, parse_config};

/// One opened transform and its two IPC streams.
pub struct Session<T: Transform> {
    transform: T,
    input: BatchDecoder,
    output: BatchEncoder,
}

impl<T: Transform> Session<T> {
    /// Opens `T` with a JSON config and an IPC input schema; returns the output schema message.
    /// Input payloads are fully validated.
    pub fn open(config: &str, input_schema: &[u8]) -> Result<(Self, Vec<u8>), Error> {
        let input = BatchDecoder::new(input_schema)
            .map_err(|e| Error::internal(format!("undecodable input schema: {e}")))?;
        Self::open_with(config, input)
    }

    /// Like [`open`](Self::open), but input payloads are not re-validated (only their framing
    /// is checked): the component uses it, because the host sends only batches it encoded from
    /// valid arrays of the schema it gave.
    ///
    /// # Safety
    /// Every payload given to [`process`](Self::process) must hold valid Arrow data.
    pub unsafe fn open_trusting_input(
        config: &str,
        input_schema: &[u8],
    ) -> Result<(Self, Vec<u8>), Error> {
        // SAFETY: passed on to the caller.
        let input = unsafe { BatchDecoder::new_trusted(input_schema) }
            .map_err(|e| Error::internal(format!("undecodable input schema: {e}")))?;
        Self::open_with(config, input)
    }

    fn open_with(config: &str, input: BatchDecoder) -> Result<(Self, Vec<u8>), Error> {
        let config = parse_config::<T>(config)?;
        let transform = T::open(config, input.schema().clone())?;
        let (output, schema_message) = BatchEncoder::new(transform.output_schema())?;
        Ok((
            Self {
                transform,
                input,
                output,
            },
            schema_message,
        ))
    }

    /// Processes one IPC batch payload.
    pub fn process(&mut self, payload: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        let batch = self
            .input
            .decode_input(crate::ipc::Buffer::from_vec(payload))
            .map_err(|e| Error::internal(format!("undecodable input batch: {e}")))?;
        if let Some(keep) = self.transform.select(&batch)? {
            return Ok(self
                .output
                .encode_selection(&batch, &keep)
                .map_err(|e| Error::internal(format!("cannot send the selection: {e}")))?
                .into_iter()
                .collect());
        }
        // Output columns that are these very arrays go back as references (passthrough frames).
        let input = batch.columns().to_vec();
        let output = self.transform.process(batch)?;
        let stand_ins = self.input.stand_ins().to_vec();
        self.encode(output, &input, &stand_ins)
    }

    /// Finishes the transform.
    pub fn finish(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        let output = self.transform.finish()?;
        self.encode(output, &[], &[])
    }

    fn encode(
        &mut self,
        batches: Vec<RecordBatch>,
        input: &[arrow_array::ArrayRef],
        stand_ins: &[usize],
    ) -> Result<Vec<Vec<u8>>, Error> {
        batches
            .iter()
            .filter(|batch| batch.num_rows() > 0)
            .map(|batch| {
                self.output
                    .encode_passthrough_exact(batch, input, stand_ins)
                    .map_err(|e| {
                        Error::internal(format!("plugin emitted a batch it did not declare: {e}"))
                    })
            })
            .collect()
    }

    /// The declared output schema.
    pub fn output_schema(&self) -> &Arc<arrow_schema::Schema> {
        self.output.schema()
    }
}

/// The component side: a global slot holding the instance's one session, and the conversions
/// between SDK and WIT types. Each instance serves one task, so one slot suffices.
#[cfg(target_arch = "wasm32")]
pub mod guest {
    use std::sync::Mutex;

    use super::Session;
    use crate::__private::bindings::exports::weir::plugin::transform as wit;
    use crate::{Error, Transform, parse_config};

    impl From<Error> for wit::Error {
        fn from(e: Error) -> Self {
            match e {
                Error::InvalidConfig(message) => wit::Error::InvalidConfig(message),
                Error::InvalidInput {
                    message,
                    row,
                    column,
                } => wit::Error::InvalidInput(wit::InputError {
                    message,
                    row,
                    column,
                }),
                Error::Internal(message) => wit::Error::Internal(message),
            }
        }
    }

    pub fn metadata<T: Transform>(
        name: &str,
        version: &str,
        description: &str,
    ) -> wit::PluginMetadata {
        let m = crate::metadata::<T>(name, version, description);
        wit::PluginMetadata {
            name: m.name,
            version: m.version,
            description: m.description,
            config_schema: m.config_schema,
            input_columns: m.input_columns,
        }
    }

    pub fn input_columns<T: Transform>(config: &str) -> Result<Option<Vec<String>>, wit::Error> {
        Ok(T::input_columns(&parse_config::<T>(config)?))
    }

    pub struct Slot<T: Transform>(Mutex<Option<Session<T>>>);

    impl<T: Transform> Slot<T> {
        pub const fn new() -> Self {
            Self(Mutex::new(None))
        }

        pub fn open(&self, config: &str, input_schema: &[u8]) -> Result<Vec<u8>, wit::Error> {
            let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_some() {
                return Err(Error::internal("open called twice on one instance").into());
            }
            // SAFETY: the host encodes every batch it sends from valid arrays of the schema it
            // gave (the contract in wit/plugin.wit). Were it not so, only this sandboxed
            // instance's own memory would be at stake.
            let (session, schema) = unsafe { Session::open_trusting_input(config, input_schema)? };
            *slot = Some(session);
            Ok(schema)
        }

        fn with<R>(
            &self,
            f: impl FnOnce(&mut Session<T>) -> Result<R, Error>,
        ) -> Result<R, wit::Error> {
            let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let session = slot
                .as_mut()
                .ok_or_else(|| Error::internal("called before open"))?;
            Ok(f(session)?)
        }

        pub fn process(&self, batch: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
            self.with(|session| session.process(batch))
        }

        pub fn finish(&self) -> Result<Vec<Vec<u8>>, wit::Error> {
            self.with(|session| session.finish())
        }
    }

    // Each instance runs on one thread at a time; the host never shares one across threads.
    unsafe impl<T: Transform> Sync for Slot<T> {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch};

    use super::Session;
    use crate::ipc::{BatchDecoder, BatchEncoder, Buffer, encode_schema};
    use crate::{Error, SchemaRef, Transform};

    /// Keeps even ids, through `select`.
    struct Evens(SchemaRef);

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct NoConfig {}

    impl Transform for Evens {
        type Config = NoConfig;
        fn open(_: NoConfig, input: SchemaRef) -> Result<Self, Error> {
            Ok(Self(input))
        }
        fn output_schema(&self) -> SchemaRef {
            self.0.clone()
        }
        fn select(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, Error> {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            Ok(Some(
                ids.iter().map(|id| id.map(|id| id % 2 == 0)).collect(),
            ))
        }
    }

    #[test]
    fn a_row_filter_sends_only_its_selection_and_processes_natively_the_same() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
        let input = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        let (mut session, output_schema) =
            Session::<Evens>::open("{}", &encode_schema(&input.schema()).unwrap()).unwrap();
        let (mut encoder, _) = BatchEncoder::new(input.schema()).unwrap();
        let payloads = session.process(encoder.encode(&input).unwrap()).unwrap();
        assert_eq!(payloads.len(), 1);
        assert!(payloads[0].starts_with(b"WEIRSEL1"));
        assert_eq!(
            payloads[0].len(),
            64 + 125,
            "a header and a 1,000-bit bitmap"
        );

        let mut decoder = BatchDecoder::new(&output_schema).unwrap();
        let decoded = decoder
            .decode_answer(Buffer::from_vec(payloads[0].clone()), Some(&input))
            .unwrap();
        // `process` (the default, as a native run calls it) gives the same batch.
        let mut native = Evens(input.schema());
        assert_eq!(
            native.process(input.clone()).unwrap(),
            vec![decoded.clone()]
        );
        assert_eq!(decoded.num_rows(), 500);
    }
}
