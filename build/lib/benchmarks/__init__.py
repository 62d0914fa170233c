"""The benchmark package: reference relay, matrix runner, results."""
