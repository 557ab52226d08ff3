//! A native test harness: run a [`Transform`] on [`RecordBatch`]es without building Wasm.
//!
//! It drives the transform through the same session glue a component uses (config parsing, IPC
//! framing in both directions, the declared-schema check), so what passes here behaves the same
//! inside the host.

use crate::ipc::{
    BatchDecoder, BatchEncoder, Buffer, ProjectingEncoder, encode_schema, is_selection,
};
use crate::session::Session;
use crate::{Error, RecordBatch, SchemaRef, Transform, parse_config};

/// An opened transform under test.
pub struct Harness<T: Transform> {
    session: Session<T>,
    output: BatchDecoder,
    input_schema: SchemaRef,
    /// Set when the transform declares its input columns: the host then sends only those, and
    /// so does the harness.
    projection: Option<ProjectingEncoder>,
}

impl<T: Transform> Harness<T> {
    /// Opens `T` with a JSON `config` for input of `schema`.
    pub fn open(config: &str, schema: SchemaRef) -> Result<Self, Error> {
        let schema_message = encode_schema(&schema)?;
        let (session, output_schema) = Session::<T>::open(config, &schema_message)?;
        let output = BatchDecoder::new(&output_schema)?;
        let projection = match T::input_columns(&parse_config::<T>(config)?) {
            Some(reads) => ProjectingEncoder::new(schema.clone(), &reads)?,
            None => None,
        };
        Ok(Self {
            session,
            output,
            input_schema: schema,
            projection,
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
        let payload = match &mut self.projection {
            Some(projection) => projection.encode(batch)?,
            None => BatchEncoder::new(self.input_schema.clone())?
                .0
                .encode(batch)?,
        };
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
                let selection = is_selection(&p);
                let answer = self.output.decode_answer(Buffer::from_vec(p), input)?;
                if let (Some(projection), false) = (&self.projection, selection) {
                    projection.check_answer(&answer, input)?;
                }
                Ok(answer)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array};

    use super::*;

    /// Declares that it reads `a` only, and either passes rows through by a selection or (with
    /// `copy`) copies them, which also copies the stand-in of `b`.
    struct ReadsA {
        schema: SchemaRef,
        copy: bool,
        stale: bool,
        previous: Option<RecordBatch>,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Config {
        copy: bool,
        /// Emit each batch one call later (holding rows it does not read).
        #[serde(default)]
        stale: bool,
    }

    impl Transform for ReadsA {
        type Config = Config;
        const INPUT_COLUMNS: Option<&'static [&'static str]> = Some(&["a"]);

        fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
            Ok(Self {
                schema: input,
                copy: config.copy,
                stale: config.stale,
                previous: None,
            })
        }
        fn output_schema(&self) -> SchemaRef {
            self.schema.clone()
        }
        fn select(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, Error> {
            if self.copy || self.stale {
                return Ok(None);
            }
            // `b` is not declared: the transform sees only nulls there.
            assert_eq!(batch.column(1).null_count(), batch.num_rows());
            let a = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            Ok(Some(a.iter().map(|v| v.map(|v| v > 1)).collect()))
        }
        fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
            if self.stale {
                return Ok(self.previous.replace(batch).into_iter().collect());
            }
            Ok(vec![batch.slice(0, 1)])
        }
    }

    #[test]
    fn undeclared_columns_cross_as_stand_ins_and_may_only_pass_through() {
        let schema = arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("a", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("b", arrow_schema::DataType::Int64, true),
        ]);
        let input = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
                Arc::new(Int64Array::from(vec![10, 20, 30])),
            ],
        )
        .unwrap();
        let out = run::<ReadsA>(r#"{"copy": false}"#, std::slice::from_ref(&input)).unwrap();
        assert_eq!(out, vec![input.slice(1, 2)], "the real `b` comes back");

        let error = run::<ReadsA>(r#"{"copy": true}"#, std::slice::from_ref(&input)).unwrap_err();
        assert!(
            error.to_string().contains("column `b` came back computed"),
            "{error}"
        );

        // Stand-ins share their buffers across batches; one held from an earlier batch is still
        // not this batch's column.
        let batches = [input.clone(), input.clone()];
        let error = run::<ReadsA>(r#"{"copy": false, "stale": true}"#, &batches).unwrap_err();
        assert!(
            error.to_string().contains("column `b` came back computed"),
            "{error}"
        );
    }
}
