//! `weir table`: create and inspect tables. (Placeholder until the manifest lands.)

use clap::Args;

use crate::output::OutputFormat;

#[derive(Args)]
pub struct TableCommand {}

impl TableCommand {
    pub async fn run(self, _output: OutputFormat) -> anyhow::Result<()> {
        anyhow::bail!("weir table is not implemented yet")
    }
}
