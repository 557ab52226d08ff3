//! The well-behaved control: returns its input unchanged. The hostile suite runs it after each
//! hostile guest to show the host still serves.

use weir_sdk::{Error, RecordBatch, SchemaRef, Transform};

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Config {}

pub struct Echo {
    schema: SchemaRef,
}

impl Transform for Echo {
    type Config = Config;

    fn open(_: Config, input: SchemaRef) -> Result<Self, Error> {
        Ok(Self { schema: input })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        Ok(vec![batch])
    }
}

weir_sdk::export!(Echo);
