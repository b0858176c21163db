//! Compiler driver: load a model, run the pipeline, emit and link artifacts
