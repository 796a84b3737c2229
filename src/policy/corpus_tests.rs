//! Runs every case file in `tests/corpus/` (vectors schema) through the evaluator.

use super::simulate::run_cases;

#[test]
fn every_corpus_case_matches() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failed = Vec::new();
    for f in &files {
        let report = run_cases(&std::fs::read_to_string(f).unwrap());
        println!("{}\n{report}", f.display());
        if !report.all_matched() {
            failed.push(f.display().to_string());
        }
    }
    assert!(failed.is_empty(), "corpus files with failures: {failed:?}");
}
