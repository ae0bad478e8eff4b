# Runtime helpers (checkpoint safety, hooks). Imported by `import mmfapn`.
