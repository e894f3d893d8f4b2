//! `rivulet schema`: the JSON Schemas generated from the flow model.

use anyhow::Context;
use rivulet_spec::schema;
use std::path::PathBuf;
use std::process::ExitCode;

/// Which schema.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Which {
    /// Flow files.
    Flow,
    /// Connections files.
    Connections,
    /// Mapping test files (`NAME.test.yaml`).
    Test,
}

/// Arguments of `rivulet schema`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet schema flow > schemas/flow.schema.json\n  rivulet schema connections\n\nExit codes: 0 printed, 2 usage error."
)]
pub struct Args {
    /// The schema to print.
    #[arg(value_enum, default_value = "flow")]
    which: Which,
    /// Write every schema into this folder (as `flow.schema.json`, `connections.schema.json`
    /// and `test.schema.json`) instead of printing one.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.write {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, value) in [
            ("flow.schema.json", schema::flow_schema()),
            ("connections.schema.json", schema::connections_schema()),
            ("test.schema.json", schema::test_schema()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, schema::to_pretty(value))
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let value = match args.which {
        Which::Flow => schema::flow_schema(),
        Which::Connections => schema::connections_schema(),
        Which::Test => schema::test_schema(),
    };
    print!("{}", schema::to_pretty(value));
    Ok(ExitCode::SUCCESS)
}
