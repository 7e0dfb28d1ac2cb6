"""The pipeline's SQL, one module per family of statements."""
