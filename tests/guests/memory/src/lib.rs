//! Grows memory without bound: the memory limit must stop it.

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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 8 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

weir_sdk::export!(Hostile);
