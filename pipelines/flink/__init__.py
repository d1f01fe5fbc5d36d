"""The Flink runner (`xp stream run --runner flink`): docs/flink.md."""
