//! Panics while processing: the host must report the panic message.

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

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        panic!(
            "hostile plugin panicked on purpose after {} rows",
            batch.num_rows()
        );
    }
}

weir_sdk::export!(Hostile);
