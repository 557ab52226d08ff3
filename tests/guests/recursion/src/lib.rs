//! Recurses without bound: the stack limit must stop it.

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
        let depth = deeper(std::hint::black_box(batch.num_rows() as u64));
        Err(Error::internal(format!(
            "returned from recursion at depth {depth}"
        )))
    }
}

#[inline(never)]
fn deeper(n: u64) -> u64 {
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    std::hint::black_box(deeper(std::hint::black_box(n + 1))) + 1
}

weir_sdk::export!(Hostile);
