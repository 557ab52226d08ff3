//! Returns enormous output: the output caps must stop it.

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
        // Share one batch many times: cheap in the guest and across the boundary (passthrough
        // frames repeat the input's columns by reference), yet far past the output caps, which
        // count the bytes repeated; within the memory limit, so the output cap is what stops it.
        Ok(vec![batch; 1024])
    }
}

weir_sdk::export!(Hostile);
