//! Floods stdout and stderr, then behaves: capture must cap the noise and not fail the task.

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
        let line = "noise ".repeat(100);
        for i in 0..20_000 {
            println!("{i} {line}");
            eprintln!("{i} {line}");
        }
        Ok(vec![batch])
    }
}

weir_sdk::export!(Hostile);
