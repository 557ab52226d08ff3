//! Loops forever: the per-batch CPU deadline must stop it.

use weir_sdk::{Error, RecordBatch, SchemaRef, Transform};

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Config {}

pub struct Hostile {
    schema: SchemaRef,
}

impl Transform for Hostile {
    type Config = Config;

    fn open(_: Config, input: SchemaRef) -> Result<Self, Error> {
        Ok(Self { schema: input })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

weir_sdk::export!(Hostile);
