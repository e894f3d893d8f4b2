//! The flow loader: YAML parsing (`rivulet_spec::yaml::parse`, through
//! `SourceFile::from_bytes`) and validation (`rivulet_spec::validate::validate_files`) of one
//! in-memory file. The first byte picks the file's name: a flow, `connections.yaml` or a
//! mapping test file (read by `rivulet_spec::testfile::read`, as `rivulet test` does).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rivulet_spec::load::SourceFile;
use rivulet_spec::validate::{Options, validate_files};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let name = match pick % 3 {
        0 => "flows/fuzz.yaml",
        1 => "flows/connections.yaml",
        _ => "flows/fuzz.test.yaml",
    };
    let file = SourceFile::from_bytes(Path::new(name), text.to_vec());
    if pick % 3 == 2 {
        let _ = rivulet_spec::testfile::read(&file);
    }
    let options = Options {
        strict: pick & 0x80 != 0,
        env_is_set: |name| name.len() % 2 == 0,
    };
    let _ = validate_files(vec![file], &options);
});
