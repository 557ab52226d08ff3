//! A native test harness: run a [`Transform`] on [`RecordBatch`]es without building Wasm.
//!
//! It drives the transform through the same session glue a component uses (config parsing, IPC
//! framing in both directions, the declared-schema check), so what passes here behaves the same
//! inside the host.

use crate::ipc::{BatchDecoder, Buffer, encode_schema};
use crate::session::Session;
use crate::{Error, RecordBatch, SchemaRef, Transform};

/// An opened transform under test.
pub struct Harness<T: Transform> {
    session: Session<T>,
    output: BatchDecoder,
    input_schema: SchemaRef,
}

impl<T: Transform> Harness<T> {
    /// Opens `T` with a JSON `config` for input of `schema`.
    pub fn open(config: &str, schema: SchemaRef) -> Result<Self, Error> {
        let schema_message = encode_schema(&schema)?;
        let (session, output_schema) = Session::<T>::open(config, &schema_message)?;
        let output = BatchDecoder::new(&output_schema)?;
        Ok(Self {
            session,
            output,
            input_schema: schema,
        })
    }

    /// The declared output schema.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.schema().clone()
    }

    /// Processes one batch, which must have the schema the harness was opened with.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        if batch.schema().fields() != self.input_schema.fields() {
            return Err(Error::internal(
                "test batch does not match the opened schema",
            ));
        }
        let (mut encoder, _) = crate::ipc::BatchEncoder::new(self.input_schema.clone())?;
        let payload = encoder.encode(batch)?;
        let out = self.session.process(payload)?;
        self.decode(out, Some(batch))
    }

    /// Finishes the transform.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, Error> {
        let out = self.session.finish()?;
        self.decode(out, None)
    }

    fn decode(
        &mut self,
        payloads: Vec<Vec<u8>>,
        input: Option<&RecordBatch>,
    ) -> Result<Vec<RecordBatch>, Error> {
        payloads
            .into_iter()
            .map(|p| {
                self.output
                    .decode_answer(Buffer::from_vec(p), input)
                    .map_err(Error::from)
            })
            .collect()
    }
}

/// Runs `T` over `batches` (all of one schema) and returns everything it emitted, finish included.
pub fn run<T: Transform>(config: &str, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, Error> {
    let Some(first) = batches.first() else {
        return Err(Error::internal("testing::run needs at least one batch"));
    };
    let mut harness = Harness::<T>::open(config, first.schema())?;
    let mut out = Vec::new();
    for batch in batches {
        out.extend(harness.process(batch)?);
    }
    out.extend(harness.finish()?);
    Ok(out)
}

/// Opens `T` with `config` and asserts it fails with [`Error::InvalidConfig`] whose message
/// mentions every one of `needles` (the field, column or value at fault).
///
/// # Panics
/// When the config is accepted, fails otherwise, or the message lacks a needle.
pub fn assert_config_error<T: Transform>(config: &str, schema: SchemaRef, needles: &[&str]) {
    let message = match Harness::<T>::open(config, schema) {
        Err(Error::InvalidConfig(message)) => message,
        Err(other) => panic!("{config}: expected a config error, got {other:?}"),
        Ok(_) => panic!("{config} was accepted"),
    };
    for needle in needles {
        assert!(
            message.contains(needle),
            "{config}: {message} should mention {needle}"
        );
    }
}

/// A small deterministic generator (SplitMix64) for randomized tests: the same seed gives the
/// same data on every machine.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
