"""A local voiceprint API that follows ../shared/api-contract.md, for demos, tests, benchmarks."""
